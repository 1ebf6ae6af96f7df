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


# --- issue 12: long texts -------------------------------------------------------------------------------------------
LONG = "The lighthouse keeper climbed the stairs every night to light the lamp for the ships. " * 30
TAIL = " ".join(f"Sentence {i} is about something else entirely, such as baking sourdough bread." for i in range(20))


@pytest.fixture(scope="module")
def long_pool():
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [LONG, LONG + " " + TAIL, "A short prompt."], "response": ["a", "b", "c"]})


def _windows_embedding(model, text: str) -> np.ndarray:
    """A long text as the token-weighted mean of the embeddings of its windows, written out here: windows of
    max_seq_length - 2 tokens cut at token boundaries of the original text, each embedded and normalised."""
    tok = model.tokenizer
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets, size = enc["offset_mapping"], model.max_seq_length - 2
    pieces, weights = [], []
    for start in range(0, len(offsets), size):
        window = offsets[start : start + size]
        pieces.append(text[window[0][0] : window[-1][1]])
        weights.append(len(window))
    vecs = model.encode(pieces, normalize_embeddings=True, convert_to_numpy=True)
    mean = (vecs * np.array(weights)[:, None]).sum(0) / sum(weights)
    return mean / np.linalg.norm(mean)


def test_truncation_hides_appended_text_and_says_so(long_pool, caplog):
    out = np.array(long_pool.map(EmbeddingScorer(), batched=True)["embedding"])
    # the issue: 20 sentences appended after token 400 leave the embedding unchanged...
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    # ...and now it is not silent
    assert "2 of 3 texts" in caplog.text and "256-token" in caplog.text and "long_text='chunks'" in caplog.text


def test_chunks_embed_a_long_text_whole(long_pool):
    scorer = EmbeddingScorer(long_text="chunks")
    out = np.array(long_pool.map(scorer, batched=True)["embedding"], dtype=np.float64)
    truncated = np.array(long_pool.map(EmbeddingScorer(), batched=True)["embedding"], dtype=np.float64)
    assert np.linalg.norm(out[0] - out[1]) > 1e-2, "the appended sentences must move the embedding"
    np.testing.assert_allclose(out[2], truncated[2], atol=1e-6)  # one window: the same as truncating
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    model = scorer.load("cpu")
    for row in (0, 1):
        np.testing.assert_allclose(out[row], _windows_embedding(model, long_pool[row]["prompt"]), atol=1e-5)


def test_max_seq_length_and_long_text_checked_and_recorded(long_pool):
    with pytest.raises(InvalidParameterError, match="long_text='whole'.*'truncate', 'chunks'"):
        EmbeddingScorer(long_text="whole")
    with pytest.raises(InvalidParameterError, match="max_seq_length"):
        EmbeddingScorer(max_seq_length=1)
    scorer = EmbeddingScorer(max_seq_length=64, long_text="chunks")
    stats = scorer.long_text_stats(long_pool)
    assert stats["limit"] == 64 and stats["mode"] == "chunks" and stats["count"] == 2 and stats["rows"] == 3
    assert stats["fraction"] == pytest.approx(2 / 3) and stats["longest_tokens"] > 400


def test_the_column_records_its_model(long_pool, tmp_path):
    from datasets import load_from_disk

    from hf_diverse.embeddings import embedding_column_info

    scorer = EmbeddingScorer(what="response", long_text="chunks", max_seq_length=128)
    ds = long_pool.map(scorer, batched=True, features=scorer.features(long_pool))
    info = embedding_column_info(ds, "embedding")
    assert info["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (info["what"], info["long_text"], info["max_seq_length"]) == ("response", "chunks", 128)
    ds.select([0, 1]).save_to_disk(str(tmp_path / "saved"))
    assert embedding_column_info(load_from_disk(str(tmp_path / "saved")), "embedding") == info
