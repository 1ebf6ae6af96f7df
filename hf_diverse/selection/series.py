"""`diversity_series`: the macro-to-micro paper's series of fixed-size datasets from minimal to maximal diversity."""

import numpy as np
from datasets import Dataset

from ..errors import InvalidParameterError
from ..provenance import get_provenance, update_provenance
from .api import select_diverse
from .registry import METHODS, method_parameters


def diversity_series(
    dataset: Dataset, k: int | float, n_points: int = 7, method: str = "tokens", **kwargs
) -> list[Dataset]:
    """Select `n_points` subsets of `k` rows at `diversity` = 0, 1/(n_points-1), ..., 1 (the paper used 7 points).

    Each subset is a `select_diverse(dataset, k, method=method, diversity=d, **kwargs)` result; its provenance
    also records `series = {"index", "n_points", "diversity"}`. With `method="tokens"` the pool is tokenized once
    for the whole series (an in-process cache of the last pool's token ids). Coverage of the mid-band token types
    (`tokens`) or the number of clusters used (`clusters`) is non-decreasing along the list.

    Args:
        dataset (`datasets.Dataset`): the pool.
        k (`int` or `float`): rows per subset, or a fraction of the pool.
        n_points (`int`, defaults to 7): number of subsets, at least 2.
        method (`str`, defaults to `"tokens"`): a method with a `diversity` parameter (`"tokens"`, `"clusters"`).
        **kwargs: passed to `select_diverse` (e.g. `seed`, `tokenizer`, `what`, `quality_column`).

    Returns:
        `list[datasets.Dataset]`, from minimal to maximal diversity.

    Example:
    ```py
    >>> from hf_diverse.selection import diversity_series
    >>> series = diversity_series(pool, k=10)
    >>> [round(get_provenance(s)["objective"]["mid_band_coverage"], 3) for s in series]
    [0.11, 0.172, 0.236, 0.352, 0.414, 0.53, 0.631]
    ```
    """
    if "diversity" not in method_parameters(method):
        with_dial = [m for m in METHODS if "diversity" in method_parameters(m)]
        raise InvalidParameterError(f"Method {method!r} has no `diversity` dial; use one of {with_dial}.")
    if "diversity" in kwargs:
        raise InvalidParameterError("`diversity` is set by the series itself; pass `n_points` instead.")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise InvalidParameterError(f"n_points must be an integer >= 2, got {n_points!r}.")
    out = []
    for index, level in enumerate(np.linspace(0.0, 1.0, int(n_points))):
        subset = select_diverse(dataset, k, method=method, diversity=float(level), **kwargs)
        details = dict(get_provenance(subset).get("details") or {})
        details["series"] = {"index": index, "n_points": int(n_points), "diversity": float(level)}
        out.append(update_provenance(subset, details=details))
    return out
