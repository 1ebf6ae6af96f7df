"""`hf_diverse.facility.graph`: exact (`sparse`) and stochastic greedy on the kNN graph against the dense greedy."""

import numpy as np
import pytest
import torch

from hf_diverse.facility import build_knn_graph, facility_location_greedy, facility_location_objective
from hf_diverse.facility.graph import _HeapArgmax
from tests.helpers import clustered, qdit_graph_greedy, qdit_greedy

pytestmark = pytest.mark.usefixtures("one_thread", "knn_cache_dir")


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_full_graph_equals_dense(alpha):
    # m = N keeps every positive similarity: the sparse objective *is* the dense one, so the ranking must match
    x = clustered(300, d=24, n_clusters=12, noise=0.25)
    q = np.random.default_rng(3).random(300)
    dense = qdit_greedy(x, 40, quality=q, alpha=alpha, strategy="lazy", show_progress=False)
    graph = build_knn_graph(x, 300, knn="exact", cache=False, show_progress=False)
    assert graph.nnz == int((x @ x.T > 0).sum())
    res = qdit_graph_greedy(graph, 40, quality=q, alpha=alpha, show_progress=False)
    np.testing.assert_array_equal(res.indices, dense.indices)
    np.testing.assert_allclose(res.gains, dense.gains, rtol=1e-9)
    assert res.coverage == pytest.approx(dense.coverage, rel=1e-6)


def test_small_m_reaches_dense_objective_on_clustered_data():
    x = clustered(3000)
    k = 60
    dense = facility_location_greedy(x, k, strategy="lazy", show_progress=False)
    ratios = {}
    for m, knn in ((32, "exact"), (32, "ivf"), (1, "exact")):
        graph = build_knn_graph(x, m, knn=knn, cache=False, show_progress=False)
        assert graph.nnz <= 2 * 3000 * m  # O(N m), never N^2
        for strategy in ("sparse", "stochastic"):
            res = qdit_graph_greedy(graph, k, strategy=strategy, show_progress=False)
            assert len(np.unique(res.indices)) == k
            ratios[m, knn, strategy] = facility_location_objective(x, res.indices) / dense.coverage
    assert ratios[32, "exact", "sparse"] >= 0.99
    assert ratios[32, "ivf", "sparse"] >= 0.99
    assert ratios[32, "exact", "stochastic"] >= 0.97
    # the bound is not vacuous: a graph with only self-loops (m = 1) sees no diversity at all
    assert ratios[1, "exact", "sparse"] < 0.95


def test_heap_argmax_matches_torch_argmax():
    rng = np.random.default_rng(0)
    score = torch.from_numpy(np.round(rng.random(500), 2))  # many ties
    pick = _HeapArgmax(score)
    for _ in range(200):
        expected = int(torch.argmax(score))
        assert pick() == expected
        score[expected] = -np.inf
        hit = torch.from_numpy(rng.choice(500, 50, replace=False))
        score[hit] = torch.minimum(score[hit], torch.from_numpy(np.round(rng.random(50), 2)))
