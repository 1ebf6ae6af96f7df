"""What every facility-location strategy shares: the objective, the score's checks, the result and the lazy pick.

The engine maximises, greedily, the marginal score

    f(j | A) = w * d(j | A) + b_j,    d(A) = sum_{v in V} max_{a in A} max(0, e_a . e_v)

over L2-normalised embeddings e, with a diversity weight w >= 0 and an optional per-row bonus b (a modular term,
fixed per row). It knows nothing of quality or alpha: QDIT (`hf_diverse.selection.qdit`) decides w and b. f is
monotone submodular for b >= 0, so lazy greedy returns the same set as plain greedy. Ties go to the lower row.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import EmbeddingError, InvalidParameterError
from ..utils.logging import get_logger
from .cover import COVER_BATCH, SCREEN_MIN_ROWS, Cover, bf16_matmul_is_fast, row_norms

logger = get_logger(__name__)

# a row whose L2 norm is within this of 1 counts as unit length (`hf_diverse.embeddings` rescales the others on read)
NORM_TOLERANCE = 1e-3


@dataclass
class GreedyResult:
    """The picks of a greedy run.

    Args:
        indices (`np.ndarray` of int64): rows in pick order.
        gains (`np.ndarray` of float64): f(j | A) at pick time.
        diversity_gains (`np.ndarray` of float64): d(j | A) at pick time (NaN where it was not computed).
        coverage (`float`): d(A) of the picks, float64 (on the sparse objective for kNN-graph strategies).
        strategy (`str`): the strategy that ran.
        evaluations (`int`): marginal-gain evaluations (similarity rows or graph entries scanned).
        details (`dict`): strategy-specific figures for the provenance.
    """

    indices: np.ndarray
    gains: np.ndarray
    diversity_gains: np.ndarray
    coverage: float
    strategy: str
    evaluations: int
    details: dict = field(default_factory=dict)


def check_embeddings(x: torch.Tensor, chunk_rows: int = 16384) -> None:
    """Refuse embeddings that are not an `(N, d)` float tensor of finite values, naming the first bad row; warn when
    rows are off unit length (by more than `NORM_TOLERANCE`, or the dtype's rounding for 16-bit floats): every
    strategy then works on their dot products, which are not cosines and can exceed 1.

    Example:
    ```py
    >>> check_embeddings(torch.nn.functional.normalize(torch.randn(10, 4), dim=1))
    >>> check_embeddings(torch.tensor([[1.0, 0.0], [float("nan"), 0.0]]))
    Traceback (most recent call last):
    ...
    hf_diverse.errors.EmbeddingError: Row 1 of the embeddings is not finite (NaN, inf, or too large for float32).
    ```
    """
    if x.dim() != 2 or not x.is_floating_point() or x.shape[1] == 0:
        raise EmbeddingError(
            f"embeddings must be an (N, d) float tensor with d >= 1, got shape {tuple(x.shape)} and dtype {x.dtype}."
        )
    tol = max(NORM_TOLERANCE, 4 * torch.finfo(x.dtype).eps)
    off, low, high = 0, math.inf, -math.inf
    for start in range(0, x.shape[0], chunk_rows):
        norms = row_norms(x[start : start + chunk_rows])
        bad = ~torch.isfinite(norms)
        if bool(bad.any()):
            row = start + int(torch.nonzero(bad)[0])
            raise EmbeddingError(f"Row {row} of the embeddings is not finite (NaN, inf, or too large for float32).")
        off += int(((norms - 1.0).abs() > tol).sum())
        low, high = min(low, float(norms.min())), max(high, float(norms.max()))
    if off:
        logger.warning(
            "%d of %d embedding rows are off unit length (norms %.4g to %.4g): similarities are their dot products, "
            "not cosines. L2-normalise them first (torch.nn.functional.normalize(x, dim=1)) for cosine similarity.",
            off,
            x.shape[0],
            low,
            high,
        )


def check_score(n: int, k: int, bonus, diversity_weight: float, device) -> torch.Tensor:
    """Validate `k`, `diversity_weight` and `bonus`; return the bonus as a float64 tensor on `device` (or zeros)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k <= n:
        raise InvalidParameterError(f"k must be an integer in [1, {n}] (the pool size), got {k!r}.")
    if not math.isfinite(diversity_weight) or diversity_weight < 0:
        raise InvalidParameterError(f"diversity_weight must be a finite number >= 0, got {diversity_weight}.")
    if bonus is None:
        return torch.zeros(n, dtype=torch.float64, device=device)
    b = torch.as_tensor(np.asarray(bonus) if not isinstance(bonus, torch.Tensor) else bonus, dtype=torch.float64)
    if b.shape != (n,):
        raise InvalidParameterError(f"bonus must hold one value per row ({n}), got shape {tuple(b.shape)}.")
    if not bool(torch.isfinite(b).all()):
        raise InvalidParameterError("bonus has NaN or inf values.")
    return b.to(device)


def top_bonus(b: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of highest bonus (ties to the lower row) and their bonuses: the picks when the diversity weight
    is 0, where no similarity is needed."""
    order = torch.argsort(-b, stable=True)[:k]
    return order.cpu().numpy(), b[order].cpu().numpy()


def facility_location_objective(x: torch.Tensor, indices, block_size: int = 4096) -> float:
    """d(A) = sum_v max_{a in A} max(0, sim(a, v)), computed in blocks in float64 (never N x N). The embeddings are
    checked as the greedy checks them (`check_embeddings`), and every index must be a row (no negative indexing).

    Example:
    ```py
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> round(facility_location_objective(x, [0]), 4)  # 1 + 0 + 0.6
    1.6
    ```
    """
    check_embeddings(x)
    rows = np.asarray(indices)
    if rows.size and (rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer)):
        raise InvalidParameterError(f"indices must be a 1-D sequence of row numbers, got {rows.dtype} {rows.shape}.")
    if rows.size and not (0 <= rows.min() and rows.max() < x.shape[0]):
        bad = int(rows[(rows < 0) | (rows >= x.shape[0])][0])
        raise InvalidParameterError(f"index {bad} is not a row of the embeddings (valid: 0 to {x.shape[0] - 1}).")
    return coverage_of(x, rows, block_size)


def coverage_of(x: torch.Tensor, rows: np.ndarray, block_size: int = 4096) -> float:
    """`facility_location_objective` without its checks, for callers that have checked `x` and `rows` already.

    Example:
    ```py
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> round(coverage_of(x, np.array([0, 1])), 4)  # 1 + 1 + 0.8
    2.8
    ```
    """
    idx = torch.as_tensor(rows, dtype=torch.long, device=x.device)
    if idx.numel() == 0:
        return 0.0
    if x.shape[0] >= SCREEN_MIN_ROWS and bf16_matmul_is_fast(x.device):
        # large pools on CPUs with bfloat16 matrix units: screened products, the same float32 cover (`Cover`)
        cover = Cover(x)
        for start in range(0, idx.numel(), COVER_BATCH):
            cover.raise_(idx[start : start + COVER_BATCH])
        return cover.total()
    sel = x[idx]
    total = 0.0
    for start in range(0, x.shape[0], block_size):
        sims = x[start : start + block_size] @ sel.T
        total += float(sims.max(dim=1).values.clamp(min=0).sum(dtype=torch.float64))
    return total


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
