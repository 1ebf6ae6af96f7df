"""`diversity_series`: the macro-to-micro paper's series of fixed-size datasets from minimal to maximal diversity."""

import numpy as np
from datasets import Dataset

from ..errors import InvalidParameterError, TextFormatError
from ..provenance import get_provenance, update_provenance
from ..textviews import _REQUIRED, TextView
from ..tokens import get_tokenizer, tokenize_texts
from .api import select_diverse
from .registry import METHODS, method_parameters


def diversity_series(
    dataset: Dataset, k: int | float, n_points: int = 7, method: str = "tokens", **kwargs
) -> list[Dataset]:
    """Select `n_points` subsets of `k` rows at `diversity` = 0, 1/(n_points-1), ..., 1 (the paper used 7 points).

    Each subset is a `select_diverse(dataset, k, method=method, diversity=d, **kwargs)` result; its provenance
    also records `series = {"index", "n_points", "diversity", "mean_response_tokens", "total_response_tokens"}`:
    the length of the subset's responses in tokens (the `tokenizer` of `kwargs`, else the embedded SmolLM2 one), so
    that a series that changes diversity can be read next to the training tokens it changes too. With
    `method="tokens"` the pool is tokenized once
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
    [0.161, 0.243, 0.316, 0.396, 0.466, 0.511, 0.605]
    >>> [round(get_provenance(s)["details"]["series"]["mean_response_tokens"]) for s in series]  # length follows
    [155, 238, 389, 555, 642, 714, 960]
    >>> matched = diversity_series(pool, k=10, length="matched")  # mean length within 10% of a random subset's
    >>> [round(get_provenance(s)["objective"]["mid_band_coverage"], 3) for s in matched]
    [0.236, 0.238, 0.262, 0.275, 0.275, 0.304, 0.328]
    >>> [round(get_provenance(s)["details"]["series"]["mean_response_tokens"]) for s in matched]  # random: 358
    [331, 335, 374, 392, 392, 392, 392]
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
        details["series"].update(_response_tokens(subset, kwargs.get("tokenizer"), kwargs.get("text_columns")))
        out.append(update_provenance(subset, details=details))
    return out


def _response_tokens(subset: Dataset, tokenizer, text_columns) -> dict:
    """Mean and total response length in tokens of a subset (`None` when it has no text, e.g. embeddings only)."""
    try:
        view = TextView.for_columns(subset.column_names, text_columns=text_columns)
        texts = view.texts(subset.select_columns(_text_columns(view, subset))[:], what="response")
    except TextFormatError:
        return {"mean_response_tokens": None, "total_response_tokens": None}
    lengths = [len(t) for t in tokenize_texts(texts, get_tokenizer(tokenizer))]
    return {
        "mean_response_tokens": float(np.mean(lengths)) if lengths else 0.0,
        "total_response_tokens": int(np.sum(lengths)),
    }


def _text_columns(view: TextView, subset: Dataset) -> list[str]:
    if view.text_columns is not None:
        named = {c for cols in view.text_columns.values() for c in cols}
    else:
        named = set(_REQUIRED[view.format]) | ({"input"} if view.format == "alpaca" else set())
    return [c for c in subset.column_names if c in named]
