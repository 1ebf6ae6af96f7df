"""Baselines: `method="random"` and `method="quality"` (top-k by a quality column)."""

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from .base import Method, SelectionContext, SelectionResult
from .config import MethodConfig


@dataclass
class RandomConfig(MethodConfig):
    """`method="random"` has no options (the seed is `select_diverse`'s)."""


@dataclass
class QualityConfig(MethodConfig):
    """`method="quality"` has no options (it needs `quality_column=`)."""


def select_random(ctx: SelectionContext, config: RandomConfig) -> SelectionResult:
    """k rows uniformly at random without replacement (numpy `default_rng(seed)`)."""
    rng = np.random.default_rng(ctx.seed)
    idx = rng.choice(ctx.n, size=ctx.k, replace=False).astype(np.int64)
    return SelectionResult(indices=idx, gains=np.zeros(ctx.k), details={"sampler": "numpy.default_rng.choice"})


def select_quality(ctx: SelectionContext, config: QualityConfig) -> SelectionResult:
    """The k rows of highest quality; ties go to the lower row index."""
    q = ctx.quality()
    if q is None:
        raise InvalidParameterError("method='quality' needs `quality_column=` naming a numeric column.")
    order = np.argsort(-q, kind="stable")[: ctx.k].astype(np.int64)
    return SelectionResult(indices=order, gains=q[order], objective={"quality_mean": float(q[order].mean())})


RANDOM = Method(
    name="random",
    select=select_random,
    config=RandomConfig,
    label="random (baseline)",
    summary="Uniform random sample without replacement (numpy `default_rng(seed)`), the baseline.",
)
QUALITY = Method(
    name="quality",
    select=select_quality,
    config=QualityConfig,
    label="quality: top-k of a quality column (baseline)",
    summary="The k rows with the highest quality score (ties go to the lower row), the quality-only baseline.",
)
