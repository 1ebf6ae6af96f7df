"""Plots of a method comparison (`hf_diverse.compare.ComparisonResult`): held-out coverage against quality for every
method and alpha, and one bar panel per metric with the random subset as a reference line."""

import math
from pathlib import Path

from . import finish_figure
from .report import _pyplot

_GROUPS = {"selection": "Selection metrics", "instruction": "Instruction diversity", "response": "Response diversity"}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _alpha(subset: dict):
    return (subset.get("parameters") or {}).get("alpha")


def plot_coverage_quality(result, path) -> str | None:
    """Held-out instruction coverage (x) against mean rescaled quality (y), one point per subset; subsets of one
    method at several alphas are joined in alpha order. `None` (nothing written) without a quality column."""
    points = [
        (s, s["metrics"].get("heldout_coverage"), s["metrics"].get("quality_scaled_mean")) for s in result.subsets
    ]
    points = [(s, x, y) for s, x, y in points if _finite(x) and _finite(y)]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    methods = list(dict.fromkeys(s["method"] for s, _, _ in points))
    colors = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        mine = sorted([(s, x, y) for s, x, y in points if s["method"] == method], key=lambda p: _alpha(p[0]) or 0.0)
        color = "#7f7f7f" if method == "random" else colors(i % 10)
        marker = "*" if method == "random" else "o"
        xs, ys = [p[1] for p in mine], [p[2] for p in mine]
        ax.plot(xs, ys, marker=marker, color=color, linestyle="-" if len(mine) > 1 else "none", label=method)
        for s, x, y in mine:
            alpha = _alpha(s)
            if alpha is not None and len(mine) > 1:
                ax.annotate(f"α={alpha:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("held-out instruction coverage (mean max cos) →")
    ax.set_ylabel("mean quality, rescaled to [0, 1] →")
    ax.set_title(f"Coverage against quality (k={result.settings.get('k')})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return finish_figure(fig, path, dpi=110)


def plot_metric_panels(result, group: str, path) -> str | None:
    """One bar panel per metric of `group` (`"selection"`, `"instruction"`, `"response"`), the random subset's value
    as a dashed reference line. `None` when the group has no measured metric."""
    rows = [r for r in result.rows() if (r[0].split(".")[0] if "." in r[0] else "selection") == group]
    if not rows:
        return None
    plt = _pyplot()
    labels = result.labels
    reference = next((s["label"] for s in result.subsets if s["method"] == "random"), None)
    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, (key, name, better) in zip(axes.flat, rows, strict=False):
        values = [result.value(label, key) for label in labels]
        shown = [(i, v) for i, v in enumerate(values) if _finite(v)]
        colors = ["#7f7f7f" if labels[i] == reference else "#1f77b4" for i, _ in shown]
        ax.bar([i for i, _ in shown], [v for _, v in shown], color=colors)
        ref = result.value(reference, key) if reference is not None else None
        if _finite(ref):
            ax.axhline(ref, color="#7f7f7f", linestyle="--", linewidth=1, label="random")
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=6)
        arrow = {True: " (higher is better)", False: " (lower is better)", None: " (cost)"}[better]
        ax.set_title(name + arrow, fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    fig.suptitle(f"{_GROUPS[group]} per subset (dashed: random)", fontsize=10)
    return finish_figure(fig, path, dpi=110)


def plot_comparison(result, path_dir) -> list[str]:
    """Write `coverage_vs_quality.png` (with a quality column) and `metrics_<group>.png` for each group of metrics
    into `path_dir`; return the paths written."""
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_coverage_quality(result, out / "coverage_vs_quality.png")]
    paths += [plot_metric_panels(result, group, out / f"metrics_{group}.png") for group in _GROUPS]
    return [str(p) for p in paths if p is not None]
