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
