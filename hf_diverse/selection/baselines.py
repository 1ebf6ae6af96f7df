"""Baselines: `method="random"` and `method="quality"` (top-k by a quality column)."""

import numpy as np

from ..errors import InvalidParameterError
from .base import SelectionContext, SelectionResult


def select_random(ctx: SelectionContext) -> SelectionResult:
    """k rows uniformly at random without replacement (numpy `default_rng(seed)`)."""
    rng = np.random.default_rng(ctx.seed)
    idx = rng.choice(ctx.n, size=ctx.k, replace=False).astype(np.int64)
    return SelectionResult(indices=idx, gains=np.zeros(ctx.k), details={"sampler": "numpy.default_rng.choice"})


def select_quality(ctx: SelectionContext) -> SelectionResult:
    """The k rows of highest quality; ties go to the lower row index."""
    q = ctx.quality()
    if q is None:
        raise InvalidParameterError("method='quality' needs `quality_column=` naming a numeric column.")
    order = np.argsort(-q, kind="stable")[: ctx.k].astype(np.int64)
    return SelectionResult(indices=order, gains=q[order], objective={"quality_mean": float(q[order].mean())})
