"""Exact greedy facility location over a stored similarity matrix (or recomputed rows).

Maximises f(j | A) = w * d(j | A) + b_j (see `hf_diverse.facility.objective`). On CPU the loops run as compiled numba
kernels (`hf_diverse.facility.kernels`, `backend="numba"`); on GPU, or without numba, as torch loops on the device
(`backend="torch"`). Strategies, all exact, same ranking:

- `"dense"`: the clamped similarity matrix S = max(0, X X^T) (N x N float32) is built in blocks, then plain greedy
  re-scores every candidate at every step. O(k N^2): a reference for small pools.
- `"lazy"`: S is built in blocks, then lazy greedy (stale upper bounds, re-scored in small batches).
- `"incremental"`: S is built in blocks; lazy greedy runs while it is cheap, and once a pick needs more re-scoring than
  an exact update would cost, every candidate's gain is re-scored once (compiled: not at all when the first pick raised
  the cover of N / 4 rows or more, the gains being still exact then) and then kept exact by subtracting, after each
  pick j, what j took away: for the points v whose cover rises from old_v to new_v = S[j, v], candidate i loses
  clamp(S[v, i], old_v, new_v) - old_v. Since S is symmetric those are contiguous rows S[v, :], so the work per pick is
  |{v covered better}| * N memory-bound operations (summed over all picks: a few N^2 on clustered data), with no
  re-scoring loop. Gains are accumulated in float64; since updated gains carry rounding of their own, every pick
  re-scores directly the candidates within a rounding bound of the best, so exact ties go to the lower row as in plain
  greedy.
- `"blocked"`: S is never stored (`hf_diverse.facility.blocked`). Compiled: one pass of products keeps the largest
  similarities of each row, as many as `memory_budget` allows, and the incremental updates read those, recomputing
  the rows of S still under their kept threshold (a few N rows in all on clustered data); torch: lazy greedy
  recomputes the rows it re-scores. The same picks as the stored strategies.
- `"auto"`: `"incremental"` when S fits in the memory budget (default: half the free memory of the device), else
  `"blocked"` (QDIT falls back to the kNN graph instead, see `hf_diverse.facility.memory.choose_strategy`).

With w = 0 no similarity is needed: the k rows of largest bonus are returned (ties to the lower row).

The compiled strategies keep S (and `"blocked"` its kept similarities) on 2 MiB pages where the kernel gives them
cheaply (`hf_diverse.facility.memory.page_buffer`; `details["pages"]` says how S was paged).
"""

import math
import time

import numpy as np
import torch

from ..errors import InvalidParameterError
from ..utils.logging import get_logger
from ..utils.progress import tqdm
from . import kernels
from .blocked import blocked_greedy, similarity_rows
from .memory import check_dense_fits, choose_strategy, default_budget, page_buffer
from .objective import GreedyResult, check_embeddings, check_score, coverage_of, lazy_pick, top_bonus
from .toplists import top_per_row

logger = get_logger(__name__)

STRATEGIES = ("auto", "dense", "lazy", "incremental", "blocked")
BACKENDS = ("auto", "numba", "torch")
# `backend="auto"` compiles (or loads) the numba kernels from this pool size up; below it the torch loops take well
# under a second and a first call in a fresh environment does not wait ~10 s for the compilation
NUMBA_MIN_ROWS = 4096
SIMILARITY_BLOCK_BYTES = 64 * 2**20  # rows of S per block of the numba strategies' build: ~64 MiB
_warned_no_numba = False


def build_similarity(x: torch.Tensor, block_size: int = 2048, show_progress: bool = False) -> torch.Tensor:
    """S = max(0, X X^T) as float32, computed block by block into one preallocated matrix."""
    n = x.shape[0]
    s = torch.empty((n, n), dtype=torch.float32, device=x.device)
    for start in tqdm(range(0, n, block_size), desc="Similarities", disable=not show_progress, leave=False):
        torch.matmul(x[start : start + block_size], x.T, out=s[start : start + block_size])
    return s.clamp_(min=0)


