"""`hf_diverse.facility.kernels`: the compiled exact greedy against a plain numpy greedy written here, exact ties
included, on CPU (numba and torch backends) and, where CUDA is available, on the GPU.

Self-contained on purpose (only `tests.reference`, no `tests.helpers`, no conftest fixtures):
`benchmarks/gpu_check.sh` runs this file with `pytest --noconftest` on a GPU machine that has torch and numba but not
`datasets`.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_diverse.facility import facility_location_greedy, kernels
from tests.reference import plain_greedy_on

ROOT = Path(__file__).resolve().parents[2]
needs_numba = pytest.mark.skipif(not kernels.HAS_NUMBA, reason="numba is not installed")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def numpy_greedy(x: np.ndarray, k: int, w: float, bonus: np.ndarray) -> list[int]:
    """Plain greedy on f(j | A) = w * d(j | A) + bonus[j], read straight off the definition: float32 similarities
    clamped at 0, float64 gains, ties to the lower row (`np.argmax` takes the first maximum)."""
    return plain_greedy_on(np.maximum(x @ x.T, np.float32(0)).astype(np.float64), k, w, bonus)[0]


def clustered(n=500, d=24, n_clusters=15, noise=0.4, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    a = centers[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, d))
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def tied_pool(n=240, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows whose similarities are all exact in binary (multiples of 1/4): each row is a basis vector or has
    four entries of +-1/2; rows repeat, so many gains tie exactly. Quality in multiples of 1/8, also with ties."""
    rng = np.random.default_rng(seed)
    d = 8
    protos = [np.eye(d)[i] for i in range(d)]
    for _ in range(12):
        v = np.zeros(d)
        v[rng.choice(d, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
        protos.append(v)
    x = np.array(protos)[rng.integers(0, len(protos), n)].astype(np.float32)
    return x, rng.integers(0, 8, n) / 8.0


def terms(n, k, alpha, quality):
    """QDIT's weights (w = (1 - alpha) / N, bonus = alpha * q / k), computed once so both sides use the same floats."""
    return (1.0 - alpha) / n, alpha * np.asarray(quality, dtype=np.float64) / k


STRATEGIES = [
    ("dense", {}),
    ("lazy", {}),
    ("incremental", {}),
    ("incremental", {"incremental_after": 0}),  # exact updates from the first pick
]


def run(x, k, w, bonus, strategy, device="cpu", **kwargs):
    return facility_location_greedy(
        torch.from_numpy(x).to(device),
        k,
        bonus=torch.from_numpy(bonus),
        diversity_weight=w,
        strategy=strategy,
        show_progress=False,
        **kwargs,
    )


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_same_picks_as_numpy_greedy(alpha, backend):
    x = clustered()
    k = 40
    w, bonus = terms(len(x), k, alpha, np.random.default_rng(1).random(len(x)))
    expected = numpy_greedy(x, k, w, bonus)
    for strategy, extra in STRATEGIES:
        res = run(x, k, w, bonus, strategy, backend=backend, **extra)
        assert res.indices.tolist() == expected, (strategy, extra)
        assert res.details["backend"] == backend
        s = np.maximum(x @ x.T, 0).astype(np.float64)
        assert res.coverage == pytest.approx(s[:, expected].max(axis=1).sum(), rel=1e-9)


@needs_numba
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_similarities_built_in_many_row_blocks(alpha, monkeypatch):
    # S is built a row block at a time, the columns left of each block copied from the blocks above it (S is
    # symmetric): with blocks of 37 rows (not a divisor of N) every copy runs
    from hf_diverse.facility import stored

    monkeypatch.setattr(stored, "SIMILARITY_BLOCK_BYTES", 4 * 500 * 37)
    x = clustered()
    k = 40
    w, bonus = terms(len(x), k, alpha, np.random.default_rng(1).random(len(x)))
    expected = numpy_greedy(x, k, w, bonus)
    s = np.maximum(x.astype(np.float64) @ x.T.astype(np.float64), 0)
    for strategy, extra in STRATEGIES:
        res = run(x, k, w, bonus, strategy, backend="numba", **extra)
        assert res.indices.tolist() == expected, (strategy, extra)
        assert res.coverage == pytest.approx(s[:, expected].max(axis=1).sum(), rel=1e-6)
        assert res.gains[0] == pytest.approx(w * s[expected[0]].sum() + bonus[expected[0]], rel=1e-6)


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=needs_numba), "torch"])
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_exact_ties_go_to_the_lower_row(alpha, backend):
    x, quality = tied_pool()
    k = 30
    w, bonus = terms(len(x), k, alpha, quality)
    expected = numpy_greedy(x, k, w, bonus)
    # the pool really is full of ties: duplicate rows, so some pick had a tied rival at a higher row
    assert len(np.unique(x, axis=0)) < len(x) // 4
    for strategy, extra in STRATEGIES:
        res = run(x, k, w, bonus, strategy, backend=backend, **extra)
        assert res.indices.tolist() == expected, (strategy, extra)


