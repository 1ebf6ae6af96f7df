"""`method="qdit"`: quality-diversity greedy facility location (QDIT, METHODS.md §1)."""

import numpy as np

from ..utils.logging import get_logger
from .base import SelectionContext, SelectionResult, minmax
from .facility import facility_location_greedy

logger = get_logger(__name__)

SCALING = "f(j|A) = (1 - alpha) * d(j|A) / N + alpha * q~(j) / k, q~ = min-max rescaled quality over the pool"


def quality_diversity_objective(coverage: float, n: int, q_scaled: np.ndarray | None, indices, alpha: float) -> dict:
    """Objective values reported for any selection: d(A), d(A)/N, mean quality and the Q-D score."""
    out = {"facility_location": coverage, "coverage": coverage / n}
    if q_scaled is not None:
        mean_q = float(np.mean(q_scaled[np.asarray(indices)]))
        out["quality_scaled_mean"] = mean_q
        out["qd_score"] = (1 - alpha) * coverage / n + alpha * mean_q
    return out


def select_qdit(
    ctx: SelectionContext,
    alpha: float = 0.7,
    strategy: str = "auto",
    block_size: int = 2048,
    memory_budget: int | None = None,
) -> SelectionResult:
    """QDIT greedy. `alpha` (paper default 0.7) weighs quality against facility-location diversity; without a
    quality column alpha is forced to 0 (pure diversity) with a logged notice. `strategy`: see
    `hf_diverse.selection.facility` (`"auto"`, `"dense"`, `"lazy"`, `"blocked"`)."""
    q = ctx.quality()
    alpha_effective = alpha
    if q is None and alpha > 0:
        logger.warning("No `quality_column` given: QDIT runs with alpha=0 (diversity only) instead of alpha=%s.", alpha)
        alpha_effective = 0.0
    q_scaled = minmax(q) if q is not None else None
    res = facility_location_greedy(
        ctx.embeddings(), ctx.k, quality=q_scaled, alpha=alpha_effective, strategy=strategy, block_size=block_size,
        memory_budget=memory_budget, show_progress=ctx.show_progress,
    )
    objective = quality_diversity_objective(res.coverage, ctx.n, q_scaled, res.indices, alpha_effective)
    if q is not None:
        objective["quality_mean"] = float(np.mean(q[res.indices]))
    return SelectionResult(
        indices=res.indices,
        gains=res.gains,
        objective=objective,
        details={"strategy": res.strategy, "alpha_effective": alpha_effective, "scaling": SCALING,
                 "gain_evaluations": res.evaluations, "exact": True},
    )
