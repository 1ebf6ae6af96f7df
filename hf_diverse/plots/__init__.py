"""Plots (matplotlib, Agg backend, PNG files): one module per view."""


def finish_figure(fig, path=None, dpi: int | None = None):
    """Lay out `fig`; return it when `path` is None, else write a PNG (no metadata, so identical inputs give
    byte-identical files and re-publishing is a no-op), close the figure and return `path`."""
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, format="png", metadata={"Software": None}, dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