@needs_numba
@pytest.mark.parametrize("near", [0, 1, 3, 5, 7])
def test_near_ties_of_the_updated_gains_are_rescored_directly(near):
    # the incremental phase keeps gains by updates, which drift by rounding: every row within `tol` of the best updated
    # score is re-scored from S and the best re-scored one wins. Here row `near` truly has the largest gain, but its
    # updated gain reads a little below the others' (and row 6's a little above its true gain)
    rng = np.random.default_rng(0)
    s = np.ascontiguousarray(rng.random((8, 8)), dtype=np.float32)
    s = np.minimum(s, s.T)
    bmax = np.empty((8, 1), dtype=np.float32)
    true = np.empty(8)
    kernels.prepare_rows(s, bmax, true, 8)  # d(j | {}) of each row
    tol = 0.5
    div = np.full(8, true.max() + 1.0)  # every other row: updated gain 1.0 above the best's, truly lower
    div[1::2] = true.max() - 5.0  # far below: never re-scored
    best_row = 6 if near != 6 else 4
    div[best_row] = true.max() + 1.2  # the best updated score
    div[near] = true.max() + 0.8  # within tol of it, after it or before it
    true_best = true.copy()
    true_best[near] = true.max() + 1.5  # ... and truly the best: its row of S is scaled up to say so
    s2 = s.copy()
    s2[near] *= np.float32(true_best[near] / true[near])
    bmax2 = np.maximum(bmax, s2.max(axis=1, keepdims=True))
    picked = np.zeros(8, dtype=np.bool_)
    picked[2] = near != 2  # a picked row is never a candidate
    cur, cmin, out = np.zeros(8, dtype=np.float32), np.zeros(1, dtype=np.float32), np.empty(8, dtype=np.int64)
    j, rescored = kernels._exact_argmax(s2, bmax2, 8, cur, cmin, div.copy(), 1.0, np.zeros(8), picked, tol, out)
    assert j == near
    # re-scored: exactly the unpicked rows within tol of the best updated score (the even rows, 1.0 and 0.8 below)
    within = [r for r in range(8) if not picked[r] and div[r] >= div.max() - tol]
    assert rescored == len(within)
    assert sorted(out[:rescored].tolist()) == within


@needs_numba
def test_near_tie_candidates_are_exactly_the_rows_within_tol_of_the_best():
    # updated scores in row order; the best is 1.2 and tol 0.5, so rows 2, 3, 4, 6 and 7 (>= 0.7) are re-scored, not
    # row 0 or 1 (within tol of the best seen before row 2) nor row 5
    offsets = np.array([0.0, 0.3, 1.2, 0.75, 0.72, -3.0, 1.0, 0.71])
    s = np.eye(8, dtype=np.float32)
    bmax = np.ones((8, 1), dtype=np.float32)
    cur, cmin, out = np.zeros(8, dtype=np.float32), np.zeros(1, dtype=np.float32), np.empty(8, dtype=np.int64)
    picked = np.zeros(8, dtype=np.bool_)
    j, rescored = kernels._exact_argmax(s, bmax, 8, cur, cmin, 10.0 + offsets, 1.0, np.zeros(8), picked, 0.5, out)
    assert out[:rescored].tolist() == [2, 3, 4, 6, 7]
    assert j == 2  # every re-scored gain is 1 (S = I): the tie goes to the lower row