def facility_location_greedy(
    embeddings: torch.Tensor,
    k: int,
    bonus: np.ndarray | torch.Tensor | None = None,
    diversity_weight: float = 1.0,
    strategy: str = "auto",
    block_size: int = 2048,
    eval_batch: int = 16,
    incremental_after: int = 64,
    memory_budget: int | None = None,
    show_progress: bool = True,
    backend: str = "auto",
) -> GreedyResult:
    """Exact greedy maximisation of f(j|A) = diversity_weight * d(j|A) + bonus[j] over L2-normalised embeddings.

    Args:
        embeddings (`torch.Tensor` of shape `(N, d)`): L2-normalised rows; the work runs on their device.
        k (`int`): number of picks.
        bonus (array of shape `(N,)`, *optional*): a fixed per-row term added to the score (QDIT: alpha q~ / k).
        diversity_weight (`float`, defaults to 1.0): weight of the marginal coverage d(j|A); 0 returns the top-k bonus.
        strategy (`str`, defaults to `"auto"`): one of `STRATEGIES` (see the module docstring).
        block_size (`int`, defaults to 2048): rows per similarity block (torch loops).
        eval_batch (`int`, defaults to 16): stale candidates re-scored together in the torch lazy loop.
        incremental_after (`int`, defaults to 64): `"incremental"` switches to exact updates after a pick that
            re-scored more than max(this, 2 * newly covered) rows; 0 switches after the first pick. The compiled
            loop also switches after the first pick when it raised the cover of at least N / 4 rows
            (`kernels.EXACT_FROM_FIRST`; usual on embeddings, where most similarities are positive).
        memory_budget (`int`, *optional*): bytes allowed for S, or for `"blocked"` (compiled) the similarities it
            keeps, 8 bytes each (`hf_diverse.facility.toplists.top_per_row`); defaults to the device's free memory
            (half of it for `"auto"` and `"blocked"`).
        show_progress (`bool`, defaults to `True`): a progress bar over the k picks (torch loops) or the similarity
            blocks (numba).
        backend (`str`, defaults to `"auto"`): `"numba"` (compiled CPU kernels, `hf_diverse.facility.kernels` and
            `hf_diverse.facility.blocked`), `"torch"` (torch loops on the embeddings' device) or `"auto"`: numba on
            CPU from 4096 rows (`NUMBA_MIN_ROWS`; smaller pools do not wait for the first compilation), else torch.
            Both give the same picks.

    Example:
    ```py
    >>> x = torch.nn.functional.normalize(torch.randn(1000, 32), dim=1)
    >>> res = facility_location_greedy(x, k=10)
    >>> res.indices.shape
    (10,)
    ```
    """
    if strategy not in STRATEGIES:
        raise InvalidParameterError(f"Unknown strategy {strategy!r}. Valid strategies: {list(STRATEGIES)}.")
    if backend not in BACKENDS:
        raise InvalidParameterError(f"Unknown backend {backend!r}. Valid backends: {list(BACKENDS)}.")
    check_embeddings(embeddings)
    n, device = embeddings.shape[0], embeddings.device
    x = embeddings.to(torch.float32).contiguous()
    b = check_score(n, k, bonus, diversity_weight, device)
    if strategy == "auto":
        strategy = choose_strategy(n, device, memory_budget)
    else:
        check_dense_fits(strategy, n, device, memory_budget)
    backend = _resolve_backend(backend, strategy, device, n)
    logger.info(
        "facility location: N=%d k=%d w=%s strategy=%s backend=%s device=%s",
        n,
        k,
        diversity_weight,
        strategy,
        backend,
        device,
    )
    if diversity_weight == 0:
        idx, gains = top_bonus(b, k)
        return GreedyResult(idx, gains, np.full(k, np.nan), coverage_of(x, idx, block_size), "top-bonus", 0)
    if backend == "numba" and strategy == "blocked":
        top = top_per_row(n, default_budget(device, memory_budget))
        return blocked_greedy(x, k, diversity_weight, b, top, show_progress)
    if backend == "numba":
        return _numba_greedy(x, k, diversity_weight, b, strategy, incremental_after, show_progress)
    if strategy == "blocked":
        rows_of, s = similarity_rows(x), None
    else:
        s = build_similarity(x, block_size, show_progress)
        rows_of = s.__getitem__
    bar = tqdm(total=k, desc=f"Facility location ({strategy})", disable=not show_progress)
    if strategy == "dense":
        out = _plain_greedy(rows_of, n, k, diversity_weight, b, block_size, bar)
    else:
        out = _lazy_greedy(
            rows_of, s, n, k, diversity_weight, b, strategy, block_size, eval_batch, incremental_after, bar
        )
    bar.close()
    picks, gains, div_gains, coverage, evaluations = out
    return GreedyResult(
        np.asarray(picks, dtype=np.int64),
        np.asarray(gains),
        np.asarray(div_gains),
        coverage,
        strategy,
        evaluations,
        {"backend": "torch"},
    )


