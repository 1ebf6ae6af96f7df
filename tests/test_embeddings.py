"""`hf_diverse.embeddings`: the chunked embedding reader."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_diverse import EmbeddingError
from hf_diverse.embeddings import read_embeddings, read_embeddings_chunked


def test_chunked_reader_matches_whole_read():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((23, 5)).astype(np.float32)
    ds = Dataset.from_dict({"embedding": emb.tolist(), "i": list(range(23))})
    whole = read_embeddings(ds, "embedding")
    assert torch.equal(read_embeddings_chunked(ds, "embedding", chunk_rows=4), whole)
    rows = np.array([22, 3, 7, 0])
    assert torch.equal(read_embeddings_chunked(ds, "embedding", rows=rows, chunk_rows=3), whole[rows])
    shuffled = ds.shuffle(seed=0)  # an indices mapping
    assert torch.equal(
        read_embeddings_chunked(shuffled, "embedding", chunk_rows=5), whole[torch.as_tensor(shuffled["i"])]
    )
    half = read_embeddings_chunked(ds, "embedding", dtype=torch.float16, chunk_rows=6)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), whole, atol=1e-2)
    ragged = Dataset.from_dict({"embedding": [[1.0, 0.0]] * 9 + [[1.0, 0.0, 0.0]]})
    with pytest.raises(EmbeddingError, match="row 0 has 2, row 9 has 3"):
        read_embeddings_chunked(ragged, "embedding", chunk_rows=4)
    nan = Dataset.from_dict({"embedding": [[1.0, 0.0]] * 6 + [[float("nan"), 1.0]]})
    with pytest.raises(EmbeddingError, match="Row 6 .*NaN"):
        read_embeddings_chunked(nan, "embedding", chunk_rows=4)


# --- issue 12: embeddings are unit-normalised where they are read -------------------------------------------------
def test_rows_off_unit_length_are_normalised_on_read_with_their_norms_recorded(caplog):
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((40, 6))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    scale = rng.uniform(0.5, 3.0, size=40)
    ds = Dataset.from_dict({"embedding": (unit * scale[:, None]).astype(np.float32).tolist()})
    stats = {}
    x = read_embeddings_chunked(ds, "embedding", chunk_rows=7, stats=stats)
    np.testing.assert_allclose(x.numpy(), unit, atol=1e-6)
    assert stats["norm_min"] == pytest.approx(scale.min(), rel=1e-5)
    assert stats["norm_max"] == pytest.approx(scale.max(), rel=1e-5)
    assert stats["rescaled_rows"] == int((np.abs(scale - 1) > 1e-3).sum()) and stats["rows"] == 40
    assert "not unit-normalised" in caplog.text and "'embedding'" in caplog.text


def test_normalising_a_unit_column_is_the_identity():
    rng = np.random.default_rng(1)
    unit = rng.standard_normal((30, 5))
    unit = (unit / np.linalg.norm(unit, axis=1, keepdims=True)).astype(np.float32)
    ds = Dataset.from_dict({"embedding": unit.tolist()})
    stats = {}
    assert torch.equal(read_embeddings_chunked(ds, "embedding", stats=stats), torch.from_numpy(unit))
    assert stats["rescaled_rows"] == 0
    raw = Dataset.from_dict({"embedding": (2 * unit).tolist()})
    assert torch.equal(read_embeddings_chunked(raw, "embedding", normalize=False), torch.from_numpy(2 * unit))


def test_zero_vectors_are_refused_naming_the_row():
    zero = Dataset.from_dict({"embedding": [[1.0, 0.0]] * 5 + [[0.0, 0.0]] + [[0.0, 1.0]]})
    with pytest.raises(EmbeddingError, match="Row 5 of embedding column 'embedding' is a zero vector"):
        read_embeddings_chunked(zero, "embedding", chunk_rows=4)
    inf = Dataset.from_dict({"embedding": [[1.0, 0.0]] * 3 + [[float("inf"), 1.0]]})
    with pytest.raises(EmbeddingError, match="Row 3 .*NaN or inf"):
        read_embeddings_chunked(inf, "embedding")
