"""`Scorer`: state and fingerprint without the runtime attributes, the `map` calling conventions, lazy per-device
loading, and a subclass that implements `score_batch` only."""

import pickle
import threading

import pytest
import torch
from datasets import Dataset, Value, load_from_disk
from datasets.fingerprint import Hasher

from hf_diverse.scorers import Scorer

CALLS: list[tuple] = []  # (indices, device) of each `Probe.score_batch` call in this process


class PromptLength(Scorer):
    """Only the batch method: characters of the prompt."""

    def score_batch(self, batch, indices, device):
        return {"prompt_chars": [len(p) for p in batch["prompt"]]}


class Probe(Scorer):
    """A 'model' that cannot be pickled (a lock), declared features, and a record of how it was called."""

    repr_fields = ("offset",)
    _loads = 0

    def __init__(self, offset: int = 0, device: str | None = "cpu"):
        self.offset = offset
        self.device = device

    def load_model(self, device):
        self._loads += 1
        return threading.Lock()

    def output_features(self):
        return {"shifted": Value("int64"), "seen_index": Value("int64")}

    def score_batch(self, batch, indices, device):
        assert isinstance(self.load(device), type(threading.Lock()))
        CALLS.append((indices, device))
        n = len(batch["prompt"])
        seen = list(indices) if indices is not None else [-1] * n
        return {"shifted": [len(p) + self.offset for p in batch["prompt"]], "seen_index": seen}


@pytest.fixture()
def rows(tmp_path):
    """Ten rows saved to disk, so `map` writes (and re-uses) cache files."""
    Dataset.from_dict({"prompt": [f"instruction number {i}" * (i + 1) for i in range(10)]}).save_to_disk(tmp_path)
    return load_from_disk(str(tmp_path))


def test_a_subclass_needs_only_score_batch_and_runs_with_num_proc_2(rows):
    with pytest.raises(TypeError, match="score_batch"):
        Scorer()
    scorer = PromptLength()
    single = rows.map(scorer, batched=True, batch_size=3)
    multi = rows.map(PromptLength(), batched=True, batch_size=3, num_proc=2, with_rank=True, new_fingerprint="multi")
    assert multi["prompt_chars"] == single["prompt_chars"] == [len(p) for p in rows["prompt"]]
    assert repr(scorer) == "PromptLength()" and scorer.features(rows) == rows.features
    assert scorer.model_info == {"name": None, "source": "user", "revision": None}


def test_hash_and_pickle_ignore_the_loaded_model(rows):
    scorer = Probe(offset=2)
    before = Hasher.hash(scorer)
    scorer(rows[:2])
    assert scorer._loaded is not None and scorer._loads == 1
    assert Hasher.hash(scorer) == before == Hasher.hash(Probe(offset=2))
    assert Hasher.hash(Probe(offset=3)) != before
    clone = pickle.loads(pickle.dumps(scorer))  # the lock would not pickle: it must be dropped
    assert clone._loaded is None and clone._loads == 0 and clone.offset == 2
    assert clone(rows[:2]) == scorer(rows[:2])
    assert repr(scorer) == "Probe(offset=2)"


def test_second_identical_map_reuses_the_cache(rows):
    CALLS.clear()
    first = rows.map(Probe(offset=1), batched=True, batch_size=4)
    assert len(CALLS) == 3
    again = rows.map(Probe(offset=1), batched=True, batch_size=4)
    assert len(CALLS) == 3, "the second identical map called the scorer instead of using the cache"
    assert again.cache_files == first.cache_files and again["shifted"] == first["shifted"]


def test_map_calling_conventions(rows):
    scorer = Probe()
    feats = scorer.features(rows)
    assert feats["shifted"].dtype == "int64" and list(feats) == ["prompt", "shifted", "seen_index"]
    plain = rows.map(scorer, batched=True, batch_size=4, features=feats)
    assert plain["seen_index"] == [-1] * 10 and plain.features == feats
    indexed = rows.map(scorer, batched=True, batch_size=4, with_indices=True)
    assert indexed["seen_index"] == list(range(10))
    ranked = rows.map(scorer, batched=True, batch_size=4, with_rank=True)  # the rank comes second: not indices
    assert ranked["seen_index"] == [-1] * 10
    both = rows.map(scorer, batched=True, batch_size=4, with_indices=True, with_rank=True)
    assert both["seen_index"] == list(range(10))


def test_rank_picks_the_gpu_and_load_caches_per_device(rows, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    scorer = Probe(device="cuda")
    # only where `score_batch` runs is checked here: the device is resolved before any loading
    monkeypatch.setattr(Probe, "load", lambda self, device=None: threading.Lock())
    CALLS.clear()
    scorer(rows[:1], 3)
    scorer(rows[:1], [0], 2)
    scorer(rows[:1], None, 1)
    assert CALLS == [(None, torch.device("cuda:1")), ([0], torch.device("cuda:0")), (None, torch.device("cuda:1"))]
    monkeypatch.undo()
    scorer = Probe(device="cpu")
    assert scorer.load() is scorer.load("cpu") and scorer._loads == 1
    scorer.load("meta")  # another device: loaded again there
    assert scorer._loads == 2 and scorer._loaded_device == torch.device("meta")
