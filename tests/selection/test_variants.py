"""`hf_diverse.selection.variants`: the QDIT variants `qdit-threshold` and `qdit-cluster`."""

from collections import Counter

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse import InvalidParameterError, get_provenance, select_diverse
from tests.helpers import blobs


def naive_threshold(emb, quality, k, tau):
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    kept = []
    for i in np.lexsort((np.arange(len(quality)), -quality)):
        if all(emb[i] @ emb[j] <= tau for j in kept):
            kept.append(int(i))
        if len(kept) == k:
            break
    return kept


def test_qdit_threshold_keeps_no_pair_above_tau_and_matches_naive():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.random(300)
    pool = Dataset.from_dict({"embedding": emb.tolist(), "quality": q.tolist(), "row": list(range(300))})
    for block_size in (7, 1024):
        s = select_diverse(
            pool,
            25,
            method="qdit-threshold",
            quality_column="quality",
            tau=0.5,
            block_size=block_size,
            show_progress=False,
        )
        assert s["row"] == naive_threshold(emb, q, 25, 0.5)
        kept = np.array(s["embedding"])
        kept /= np.linalg.norm(kept, axis=1, keepdims=True)
        sim = kept @ kept.T
        assert sim[~np.eye(25, dtype=bool)].max() <= 0.5 + 1e-6
        assert max(s["selection_max_similarity"]) <= 0.5 + 1e-6
    with pytest.raises(InvalidParameterError, match=r"found only \d+ of k=200 .*raise `tau`"):
        select_diverse(pool, 200, method="qdit-threshold", quality_column="quality", tau=0.5)
    with pytest.raises(InvalidParameterError, match="tau"):
        select_diverse(pool, 5, method="qdit-threshold", tau=1.5)
    # no quality column: a seeded random order instead, still pairwise <= tau
    a = select_diverse(pool, 10, method="qdit-threshold", seed=4, show_progress=False)
    assert a["row"] == select_diverse(pool, 10, method="qdit-threshold", seed=4, show_progress=False)["row"]


def test_qdit_cluster_equal_quota_best_quality_first():
    pool = blobs([3, 10, 50, 60, 80], seed=2)
    s = select_diverse(pool, 60, method="qdit-cluster", quality_column="quality", n_clusters=5, show_progress=False)
    counts = Counter(s["blob"])
    assert counts[0] == 3 and counts[1] == 10  # exhausted clusters give all their rows
    assert sorted(counts[b] for b in (2, 3, 4)) in ([15, 16, 16], [16, 16, 15])  # the rest differ by at most one
    q = np.array(pool["quality"])
    blob = np.array(pool["blob"])
    chosen_q = dict(zip(s["quality"], s["blob"], strict=True))
    for b, n_b in counts.items():  # within a cluster: the top-quality rows
        assert sorted(v for v, bb in chosen_q.items() if bb == b) == sorted(np.sort(q[blob == b])[::-1][:n_b])
    rec = get_provenance(s)
    assert rec["objective"]["clusters"] == 5 and rec["parameters"]["n_clusters"] == 5
    # the paper's 100 clusters shrink on a small pool (at most N / 10 and k)
    small = select_diverse(pool, 12, method="qdit-cluster", quality_column="quality", show_progress=False)
    assert get_provenance(small)["details"]["clustering"]["n_clusters"] == 12


@pytest.mark.parametrize("block_size", [1, 1024])
def test_qdit_threshold_keeps_a_row_exactly_at_tau(block_size):
    # similarity exactly tau = 0 (orthogonal rows) passes `<= tau`; a `< tau` test would find only one row; block
    # size 1 compares each candidate with the kept rows, 1024 compares the candidates of one block with each other
    pool = Dataset.from_dict({"embedding": [[1.0, 0.0], [0.0, 1.0]], "q": [1.0, 0.5]})
    sub = select_diverse(pool, 2, method="qdit-threshold", quality_column="q", tau=0.0, block_size=block_size)
    assert sub["q"] == [1.0, 0.5] and sub["selection_max_similarity"] == [-1.0, 0.0]
