"""QDIT: greedy facility location plus alpha * quality, in torch, on the embeddings' device.

Diversity is the facility-location function over the pool V (N rows):

    d(A) = sum_v max_{a in A} max(0, e_a . e_v)

and a candidate j is scored by (hf_diverse's reading of the paper's scaling, see METHODS.md §1):

    f(j | A) = (1 - alpha) * d(j | A) / N  +  alpha * q~(j) / k

with q~ the quality min-max rescaled to [0, 1] over the pool. Both terms are on the scale of a mean; without the 1/k
the quality term swamps late diversity gains (~1e-4) and alpha=0.7 silently becomes top-quality selection.
f is monotone submodular, so lazy greedy returns the same set as plain greedy.

Strategies (all exact, same ranking):
- `"dense"`: the clamped similarity matrix S (N x N float32) is built in blocks, then plain greedy re-scores every
  candidate at every step. O(k N^2): a reference for small pools.
- `"lazy"`: S is built in blocks, then lazy greedy (stale upper bounds, re-scored in small batches).
- `"incremental"`: S is built in blocks; lazy greedy runs while it is cheap, and once a pick needs more re-scoring
  than an exact update would cost, every candidate's gain is re-scored once and then kept exact by subtracting, after
  each pick j,
  what j took away: for the points v whose cover rises from old_v to new_v = S[j, v], candidate i loses
  clamp(S[v, i], old_v, new_v) - old_v. Since S is symmetric those are contiguous rows S[v, :], so the work per pick
  is |{v covered better}| * N memory-bound operations (summed over all picks: a few N^2 on clustered data), with no
  re-scoring loop. Gains are summed in float64, so the ranking equals plain greedy's.
- `"blocked"`: S is never stored; lazy greedy recomputes the similarity rows it needs from the embeddings, block by
  block. Memory O(N d + B N).
- `"auto"`: `"incremental"` when S fits in the memory budget (default: half the free memory of the device), else
  `"blocked"` (`select_qdit` falls back to `"sparse"` instead).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InsufficientMemoryError, InvalidParameterError
from ..utils.device import available_memory_bytes
from ..utils.logging import get_logger
from ..utils.progress import tqdm

logger = get_logger(__name__)

STRATEGIES = ("auto", "dense", "lazy", "incremental", "blocked")


@dataclass
class GreedyResult:
    indices: np.ndarray  # picks in order
    gains: np.ndarray  # f(j | A) at pick time
    diversity_gains: np.ndarray  # d(j | A) at pick time
    coverage: float  # d(A), float64
    strategy: str
    evaluations: int  # exact marginal-gain evaluations (incremental: similarity rows scanned in updates)


def dense_matrix_bytes(n: int) -> int:
    return 4 * n * n


def choose_strategy(n: int, device: torch.device, memory_budget: int | None = None, fallback: str = "blocked") -> str:
    """The documented auto rule: store S (incremental, exact) when 4*N^2 bytes fit the budget, else `fallback`.

    `facility_location_greedy` (exact strategies only) falls back to `"blocked"`; `select_qdit` passes
    `fallback="sparse"` (kNN graph, memory O(N m), see `hf_diverse.selection.sparse`)."""
    budget = memory_budget if memory_budget is not None else available_memory_bytes(device) // 2
    return "incremental" if dense_matrix_bytes(n) <= budget else fallback


def lazy_pick(ub: torch.Tensor, stamp: torch.Tensor, step: int, remaining: int, rescore, eval_batch: int = 16):
    """One lazy-greedy pick: returns `(j, n_rescored)`.

    `ub` holds upper bounds on each candidate's score (exact where `stamp == step`; picked rows hold -inf). While the
    best bound is stale, the stale candidates among the top `eval_batch` (doubling, up to 1024) are re-scored with
    `rescore(idx) -> exact scores`. Submodularity makes stale scores upper bounds, so the first fresh maximum is the
    plain-greedy pick (ties to the lower index, as `argmax`)."""
    batch, n_rescored = eval_batch, 0
    while True:
        j = int(torch.argmax(ub))
        if int(stamp[j]) == step:
            return j, n_rescored
        top = torch.topk(ub, min(batch, remaining)).indices
        stale = top[stamp[top] != step]
        ub[stale] = rescore(stale)
        stamp[stale] = step
        n_rescored += int(stale.numel())
        batch = min(batch * 2, 1024)


def _similarity_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return (x[rows] @ x.T).clamp_(min=0)


def build_similarity(x: torch.Tensor, block_size: int = 2048, show_progress: bool = False) -> torch.Tensor:
    """S = max(0, X X^T) as float32, computed block by block into one preallocated matrix."""
    n = x.shape[0]
    s = torch.empty((n, n), dtype=torch.float32, device=x.device)
    for start in tqdm(range(0, n, block_size), desc="Similarities", disable=not show_progress, leave=False):
        torch.matmul(x[start : start + block_size], x.T, out=s[start : start + block_size])
    return s.clamp_(min=0)


def facility_location_objective(x: torch.Tensor, indices, block_size: int = 4096) -> float:
    """d(A) = sum_v max_{a in A} max(0, sim(a, v)), computed in blocks in float64 (never N x N)."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=x.device)
    if idx.numel() == 0:
        return 0.0
    sel = x[idx]
    total = 0.0
    for start in range(0, x.shape[0], block_size):
        sims = x[start : start + block_size] @ sel.T
        total += float(sims.max(dim=1).values.clamp(min=0).sum(dtype=torch.float64))
    return total


