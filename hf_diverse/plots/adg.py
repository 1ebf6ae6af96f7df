"""ADG's quadrant view: the pool in the D-I plane (answer divergence vs isotropy), selected rows highlighted.

Median lines of the pool split the plane into the four regimes of the ADG paper's case study: stable single-mode
answers (low D, low I), stylistic drift along one direction (high D, low I), small multi-directional wobble (low D,
high I) and strong, structured disagreement (high D, high I), the region ADG favours.
"""

import os

import numpy as np
from datasets import Dataset

from ..errors import ColumnNotFoundError, InvalidParameterError
from . import finish_figure


def plot_divergence_quadrant(
    pool,
    selected=None,
    *,
    path: str | os.PathLike | None = None,
    divergence_column: str = "adg_divergence",
    isotropy_column: str = "adg_isotropy",
    title: str | None = None,
    max_points: int = 20000,
    seed: int = 0,
    figsize: tuple = (6.4, 5.2),
    dpi: int = 110,
):
    """Scatter the pool's D(x) against I(x), with median lines and the selected rows highlighted.

    Args:
        pool (`datasets.Dataset`, `tuple` or `np.ndarray`):
            A dataset with the two ADG columns, a `(D, I)` pair of arrays, or an `(N, 2)` array of `[D, I]` rows.
        selected (*optional*):
            The selected rows: a sequence of row indices into the pool, a boolean mask over the pool, or any of the
            forms `pool` accepts (e.g. the subset returned by `select_diverse(..., method="adg")`, which carries the
            ADG columns).
        path (`str` or `os.PathLike`, *optional*): write a PNG there and return the path; otherwise return the
            `matplotlib.figure.Figure`.
        divergence_column (`str`, defaults to `"adg_divergence"`) and isotropy_column (`str`, defaults to
            `"adg_isotropy"`): columns read from datasets.
        title (`str`, *optional*): plot title.
        max_points (`int`, defaults to 20000): pool points drawn at most (a seeded sample; medians use the whole
            pool; all selected rows are drawn).
        seed (`int`, defaults to 0): seed of that sample.
        figsize (`tuple`, defaults to `(6.4, 5.2)`) and dpi (`int`, defaults to 110): figure size.

    Returns:
        The `path` written, or a `matplotlib.figure.Figure` when `path` is `None`.

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> from hf_diverse.plots.adg import plot_divergence_quadrant
    >>> subset = select_diverse(scored_pool, k=100, method="adg")  # doctest: +SKIP
    >>> plot_divergence_quadrant(scored_pool, subset, path="quadrant.png")  # doctest: +SKIP
    >>> d, iso = np.random.default_rng(0).random((2, 200))  # any (D, I) values, e.g. read from a scored pool
    >>> plot_divergence_quadrant((d, iso), selected=np.argsort(d + iso)[-20:], path="quadrant.png")
    'quadrant.png'
    ```
    """
    from matplotlib.figure import Figure

    if max_points < 1:
        raise InvalidParameterError(f"max_points must be positive, got {max_points}.")
    d, iso = _points(pool, divergence_column, isotropy_column, "pool")
    n = len(d)
    sel = None
    if selected is not None:
        sel = _selected_points(selected, d, iso, divergence_column, isotropy_column)
    shown = np.arange(n)
    if n > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    d_med, i_med = float(np.median(d)), float(np.median(iso))

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    pool_label = f"pool ({n:,} rows" + (f", {max_points:,} drawn)" if n > max_points else ")")
    ax.scatter(d[shown], iso[shown], s=6, c="#b0b0b0", alpha=0.6, linewidths=0, label=pool_label)
    if sel is not None:
        ax.scatter(
            sel[0],
            sel[1],
            s=22,
            c="#e4572e",
            edgecolors="black",
            linewidths=0.4,
            label=f"selected ({len(sel[0]):,} rows)",
        )
    _draw_quadrants(ax, d_med, i_med)
    ax.set_xlabel(f"D(x): answer divergence (pool median {d_med:.3f})")
    ax.set_ylabel(f"I(x): isotropy (pool median {i_med:.3f})")
    ax.set_title(title or "ADG quadrants: pool and selected rows")
    ax.legend(loc="center right", fontsize=8, frameon=True)
    return finish_figure(fig, path)


def _draw_quadrants(ax, d_med: float, i_med: float) -> None:
    """Median lines of the pool and the name of each quadrant's regime."""
    ax.axvline(d_med, color="#444444", linestyle="--", linewidth=0.8)
    ax.axhline(i_med, color="#444444", linestyle="--", linewidth=0.8)
    for x, y, ha, va, text in (
        (0.02, 0.02, "left", "bottom", "stable"),
        (0.98, 0.02, "right", "bottom", "one-directional drift"),
        (0.02, 0.98, "left", "top", "multi-directional wobble"),
        (0.98, 0.98, "right", "top", "structured disagreement"),
    ):
        ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="#444444")


def _points(obj, d_col: str, i_col: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(obj, Dataset):
        missing = [c for c in (d_col, i_col) if c not in obj.column_names]
        if missing:
            raise ColumnNotFoundError(
                f"Column(s) {missing} not in the {what}. Current columns in the dataset: {obj.column_names}. "
                "Score it with `AnswerDivergenceScorer` first."
            )
        d, iso = obj[d_col], obj[i_col]
    elif isinstance(obj, tuple) and len(obj) == 2:
        d, iso = obj
    else:
        arr = np.asarray(obj, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise InvalidParameterError(
                f"The {what} must be a dataset with ADG columns, a (D, I) pair or an (N, 2) array; got shape "
                f"{arr.shape}."
            )
        d, iso = arr[:, 0], arr[:, 1]
    d, iso = np.asarray(d, dtype=np.float64).reshape(-1), np.asarray(iso, dtype=np.float64).reshape(-1)
    if len(d) != len(iso) or len(d) == 0:
        raise InvalidParameterError(
            f"The {what} needs as many D as I values (non-empty); got {len(d)} and {len(iso)}."
        )
    if not (np.isfinite(d).all() and np.isfinite(iso).all()):
        raise InvalidParameterError(f"The {what} has NaN or inf D/I values.")
    return d, iso


def _selected_points(selected, d, iso, d_col, i_col):
    n = len(d)
    if (
        isinstance(selected, np.ndarray)
        and selected.dtype == bool
        or (
            isinstance(selected, (list, tuple)) and selected and all(isinstance(v, (bool, np.bool_)) for v in selected)
        )
    ):
        mask = np.asarray(selected, dtype=bool)
        if mask.shape != (n,):
            raise InvalidParameterError(
                f"A boolean selection mask needs {n} entries (one per pool row), got shape {mask.shape}."
            )
        return d[mask], iso[mask]
    if (
        isinstance(selected, range)
        or (isinstance(selected, list) and (not selected or isinstance(selected[0], (int, np.integer))))
        or (isinstance(selected, np.ndarray) and selected.ndim == 1 and np.issubdtype(selected.dtype, np.integer))
    ):
        idx = np.asarray(selected, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise InvalidParameterError(
                f"Selected row indices must be in [0, {n}), got min {idx.min()} and max {idx.max()}."
            )
        return d[idx], iso[idx]
    return _points(selected, d_col, i_col, "selected rows")
