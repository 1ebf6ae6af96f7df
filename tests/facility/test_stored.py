"""`hf_diverse.facility.stored`: the exact greedy strategies against a direct reading of the QDIT score, and
apricot."""

import numpy as np
import pytest
import torch

from hf_diverse import InvalidParameterError, QditConfig
from hf_diverse.errors import EmbeddingError, InsufficientMemoryError
from hf_diverse.facility import build_knn_graph, facility_location_greedy, facility_location_objective
from tests.helpers import qdit_greedy


def normalized(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def clustered(n=600, d=24, n_clusters=12, noise=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    labels = rng.integers(0, n_clusters, n)
    return normalized(centers[labels] + noise * rng.standard_normal((n, d))), labels


def naive_qdit(x, k, q=None, alpha=0.0):
    """Direct reading of the QDIT score: plain greedy on f = (1-a) d(j|A)/N + a q~(j)/k."""
    n = len(x)
    s = np.maximum(x.astype(np.float64) @ x.T.astype(np.float64), 0)
    q = np.zeros(n) if q is None else q
    cur = np.zeros(n)
    picks = []
    for _ in range(k):
        f = (1 - alpha) * np.maximum(s - cur, 0).sum(1) / n + alpha * q / k
        f[picks] = -np.inf
        j = int(np.argmax(f))
        picks.append(j)
        cur = np.maximum(cur, s[j])
    return np.array(picks), cur.sum()


def test_one_pick_per_cluster_first():
    # three tight, well-separated clusters in 3-D: the first three picks hit each cluster once
    rng = np.random.default_rng(1)
    centers = np.eye(3)
    x = normalized(np.repeat(centers, [10, 6, 4], axis=0) + 0.05 * rng.standard_normal((20, 3)))
    labels = np.repeat([0, 1, 2], [10, 6, 4])
    res = facility_location_greedy(torch.from_numpy(x), 3, show_progress=False)
    assert sorted(labels[res.indices]) == [0, 1, 2]
    assert labels[res.indices[0]] == 0  # the biggest cluster covers most


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_dense_lazy_blocked_match_naive(alpha):
    x, _ = clustered()
    q = np.random.default_rng(3).random(len(x))
    ref_picks, ref_cov = naive_qdit(x, 40, q, alpha)
    results = {
        s: qdit_greedy(
            torch.from_numpy(x), 40, quality=q, alpha=alpha, strategy=s, block_size=128, show_progress=False
        )
        for s in ("dense", "lazy", "incremental", "blocked")
    }
    # exact updates from the first pick on (normally they start once lazy re-scoring gets costly)
    results["incremental-from-start"] = qdit_greedy(
        torch.from_numpy(x),
        40,
        quality=q,
        alpha=alpha,
        strategy="incremental",
        incremental_after=0,
        block_size=128,
        show_progress=False,
    )
    for strategy, res in results.items():
        np.testing.assert_array_equal(res.indices, ref_picks, err_msg=strategy)
        assert res.coverage == pytest.approx(ref_cov, rel=1e-6)
        assert facility_location_objective(torch.from_numpy(x), res.indices) == pytest.approx(ref_cov, rel=1e-6)
    np.testing.assert_array_equal(results["dense"].gains, results["lazy"].gains)
    # lazy evaluation does much less work than re-scoring everything
    assert results["lazy"].evaluations < results["dense"].evaluations / 3


def test_objective_matches_apricot():
    apricot = pytest.importorskip("apricot")
    x, _ = clustered(n=400, d=16, seed=5)
    sims = np.maximum(x.astype(np.float64) @ x.T.astype(np.float64), 0)  # apricot's 'cosine' would use cos^2
    sel = apricot.FacilityLocationSelection(25, metric="precomputed", optimizer="lazy").fit(sims)
    ours = facility_location_greedy(torch.from_numpy(x), 25, show_progress=False)
    theirs_obj = sims[:, sel.ranking].max(axis=1).sum()
    assert abs(ours.coverage - theirs_obj) / theirs_obj < 1e-6
    np.testing.assert_array_equal(ours.indices, sel.ranking)


def test_alpha_one_is_top_quality_and_alpha_zero_ignores_quality():
    x, _ = clustered(n=300)
    q = np.random.default_rng(7).random(300)
    top = qdit_greedy(torch.from_numpy(x), 20, quality=q, alpha=1.0, show_progress=False)
    np.testing.assert_array_equal(top.indices, np.argsort(-q, kind="stable")[:20])
    a0 = qdit_greedy(torch.from_numpy(x), 20, quality=q, alpha=0.0, show_progress=False)
    a0_other_q = qdit_greedy(torch.from_numpy(x), 20, quality=q[::-1].copy(), alpha=0.0, show_progress=False)
    plain = qdit_greedy(torch.from_numpy(x), 20, show_progress=False)
    np.testing.assert_array_equal(a0.indices, plain.indices)
    np.testing.assert_array_equal(a0_other_q.indices, plain.indices)


def test_bad_parameters():
    x = torch.from_numpy(clustered(n=50)[0])
    with pytest.raises(InvalidParameterError, match=r"\[1, 50\]"):
        facility_location_greedy(x, 51)
    with pytest.raises(InvalidParameterError, match=r"an integer in \[1, 50\] .* got 3.0"):
        facility_location_greedy(x, 3.0)  # not a numba typing error from deep inside
    with pytest.raises(InvalidParameterError, match="diversity_weight"):
        facility_location_greedy(x, 5, diversity_weight=-1.0)
    with pytest.raises(InvalidParameterError, match="one value per row"):
        facility_location_greedy(x, 5, bonus=np.zeros(49))
    with pytest.raises(InvalidParameterError, match="NaN"):
        facility_location_greedy(x, 5, bonus=np.full(50, np.nan))
    with pytest.raises(InvalidParameterError, match="Valid strategies: .*'incremental'"):
        facility_location_greedy(x, 5, strategy="fast")
    with pytest.raises(InvalidParameterError, match=r"alpha must be in \[0, 1\]"):
        QditConfig(alpha=1.5)
    with pytest.raises(InvalidParameterError, match="Valid values of strategy: .*'greedi'"):
        QditConfig(strategy="fast")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_embeddings_that_are_not_finite_are_refused_with_their_row(bad):
    # before the check, NaN rows gave indices outside the pool (or a crash) from the compiled blocked loop
    x = clustered(n=80)[0]
    x[37, 3] = bad
    for strategy, backend in [("incremental", "numba"), ("lazy", "torch"), ("blocked", "numba"), ("blocked", "torch")]:
        with pytest.raises(EmbeddingError, match="Row 37 of the embeddings is not finite"):
            facility_location_greedy(torch.from_numpy(x), 5, strategy=strategy, backend=backend, show_progress=False)
    with pytest.raises(EmbeddingError, match="Row 37"):
        build_knn_graph(torch.from_numpy(x), 8, cache=False, show_progress=False)
    with pytest.raises(EmbeddingError, match=r"\(N, d\) float tensor"):
        facility_location_greedy(torch.zeros(10, dtype=torch.int64), 2)


def test_objective_refuses_indices_outside_the_pool_and_rows_that_are_not_finite():
    x = clustered(n=80)[0]
    t = torch.from_numpy(x)
    assert facility_location_objective(t, []) == 0.0
    expected = np.maximum(x.astype(np.float64) @ x[[3, 79]].T.astype(np.float64), 0).max(axis=1).sum()
    assert facility_location_objective(t, [3, 79]) == pytest.approx(expected, rel=1e-6)
    bad_indices = [([3, 80], "index 80 is not a row .* 0 to 79"), ([3, -1], "index -1 is not a row"), ([0.5], "1-D")]
    for bad, match in bad_indices:
        with pytest.raises(InvalidParameterError, match=match):
            facility_location_objective(t, bad)
    x[11, 0] = np.nan
    with pytest.raises(EmbeddingError, match="Row 11"):
        facility_location_objective(torch.from_numpy(x), [3])


def test_rows_off_unit_length_are_named_in_a_warning(caplog):
    x = clustered(n=80)[0]
    with caplog.at_level("WARNING", logger="hf_diverse"):
        facility_location_greedy(torch.from_numpy(x), 5, show_progress=False)
        facility_location_greedy(torch.from_numpy(x).to(torch.bfloat16), 5, show_progress=False)
    assert "unit length" not in caplog.text  # unit rows, also once rounded to bfloat16
    # float64 rows are checked in float64 and run as float32, as before the check
    res64 = facility_location_greedy(torch.from_numpy(x.astype(np.float64)), 5, show_progress=False)
    res32 = facility_location_greedy(torch.from_numpy(x), 5, show_progress=False)
    assert res64.indices.tolist() == res32.indices.tolist()
    assert "unit length" not in caplog.text
    x[[3, 9]] *= 2.5
    with caplog.at_level("WARNING", logger="hf_diverse"):
        facility_location_greedy(torch.from_numpy(x), 5, show_progress=False)
    assert "2 of 80 embedding rows are off unit length (norms 1 to 2.5)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hf_diverse"):  # once per call, also where d(A) is measured after
        facility_location_greedy(torch.from_numpy(x), 5, bonus=np.arange(80.0), diversity_weight=0.0)
    assert caplog.text.count("off unit length") == 1


def test_dense_refuses_before_allocating_when_too_big():
    x = torch.from_numpy(clustered(n=200)[0])
    with pytest.raises(InsufficientMemoryError, match="blocked"):
        facility_location_greedy(x, 5, strategy="lazy", memory_budget=1000)
    # auto falls back to an exact strategy that fits
    res = facility_location_greedy(x, 5, strategy="auto", memory_budget=1000, show_progress=False)
    assert res.strategy != "lazy"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, _ = clustered()
    cpu = facility_location_greedy(torch.from_numpy(x), 30, show_progress=False)
    gpu = facility_location_greedy(torch.from_numpy(x).cuda(), 30, show_progress=False)
    np.testing.assert_array_equal(cpu.indices, gpu.indices)
    assert gpu.coverage == pytest.approx(cpu.coverage, rel=1e-5)
