"""Plots of a `DiversityReport`: token rank-frequency curves and metric bars (matplotlib, Agg backend, PNG)."""

from pathlib import Path

from ..metrics import METRIC_LABELS, metric_label

_COLORS = {"subset": "#d62728", "pool": "#1f77b4", "random": "#7f7f7f"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_rank_frequency(report, component: str, path) -> str:
    """Relative token frequency against frequency rank (log-log), one line per set (subset, pool, random)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label in report.labels:
        curve = report.rank_frequency.get(component, {}).get(label)
        if curve and curve["rank"]:
            ax.loglog(
                curve["rank"],
                curve["frequency"],
                label=f"{label} ({report.sizes[label]} rows)",
                color=_COLORS.get(label),
                linewidth=1.6 if label == "subset" else 1.2,
            )
    ax.set_xlabel("token rank (by frequency)")
    ax.set_ylabel("relative frequency")
    ax.set_title(
        f"Token-frequency distribution of {component}s\n(tokenizer {report.settings.get('tokenizer')})", fontsize=10
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_metric_bars(report, component: str, path) -> str:
    """One small bar panel per metric, bars = subset / pool / random; skipped metrics are left out."""
    plt = _pyplot()
    data = report.metrics.get(component, {})
    labels = report.labels
    keys = [k for k in METRIC_LABELS if any(data.get(label, {}).get(k) is not None for label in labels)]
    cols = 4
    rows = max(1, -(-len(keys) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        values = [data.get(label, {}).get(key) for label in labels]
        shown = [(label, v) for label, v in zip(labels, values, strict=True) if v is not None]
        ax.bar([s[0] for s in shown], [s[1] for s in shown], color=[_COLORS.get(s[0]) for s in shown])
        for i, (_, v) in enumerate(shown):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
        ax.set_title(metric_label(key), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.margins(y=0.2)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(
        f"Diversity metrics of {component}s ((+) higher = more diverse, (-) lower = more diverse)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_report(report, path_dir) -> list[str]:
    """Write `token_frequency_<component>.png` and `metrics_<component>.png` for each component; return the paths."""
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for component in report.components:
        paths.append(plot_rank_frequency(report, component, out / f"token_frequency_{component}.png"))
        paths.append(plot_metric_bars(report, component, out / f"metrics_{component}.png"))
    return paths
