"""What the report tests and those of `hf-diverse report` share: the pool with toy embedding columns, its K-row QDIT
subset and their report (fixtures, made visible by `tests/report/conftest.py` and `tests/cli/conftest.py`)."""

import numpy as np
import pytest

from hf_diverse import diversity_report, select_diverse
from hf_diverse.textviews import TextView

K = 30


def _toy_embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pool(ifbench):
    """IFBench with fixed toy instruction / response embedding columns (no encoder needed in most tests)."""
    n = len(ifbench)
    ds = ifbench.add_column("embedding", _toy_embeddings(n, 16, 0).tolist())
    return ds.add_column("response_embedding", _toy_embeddings(n, 16, 1).tolist())


@pytest.fixture(scope="module")
def subset(pool):
    return select_diverse(pool, k=K, method="qdit", show_progress=False)


@pytest.fixture(scope="module")
def report(pool, subset, tok):
    return diversity_report(pool, subset, tokenizer=tok, self_bleu_samples=20, n_clusters=20, show_progress=False)


def _views(pool, subset):
    return TextView.for_columns(pool.column_names), TextView.for_columns(subset.column_names)
