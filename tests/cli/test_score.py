"""`hf-diverse score`: scores into an output folder, finds rows embedded earlier by Python (the `--limit 200` case of
the issue), splits, streaming, and scorer options checked before anything runs."""

import json

import pytest
from datasets import DatasetDict, load_from_disk

from hf_diverse import EmbeddingScorer, load_pool, select_diverse
from hf_diverse.cli import main
from hf_diverse.scorers.embedding import EmbeddingScorer as _EmbeddingScorer


@pytest.fixture
def encoded(monkeypatch):
    """The rows `EmbeddingScorer` encodes in this process (a counter around its `score_batch`)."""
    seen = []
    real = _EmbeddingScorer.score_batch

    def counting(self, batch, indices, device):
        seen.extend(indices if indices is not None else [-1] * len(next(iter(batch.values()))))
        return real(self, batch, indices, device)

    monkeypatch.setattr(_EmbeddingScorer, "score_batch", counting)
    return seen


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DIVERSE_SCORE_CACHE", str(tmp_path / "scores"))
    return tmp_path / "scores"


def test_rows_embedded_in_python_are_not_embedded_again_by_the_cli(tmp_path, store, encoded, capsys):
    pool = load_pool(limit=60)
    embedded = select_diverse(pool, k=10, show_progress=False, embedding_column="embedding")  # Python embeds once
    assert sorted(encoded) == list(range(60))
    encoded.clear()
    argv = ["select", "--limit", "50", "--k", "5", "--output", str(tmp_path / "curated"), "--no-progress"]
    assert main(argv) == 0
    assert encoded == []  # the issue's `--limit 200` case: found again, not re-embedded
    out = tmp_path / "scored"
    assert main(["score", "--scorer", "embedding", "--limit", "30", "--output", str(out), "--no-progress"]) == 0
    assert encoded == []
    assert "0 computed, 30 found again" in capsys.readouterr().out
    scored = load_from_disk(str(out))
    assert scored.features["embedding"] == EmbeddingScorer().output_features()["embedding"]
    by_prompt = dict(zip(embedded["prompt"], embedded["embedding"], strict=True))  # the 10 picked rows
    same = [by_prompt[p] == e for p, e in zip(scored["prompt"], scored["embedding"], strict=True) if p in by_prompt]
    assert same and all(same)  # copied from the Python run, bit for bit
    record = json.loads((out / "provenance.json").read_text())
    assert record["models"]["embedding"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_splits_and_streaming_give_the_same_scores(tmp_path, store, encoded):
    pool = load_pool(limit=24)
    DatasetDict({"train": pool.select(range(16)), "test": pool.select(range(16, 24))}).save_to_disk(tmp_path / "dd")
    out = tmp_path / "split"
    args = ["score", "--scorer", "embedding", "--no-progress", "--batch-size", "8"]
    assert main([*args, "--dataset", str(tmp_path / "dd"), "--split", "train,test", "--output", str(out)]) == 0
    scored = load_from_disk(str(out))
    assert isinstance(scored, DatasetDict) and len(scored["train"]) == 16 and len(scored["test"]) == 8
    assert sorted(json.loads((out / "provenance.json").read_text())) == ["test", "train"]
    pool.to_json(tmp_path / "pool.jsonl")
    streamed = tmp_path / "streamed"
    assert main([*args, "--dataset", str(tmp_path / "pool.jsonl"), "--streaming", "--output", str(streamed)]) == 0
    again = load_from_disk(str(streamed))
    assert again["embedding"][:] == scored["train"]["embedding"][:] + scored["test"]["embedding"][:]
    assert len(encoded) == 24  # the streamed run found every row again


@pytest.mark.parametrize("argv, message", [
    (["--scorer", "adg", "--what", "response"], "--what do(es) not apply to --scorer adg"),
    (["--scorer", "embedding", "--scorer-arg", "max_seq_length"], "--scorer-arg expects KEY=VALUE"),
    (["--scorer", "embedding", "--scorer-arg", "nope=1"], "--nope do(es) not apply to --scorer embedding"),
])  # fmt: skip
def test_bad_scorer_options_fail_before_anything_is_written(tmp_path, argv, message, capsys):
    out = tmp_path / "out"
    assert main(["score", *argv, "--output", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_tags_scorer_missing_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tags(name, globals=None, locals=None, fromlist=(), level=0):
        if name.endswith("tags") and fromlist and "TagScorer" in fromlist:
            raise ImportError("no tags")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_tags)
    assert main(["score", "--scorer", "tags", "--output", str(tmp_path / "out")]) == 1
    assert "`tags` scorer (hf_diverse.scorers.tags.TagScorer) is not part of this version" in capsys.readouterr().err