def _resolve_backend(backend: str, strategy: str, device: torch.device, n: int) -> str:
    """`"auto"`: numba on CPU from `NUMBA_MIN_ROWS` rows when it is importable, else torch."""
    global _warned_no_numba
    compiled = device.type == "cpu"
    if backend == "numba" and not compiled:
        raise InvalidParameterError(
            f"backend='numba' runs the exact strategies on CPU; got strategy={strategy!r} on {device}. "
            "Use backend='torch' or 'auto'."
        )
    if backend == "numba" and not kernels.HAS_NUMBA:
        raise InvalidParameterError("backend='numba' needs numba. Install it with `pip install numba`.")
    if backend == "auto":
        if compiled and not kernels.HAS_NUMBA and not _warned_no_numba:
            logger.warning(
                "numba is not installed: exact greedy runs its torch loops (same picks, several times slower). "
                "Install it with `pip install numba`."
            )
            _warned_no_numba = True
        backend = "numba" if compiled and kernels.HAS_NUMBA and n >= NUMBA_MIN_ROWS else "torch"
    return backend


def _numba_greedy(x, k, w, b, strategy, incremental_after, show_progress) -> GreedyResult:
    """The stored-matrix strategies with the compiled kernels: S and its block maxima built in row blocks (the clamp,
    the block maxima and the initial gains in one pass over each block while it is in cache), then one call."""
    n = x.shape[0]
    width = kernels.block_width(n)
    t0 = time.perf_counter()
    s_np, paging = page_buffer((n, n))
    s = torch.from_numpy(s_np)
    bmax = np.empty((n, -(-n // width)), dtype=np.float32)
    gains0 = np.empty(n, dtype=np.float64)
    rows = max(1, min(n, SIMILARITY_BLOCK_BYTES // (4 * n)))
    for start in tqdm(range(0, n, rows), desc="Similarities", disable=not show_progress, leave=False):
        stop = min(n, start + rows)
        # symmetric: the block's columns left of it were copied in by earlier blocks, so only X_block X[start:]^T is
        # computed (half the flops of X X^T in all) and its transpose fills the rows below; S is exactly symmetric
        torch.matmul(x[start:stop], x[start:].T, out=s[start:stop, start:])
        s[stop:, start:stop].copy_(s[start:stop, stop:].T)
        kernels.prepare_rows(s_np[start:stop], bmax[start:stop], gains0[start:stop], width)
    t1 = time.perf_counter()
    bonus = b.cpu().numpy()
    switched_at = -1
    if strategy == "dense":
        picks, scores, div_gains, coverage, evaluations = kernels.plain_greedy(s_np, bmax, width, k, w, bonus, gains0)
    else:
        incremental = strategy == "incremental"
        threads = kernels.numba.get_num_threads()
        first = math.ceil(n / kernels.EXACT_FROM_FIRST)  # covers the first pick must raise for updates from it on
        out = kernels.greedy(s_np, bmax, width, k, w, bonus, gains0, incremental, incremental_after, first, threads)
        picks, scores, div_gains, coverage, evaluations, switched_at = out
    details = {
        "backend": "numba",
        "similarity_s": round(t1 - t0, 3),
        "greedy_s": round(time.perf_counter() - t1, 3),
        "pages": paging,
    }
    if strategy == "incremental":
        details["incremental_from_pick"] = int(switched_at)
    return GreedyResult(picks, scores, div_gains, coverage, strategy, int(evaluations), details)


def _exact_div(rows_of, cur: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """d(j | A) for the candidate rows `rows`: float64 terms (exact differences of float32 values), float64 sums."""
    return (rows_of(rows).double() - cur.double()).clamp_(min=0).sum(dim=1)


def _all_div(rows_of, cur: torch.Tensor, n: int, block_size: int) -> torch.Tensor:
    rows = torch.arange(n, device=cur.device)
    return torch.cat([_exact_div(rows_of, cur, rows[i : i + block_size]) for i in range(0, n, block_size)])


def _plain_greedy(rows_of, n, k, w, b, block_size, bar):
    """Re-score every candidate at every step: O(k N^2), the reference."""
    device = b.device
    cur = torch.zeros(n, dtype=torch.float32, device=device)
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    neg_inf = torch.tensor(-math.inf, dtype=torch.float64, device=device)
    picks, gains, div_gains, evaluations = [], [], [], 0
    for _ in range(k):
        div = _all_div(rows_of, cur, n, block_size)
        evaluations += n
        score = torch.where(selected, neg_inf, w * div + b)
        j = int(torch.argmax(score))
        picks.append(j)
        gains.append(float(score[j]))
        div_gains.append(float(div[j]))
        selected[j] = True
        cur = torch.maximum(cur, rows_of(torch.tensor([j], device=device))[0])
        bar.update(1)
    return picks, gains, div_gains, float(cur.sum(dtype=torch.float64)), evaluations


def _lazy_greedy(rows_of, s, n, k, w, b, strategy, block_size, eval_batch, incremental_after, bar):
    """Lazy greedy; `"incremental"` switches, once lazy needs more re-scoring per pick than an exact update costs, to
    keeping every gain exact (one full re-score, then per-pick updates over the newly covered rows of S)."""
    device = b.device
    cur = torch.zeros(n, dtype=torch.float32, device=device)
    neg_inf = torch.tensor(-math.inf, dtype=torch.float64, device=device)
    div = _all_div(rows_of, cur, n, block_size)
    evaluations = n
    ub = w * div + b  # upper bounds on f (exact at step 0)
    stamp = torch.zeros(n, dtype=torch.long, device=device)  # step at which ub was last exact
    exact_phase, penalty = False, None

    def rescore(stale):
        div[stale] = _exact_div(rows_of, cur, stale)
        return w * div[stale] + b[stale]

    picks, gains, div_gains = [], [], []
    updates, div_max = 0, float(div.max())
    for step in range(k):
        step_evals = 0
        if exact_phase:
            # updated gains carry rounding: re-score directly every row within a bound of it of the best
            tol = w * 2.0 * (updates + n) * 2.0**-52 * div_max
            j, step_evals = _near_tie_argmax(rows_of, cur, div, w * div + b + penalty, w, b, tol)
        else:
            j, step_evals = lazy_pick(ub, stamp, step, n - step, rescore, eval_batch)
        picks.append(j)
        gains.append(float(w * div[j] + b[j]))
        div_gains.append(float(div[j]))
        ub[j] = neg_inf
        stamp[j] = -1
        row = rows_of(torch.tensor([j], device=device))[0]
        improved = torch.nonzero(row > cur).squeeze(1)
        if exact_phase:
            penalty[j] = neg_inf
            _subtract_lost_gain(s, div, cur, row, improved)
            step_evals += int(improved.numel())
            updates += int(improved.numel())
        cur[improved] = row[improved]
        evaluations += step_evals
        lazy_too_costly = step_evals > max(incremental_after, 2 * improved.numel()) or incremental_after == 0
        if strategy == "incremental" and not exact_phase and lazy_too_costly:
            div = _all_div(rows_of, cur, n, block_size)
            evaluations += n
            penalty = torch.zeros(n, dtype=torch.float64, device=device)
            penalty[torch.as_tensor(picks, device=device)] = neg_inf
            exact_phase = True
        bar.update(1)
    return picks, gains, div_gains, float(cur.sum(dtype=torch.float64)), evaluations


def _near_tie_argmax(rows_of, cur, div, score, w, b, tol) -> tuple[int, int]:
    """The best row of `score` (kept by updates), decided on direct re-scores of every row within `tol` of the best
    (ties: the lower row, as `argmax`). Returns `(row, rows re-scored)`."""
    near = torch.nonzero(score >= score.max() - tol).squeeze(1)
    div[near] = _exact_div(rows_of, cur, near)
    return int(near[torch.argmax(w * div[near] + b[near])]), int(near.numel())


def _subtract_lost_gain(s, div, cur, row, improved, chunk: int = 256) -> None:
    """Exact update of every candidate's d(i | A) after a pick whose similarity row is `row`: each covered row v
    (S is symmetric, so row v of S holds S[:, v]) takes clamp(S[v, i], old_v, new_v) - old_v from candidate i."""
    old, new = cur[improved].double(), row[improved].double()
    for start in range(0, improved.numel(), chunk):
        lo, hi = old[start : start + chunk, None], new[start : start + chunk, None]
        covered = s[improved[start : start + chunk]].double()
        # float64 terms are exact (differences of float32 values): only the float64 sums round
        div -= torch.clamp(covered, min=lo, max=hi).sub_(lo).sum(dim=0)