def facility_location_greedy(
    embeddings: torch.Tensor,
    k: int,
    quality: np.ndarray | torch.Tensor | None = None,
    alpha: float = 0.0,
    strategy: str = "auto",
    block_size: int = 2048,
    eval_batch: int = 16,
    incremental_after: int = 64,
    memory_budget: int | None = None,
    show_progress: bool = True,
) -> GreedyResult:
    """Greedy maximisation of f(j|A) = (1-alpha) d(j|A)/N + alpha q~(j)/k over L2-normalised embeddings.

    Args:
        embeddings (`torch.Tensor` of shape `(N, d)`): L2-normalised rows; the work runs on their device.
        k (`int`): number of picks.
        quality (array of shape `(N,)`, *optional*): quality already rescaled to [0, 1]; required when alpha > 0.
        alpha (`float`, defaults to 0): weight of quality; 0 is classical greedy, 1 is top-quality selection.
        strategy (`str`, defaults to `"auto"`): one of `STRATEGIES` (see the module docstring).
        block_size (`int`): rows per similarity block.
        eval_batch (`int`): stale candidates re-scored together in the lazy loop.
        incremental_after (`int`, defaults to 64): `"incremental"` switches to exact updates after a pick that
            re-scored more than max(this, 2 * newly covered) rows; 0 switches after the first pick.
        memory_budget (`int`, *optional*): bytes allowed for S; defaults to half of the device's free memory.

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
    n = embeddings.shape[0]
    if not 0 < k <= n:
        raise InvalidParameterError(f"k must be in [1, {n}] (the pool size), got {k}.")
    if not 0.0 <= alpha <= 1.0:
        raise InvalidParameterError(f"alpha must be in [0, 1], got {alpha}.")
    device = embeddings.device
    x = embeddings.to(torch.float32).contiguous()
    if quality is None:
        if alpha > 0:
            raise InvalidParameterError("alpha > 0 needs quality scores.")
        q = torch.zeros(n, dtype=torch.float64, device=device)
    else:
        q = torch.as_tensor(np.asarray(quality), dtype=torch.float64).to(device)
    modular = alpha * q / k  # the quality term of f, fixed per candidate
    w_div = (1.0 - alpha) / n
    if strategy == "auto":
        strategy = choose_strategy(n, device, memory_budget)
    elif strategy in ("dense", "lazy", "incremental"):
        budget = memory_budget if memory_budget is not None else available_memory_bytes(device)
        if dense_matrix_bytes(n) > budget:
            raise InsufficientMemoryError(
                f"strategy={strategy!r} needs a {n}x{n} float32 similarity matrix "
                f"({dense_matrix_bytes(n) / 2**30:.1f} GiB) but only {budget / 2**30:.1f} GiB are available on "
                f"{device}. Use strategy='blocked' (exact, recomputes rows) or strategy='sparse' (approximate)."
            )
    logger.info("facility location: N=%d k=%d alpha=%s strategy=%s device=%s", n, k, alpha, strategy, device)

    if alpha == 1.0:
        # f reduces to q~/k: top-quality, ties by lower index, no similarity needed
        order = torch.argsort(-q, stable=True)[:k]
        idx = order.cpu().numpy()
        return GreedyResult(
            idx,
            (q[order] / k).cpu().numpy(),
            np.full(k, np.nan),
            facility_location_objective(x, idx, block_size),
            "quality-only",
            0,
        )

    s = build_similarity(x, block_size, show_progress) if strategy in ("dense", "lazy", "incremental") else None
    if s is not None:
        rows_of = lambda rows: s[rows]
    else:
        rows_of = lambda rows: _similarity_rows(x, rows)
    cur = torch.zeros(n, dtype=torch.float32, device=device)

    def exact_div(rows: torch.Tensor) -> torch.Tensor:
        return (rows_of(rows) - cur).clamp_(min=0).sum(dim=1, dtype=torch.float64)

    all_rows = torch.arange(n, device=device)
    picks, gains, div_gains = [], [], []
    evaluations = 0
    neg_inf = torch.tensor(-math.inf, dtype=torch.float64, device=device)
    bar = tqdm(total=k, desc=f"QDIT greedy ({strategy})", disable=not show_progress)
    if strategy == "dense":
        selected = torch.zeros(n, dtype=torch.bool, device=device)
        for _ in range(k):
            div = torch.cat([exact_div(all_rows[i : i + block_size]) for i in range(0, n, block_size)])
            evaluations += n
            score = torch.where(selected, neg_inf, w_div * div + modular)
            j = int(torch.argmax(score))
            picks.append(j)
            gains.append(float(score[j]))
            div_gains.append(float(div[j]))
            selected[j] = True
            cur = torch.maximum(cur, rows_of(all_rows[j : j + 1])[0])
            bar.update(1)
    else:
        # lazy greedy; "incremental" switches, once lazy needs more re-scoring per pick than an exact update costs,
        # to keeping every gain exact (one full re-score, then per-pick updates over the newly covered rows)
        div = torch.cat([exact_div(all_rows[i : i + block_size]) for i in range(0, n, block_size)])
        evaluations += n
        ub = w_div * div + modular  # upper bounds on f (exact at step 0)
        stamp = torch.zeros(n, dtype=torch.long, device=device)  # step at which ub was last exact
        exact_phase, penalty = False, None

        def rescore(stale):
            div[stale] = exact_div(stale)
            return w_div * div[stale] + modular[stale]

        for step in range(k):
            step_evals = 0
            if exact_phase:
                j = int(torch.argmax(w_div * div + modular + penalty))
            else:
                j, step_evals = lazy_pick(ub, stamp, step, n - step, rescore, eval_batch)
            picks.append(j)
            gains.append(float(w_div * div[j] + modular[j]))
            div_gains.append(float(div[j]))
            ub[j] = neg_inf
            stamp[j] = -1
            row = rows_of(all_rows[j : j + 1])[0]
            improved = torch.nonzero(row > cur).squeeze(1)
            if exact_phase:
                penalty[j] = neg_inf
                old, new = cur[improved], row[improved]
                for start in range(0, improved.numel(), 256):
                    lo, hi = old[start : start + 256, None], new[start : start + 256, None]
                    covered = s[improved[start : start + 256]]  # S is symmetric: row v holds S[:, v]
                    # the improvement each covered row v takes from candidate i: clamp(S[v, i], old_v, new_v) - old_v;
                    # summed in float32 within a chunk (terms <= new_v - old_v), accumulated in float64
                    lost = torch.clamp(covered, min=lo, max=hi).sub_(lo).sum(dim=0)
                    div -= lost.to(torch.float64)
                step_evals += int(improved.numel())
            cur[improved] = row[improved]
            evaluations += step_evals
            lazy_too_costly = step_evals > max(incremental_after, 2 * improved.numel()) or incremental_after == 0
            if strategy == "incremental" and not exact_phase and lazy_too_costly:
                div = torch.cat([exact_div(all_rows[i : i + block_size]) for i in range(0, n, block_size)])
                evaluations += n
                penalty = torch.zeros(n, dtype=torch.float64, device=device)
                penalty[torch.as_tensor(picks, device=device)] = neg_inf
                exact_phase = True
            bar.update(1)
    bar.close()
    coverage = float(cur.sum(dtype=torch.float64))
    return GreedyResult(
        np.asarray(picks, dtype=np.int64), np.asarray(gains), np.asarray(div_gains), coverage, strategy, evaluations
    )