@needs_numba
def test_incremental_phase_runs_and_matches_lazy_on_a_larger_pool(monkeypatch):
    x = clustered(n=3000, d=32, n_clusters=60, seed=3)
    k = 300
    w, bonus = terms(len(x), k, 0.3, np.random.default_rng(2).random(len(x)))
    lazy = run(x, k, w, bonus, "lazy", backend="numba")
    monkeypatch.setattr(kernels, "EXACT_FROM_FIRST", 0.5)  # more covers than rows: never from the first pick
    inc = run(x, k, w, bonus, "incremental", incremental_after=8, backend="numba")
    assert inc.details["incremental_from_pick"] > 1  # both phases ran
    np.testing.assert_array_equal(inc.indices, lazy.indices)
    np.testing.assert_array_equal(inc.gains, lazy.gains)  # decided on the same directly computed numbers
    assert lazy.evaluations < 3000 * k / 10  # lazy greedy re-scores far fewer rows than plain greedy


@needs_numba
def test_incremental_from_the_first_pick_when_it_raises_enough_covers(monkeypatch):
    # the first pick's covers, counted here: N / EXACT_FROM_FIRST of them or more start the exact updates right
    # after it (no re-score: every gain is still exact), fewer leave lazy greedy running. The same picks and gains
    # either way
    x = clustered(n=3000, d=32, n_clusters=60, seed=3)
    n, k = len(x), 200
    w, bonus = terms(n, k, 0.3, np.random.default_rng(2).random(n))
    lazy = run(x, k, w, bonus, "lazy", backend="numba")
    first = int(lazy.indices[0])
    xt = torch.from_numpy(x)
    covers = int(((xt @ xt.T)[:, first] > 0).sum())  # the engine's S holds the values of this product
    assert n / 4 <= covers < n  # the default (1/4) starts at the first pick here
    # divisors that ask for exactly `covers` covers, then for one more (ceil(N / divisor) is the count asked for)
    for divisor, from_pick in ((kernels.EXACT_FROM_FIRST, 1), (n / (covers - 0.5), 1), (n / (covers + 0.5), None)):
        monkeypatch.setattr(kernels, "EXACT_FROM_FIRST", divisor)
        inc = run(x, k, w, bonus, "incremental", backend="numba")
        np.testing.assert_array_equal(inc.indices, lazy.indices)
        np.testing.assert_array_equal(inc.gains, lazy.gains)
        if from_pick is None:
            assert inc.details["incremental_from_pick"] != 1
        else:
            assert inc.details["incremental_from_pick"] == from_pick


def test_auto_backend_compiles_only_for_larger_pools():
    x = clustered(n=400)
    assert facility_location_greedy(torch.from_numpy(x), 5, show_progress=False).details["backend"] == "torch"
    if kernels.HAS_NUMBA:
        big = clustered(n=4096, d=8, seed=1)
        assert facility_location_greedy(torch.from_numpy(big), 5, show_progress=False).details["backend"] == "numba"


@needs_numba
def test_numba_and_torch_backends_agree():
    x = clustered(n=800, seed=5)
    w, bonus = terms(800, 50, 0.5, np.random.default_rng(5).random(800))
    a = run(x, 50, w, bonus, "lazy", backend="numba")
    b = run(x, 50, w, bonus, "lazy", backend="torch")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.gains, b.gains, rtol=1e-12)
    assert a.coverage == pytest.approx(b.coverage, rel=1e-12)


def test_bad_backend():
    from hf_diverse.errors import InvalidParameterError

    x = clustered(n=50)
    with pytest.raises(InvalidParameterError, match="Valid backends: .*'numba'"):
        facility_location_greedy(torch.from_numpy(x), 5, backend="cython")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


HIDE = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            raise ImportError(name + " is hidden")
sys.meta_path.insert(0, Hide())
"""


def test_engine_imports_without_the_hugging_face_stack():
    # a GPU machine for benchmarks/gpu_check.sh has torch and numba but not datasets, trl or FAISS
    hidden = ("datasets", "trl", "faiss", "transformers", "sentence_transformers", "pyarrow")
    out = _python(
        HIDE.format(hidden=hidden)
        + """
import torch
import hf_diverse.facility as f
x = torch.nn.functional.normalize(torch.randn(300, 16), dim=1)
print(len(f.facility_location_greedy(x, 5, show_progress=False).indices))
print(sorted({m.split(".")[0] for m in sys.modules} & {"datasets", "transformers", "pyarrow"}))
"""
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5", "[]"]


def test_without_numba_the_torch_loops_run_and_say_so():
    x = clustered(n=300, seed=7)
    expected = numpy_greedy(x, 20, 1 / 300, np.zeros(300))
    out = _python(
        HIDE.format(hidden=("numba",))
        + """
