"""`hf_diverse.scorers.embedding`: `EmbeddingScorer` in `datasets.map` (cache, pickling, `num_proc`, ranks)."""

import pickle

import numpy as np
import pytest
from datasets.fingerprint import Hasher

import hf_diverse.scorers.embedding as embedding_module
from hf_diverse import EmbeddingScorer, InvalidParameterError


@pytest.fixture()
def small(ifbench):
    return ifbench.select(range(12))


def test_map_cache_is_reused(small, monkeypatch):
    loads = []
    real = embedding_module.load_sentence_transformer
    counting = lambda *a, **k: loads.append(1) or real(*a, **k)
    monkeypatch.setattr(embedding_module, "load_sentence_transformer", counting)
    first = small.map(EmbeddingScorer(), batched=True)
    assert loads == [1]
    second = small.map(EmbeddingScorer(), batched=True)  # a fresh, identical scorer: same fingerprint
    assert loads == [1], "the second identical map re-encoded instead of using the cache"
    assert second.cache_files == first.cache_files
    assert second["embedding"] == first["embedding"]
    other = small.map(EmbeddingScorer(what="response"), batched=True)
    assert loads == [1, 1] and other["embedding"] != first["embedding"]


def test_scorer_pickles_and_hash_ignores_loaded_model(small):
    scorer = EmbeddingScorer()
    before = Hasher.hash(scorer)
    out = scorer(small[:2])
    assert scorer._loaded is not None
    assert Hasher.hash(scorer) == before
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone._loaded is None and clone.what == "instruction"
    np.testing.assert_allclose(clone(small[:2])["embedding"], out["embedding"], atol=1e-6)


def test_num_proc_2_on_cpu_matches_single_process(small):
    scorer = EmbeddingScorer()
    single = np.array(small.map(scorer, batched=True, batch_size=4)["embedding"])
    multi = np.array(
        small.map(EmbeddingScorer(), batched=True, batch_size=4, num_proc=2, new_fingerprint="multi")["embedding"]
    )
    np.testing.assert_allclose(single, multi, atol=1e-5)
    assert single.shape == (12, 384) and single.dtype == np.float64 or single.dtype == np.float32


def test_with_rank_signature(small):
    scorer = EmbeddingScorer(device="cpu")
    out = small.map(scorer, batched=True, with_rank=True)
    assert len(out["embedding"][0]) == 384


def test_invalid_arguments():
    with pytest.raises(InvalidParameterError, match="instruction"):
        EmbeddingScorer(what="title")
    with pytest.raises(InvalidParameterError, match="batch_size"):
        EmbeddingScorer(batch_size=0)
