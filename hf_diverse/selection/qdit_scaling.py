"""How QDIT puts its two terms on one scale (`QditConfig.scaling`): the engine's diversity weight and bonus.

The paper's score is `(1 - alpha) * d(j | A) + alpha * q(j)` and says nothing of scales; the module docstring of
`hf_diverse.selection.qdit` explains the three scalings. This module computes, for the chosen one, the diversity
weight w and the per-row bonus b that the engine (`hf_diverse.facility`) maximises as `w * d(j | A) + b[j]`, and the
two ends of the `"range"` scaling (`RangeEnds`).
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import InvalidParameterError
from ..utils.logging import get_logger
from .base import minmax

logger = get_logger(__name__)

# scaling -> the marginal score it maximises (recorded in the provenance and shown in the card)
SCALINGS = {
    "range": "f(j|A) = (1 - alpha) * d(j|A) / (d(A_0) - d(A_q)) + alpha * q~(j) / (k * (m(A_q) - m(A_0))), "
    "A_0 = the alpha=0 greedy, A_q = the top-k quality rows, m = mean q~, q~ = min-max rescaled quality over the pool",
    "mean": "f(j|A) = (1 - alpha) * d(j|A) / N + alpha * q~(j) / k, q~ = min-max rescaled quality over the pool",
    "raw": "f(j|A) = (1 - alpha) * d(j|A) + alpha * q(j) (the paper's; q = the quality column as given)",
}
# a range smaller than this (relative to its scale) counts as empty
_EMPTY = 1e-9
_CACHE_SIZE = 8
_ENDS_CACHE: "OrderedDict[tuple, RangeEnds]" = OrderedDict()


@dataclass
class RangeEnds:
    """The two ends of the `"range"` scaling on one pool and k.

    Args:
        diversity_coverage (`float`): d(A_0), the coverage of the alpha = 0 greedy.
        quality_coverage (`float`): d(A_q), the coverage of the k rows of highest quality.
        diversity_quality (`float`): m(A_0), the mean rescaled quality q~ of the alpha = 0 greedy.
        quality_quality (`float`): m(A_q), the mean q~ of the top-k rows.
        cached (`bool`): re-used from an earlier run in this process.
    """

    diversity_coverage: float
    quality_coverage: float
    diversity_quality: float
    quality_quality: float
    cached: bool = False

    @property
    def coverage_range(self) -> float:
        return self.diversity_coverage - self.quality_coverage

    @property
    def quality_range(self) -> float:
        return self.quality_quality - self.diversity_quality

    def is_empty(self, n: int) -> bool:
        """Whether either range is (numerically) empty, so that `"range"` cannot scale by it."""
        return self.coverage_range <= _EMPTY * n or self.quality_range <= _EMPTY

    def positions(self, coverage: float, quality_mean: float) -> dict:
        """Where a subset lies between the ends: 0 at the top-quality end, 1 at the alpha = 0 end for coverage, and
        the other way round for quality.

        Example:
        ```py
        >>> RangeEnds(10.0, 6.0, 0.2, 0.6).positions(coverage=9.0, quality_mean=0.5)
        {'coverage_position': 0.75, 'quality_position': 0.75}
        ```
        """
        return {
            "coverage_position": (coverage - self.quality_coverage) / self.coverage_range,
            "quality_position": (quality_mean - self.diversity_quality) / self.quality_range,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def score_terms(
    quality: np.ndarray | None,
    alpha: float,
    n: int,
    k: int,
    scaling: str = "range",
    ends: RangeEnds | None = None,
) -> tuple[float, torch.Tensor | None]:
    """QDIT's score for the engine: `(diversity weight w, bonus b)` (`b` is `None` without quality).

    Args:
        quality (`np.ndarray`, *optional*): the quality column as given (float64); rescaled here as the scaling needs.
        alpha (`float`): weight of quality, in [0, 1].
        n (`int`) and k (`int`): pool size and budget.
        scaling (`str`, defaults to `"range"`): one of `SCALINGS`.
        ends (`RangeEnds`, *optional*): needed by `"range"` for 0 < alpha < 1 (`range_ends`).

    Example:
    ```py
    >>> w, b = score_terms(np.array([1.0, 3.0]), alpha=0.5, n=2, k=1, scaling="mean")
    >>> w, b.tolist()
    (0.25, [0.0, 0.5])
    >>> w, b = score_terms(np.array([1.0, 3.0]), alpha=0.5, n=2, k=1, scaling="raw")  # alpha * (q - min q)
    >>> w, b.tolist()
    (0.5, [0.0, 1.0])
    ```
    """
    if scaling not in SCALINGS:
        raise InvalidParameterError(f"Unknown scaling {scaling!r}. Valid values of scaling: {list(SCALINGS)}.")
    if quality is None:
        return (1.0 - alpha) / n, None
    q = np.asarray(quality, dtype=np.float64)
    if scaling == "raw":
        # alpha * q(j) up to a constant per pick (which changes no pick): the engine needs b >= 0
        return 1.0 - alpha, torch.as_tensor(alpha * (q - q.min()), dtype=torch.float64)
    q_scaled = torch.as_tensor(minmax(q), dtype=torch.float64)
    if scaling == "mean" or alpha in (0.0, 1.0):  # at the ends every scaling makes the same picks
        return (1.0 - alpha) / n, alpha * q_scaled / k
    if ends is None:
        raise InvalidParameterError("scaling='range' with 0 < alpha < 1 needs the range ends (`range_ends`).")
    return (1.0 - alpha) / ends.coverage_range, alpha * q_scaled / (k * ends.quality_range)


def range_ends(
    q_scaled: np.ndarray,
    k: int,
    diversity_end: Callable[[], tuple[np.ndarray, float]],
    quality_coverage: Callable[[np.ndarray], float],
    key: tuple | None = None,
) -> RangeEnds:
    """The ends of the `"range"` scaling: the alpha = 0 greedy and the top-k quality rows, with their coverage and
    mean rescaled quality.

    Args:
        q_scaled (`np.ndarray`): quality min-max rescaled over the pool.
        k (`int`): the budget.
        diversity_end (`Callable`): runs the alpha = 0 greedy with the strategy of the run, returns `(rows, d(A_0))`.
        quality_coverage (`Callable`): d(A) of given rows (the top-k quality rows, ties to the lower row).
        key (`tuple`, *optional*): identifies the pool, k and strategy; ends of the same key are re-used within the
            process (a sweep over alpha runs the alpha = 0 greedy once).

    Example:
    ```py
    >>> q = np.array([0.0, 0.5, 1.0])
    >>> ends = range_ends(q, 1, diversity_end=lambda: (np.array([0]), 2.0), quality_coverage=lambda rows: 1.0)
    >>> ends.coverage_range, ends.quality_range
    (1.0, 1.0)
    ```
    """
    if key is not None and key in _ENDS_CACHE:
        _ENDS_CACHE.move_to_end(key)
        logger.info("QDIT scaling='range': re-using the ends computed earlier for this pool, k and strategy.")
        return RangeEnds(**{**_ENDS_CACHE[key].to_dict(), "cached": True})
    top = np.argsort(-np.asarray(q_scaled), kind="stable")[:k]
    div_rows, div_coverage = diversity_end()
    ends = RangeEnds(
        diversity_coverage=float(div_coverage),
        quality_coverage=float(quality_coverage(top)),
        diversity_quality=float(np.mean(q_scaled[np.asarray(div_rows)])),
        quality_quality=float(np.mean(q_scaled[top])),
    )
    if key is not None:
        _ENDS_CACHE[key] = ends
        while len(_ENDS_CACHE) > _CACHE_SIZE:
            _ENDS_CACHE.popitem(last=False)
    return ends


def clear_ends_cache() -> None:
    """Forget the range ends kept for re-use (tests; a process that changes a dataset in place)."""
    _ENDS_CACHE.clear()