import numpy as np, torch
from hf_diverse.facility import facility_location_greedy, kernels
from tests.reference import plain_greedy_on
x = torch.from_numpy(np.load("{path}"))
res = facility_location_greedy(x, 20, diversity_weight=1 / 300, show_progress=False)
print(kernels.HAS_NUMBA, res.details["backend"], *res.indices.tolist())
""".replace("{path}", _save_tmp(x))
    )
    assert out.returncode == 0, out.stderr
    has_numba, backend, *picks = out.stdout.split()
    assert (has_numba, backend) == ("False", "torch")
    assert [int(p) for p in picks] == expected
    assert "numba is not installed" in out.stderr and "pip install numba" in out.stderr


def _save_tmp(a: np.ndarray) -> str:
    import tempfile

    path = os.path.join(tempfile.mkdtemp(prefix="hf_diverse_kernels_"), "x.npy")
    np.save(path, a)
    return path


@needs_numba
def test_compiled_kernels_are_cached_on_disk():
    # the first call in an environment compiles (~10 s); later processes must load the machine code instead
    kernels.warm_up()
    out = _python(
        """
import time
t0 = time.perf_counter()
from hf_diverse.facility import kernels
kernels.warm_up()
print(kernels.greedy.stats.cache_hits.total() > 0, kernels.prepare_rows.stats.cache_hits.total() > 0)
print(round(time.perf_counter() - t0, 2))
"""
    )
    assert out.returncode == 0, out.stderr
    hits, seconds = out.stdout.split("\n")[:2]
    assert hits == "True True", out.stdout
    print("warm-up from the cache:", seconds, "s")


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_cuda_same_picks_as_cpu(alpha):
    x = clustered(n=2000, d=32, n_clusters=40, seed=11)
    k = 100
    w, bonus = terms(len(x), k, alpha, np.random.default_rng(11).random(len(x)))
    cpu = run(x, k, w, bonus, "lazy", backend="numba" if kernels.HAS_NUMBA else "torch")
    for strategy, extra in STRATEGIES[1:] + [("blocked", {})]:
        gpu = run(x, k, w, bonus, strategy, device="cuda", **extra)
        assert gpu.details["backend"] == "torch"
        np.testing.assert_array_equal(gpu.indices, cpu.indices, err_msg=f"{strategy} {extra}")
        assert gpu.coverage == pytest.approx(cpu.coverage, rel=1e-6)


@needs_cuda
@pytest.mark.gpu
def test_cuda_exact_ties_go_to_the_lower_row():
    x, quality = tied_pool(seed=3)
    k = 30
    w, bonus = terms(len(x), k, 0.7, quality)
    expected = numpy_greedy(x, k, w, bonus)
    for strategy, extra in STRATEGIES:
        assert run(x, k, w, bonus, strategy, device="cuda", **extra).indices.tolist() == expected, strategy


@needs_cuda
@pytest.mark.gpu
def test_cuda_knn_graph_and_sparse_greedy_match_cpu():
    from hf_diverse.facility import build_knn_graph, sparse_facility_location_greedy

    x = torch.from_numpy(clustered(n=4000, d=32, n_clusters=40, seed=13))
    cpu = build_knn_graph(x, 16, knn="exact", cache=False, show_progress=False)
    gpu = build_knn_graph(x.cuda(), 16, knn="exact", cache=False, show_progress=False)
    assert gpu.info["search_dtype"] == "bfloat16" and cpu.info["search_dtype"] == "float32"
    assert abs(gpu.nnz - cpu.nnz) <= cpu.nnz // 100  # bfloat16 candidates, float32 decisions: nearly the same graph
    w, bonus = terms(4000, 100, 0.7, np.random.default_rng(13).random(4000))
    for strategy in ("sparse", "stochastic"):
        kw = dict(bonus=torch.from_numpy(bonus), diversity_weight=w, strategy=strategy, show_progress=False)
        on_cpu = sparse_facility_location_greedy(cpu, 100, embeddings=x, **kw)
        on_gpu = sparse_facility_location_greedy(cpu.to("cuda"), 100, embeddings=x.cuda(), **kw)
        np.testing.assert_array_equal(on_gpu.indices, on_cpu.indices, err_msg=strategy)
