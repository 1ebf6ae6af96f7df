"""`hf_diverse.plots`: the ADG quadrant plot and the 2-D projection plot (PCA)."""

import hashlib

import numpy as np
import pytest
import torch

from hf_diverse import select_diverse
from hf_diverse.errors import ColumnNotFoundError, EmbeddingError, InvalidParameterError
from hf_diverse.plots.adg import plot_divergence_quadrant
from hf_diverse.plots.projection import fit_pca_2d, plot_projection, project
from tests.helpers import _synthetic_pool


def test_quadrant_plot(tmp_path):
    pool = _synthetic_pool()
    subset = select_diverse(pool, k=12, method="adg", n_bins=4, show_progress=False)
    for selected in (subset, [0, 5, 7], np.arange(120) % 10 == 0, None):
        out = plot_divergence_quadrant(pool, selected, path=tmp_path / "q.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = plot_divergence_quadrant((pool["adg_divergence"], pool["adg_isotropy"]), [1, 2])
    assert fig.axes[0].get_xlabel().startswith("D(x)")
    with pytest.raises(ColumnNotFoundError, match="adg_divergence"):
        plot_divergence_quadrant(pool.remove_columns("adg_divergence"))
    with pytest.raises(InvalidParameterError, match=r"\[0, 120\)"):
        plot_divergence_quadrant(pool, [500])


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    pca = fit_pca_2d(torch.tensor(x, dtype=torch.float32), block_size=37)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    for i in range(2):
        assert abs(abs(np.dot(pca["components"][i], vt[i])) - 1) < 1e-5
    np.testing.assert_allclose(pca["explained"], (s**2 / (s**2).sum())[:2], rtol=1e-5)
    coords = project(x, pca)
    np.testing.assert_allclose(np.abs(coords), np.abs(centred @ vt[:2].T), rtol=1e-4, atol=1e-4)


def test_projection_png_is_deterministic(pool, tmp_path):
    subset = select_diverse(pool, k=10, method="qdit", quality_column="score", show_progress=False)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert plot_projection(pool, subset, path=a) == a
    plot_projection(pool, subset, path=b)
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    # indices into the pool draw the same picture as the subset's own vectors
    rows = [pool["prompt"].index(p) for p in subset["prompt"]]
    plot_projection(pool, rows, path=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes() == a.read_bytes()


def test_projection_errors(pool):
    with pytest.raises(EmbeddingError, match="same embedding model"):
        plot_projection(pool, np.ones((3, 5), dtype=np.float32))
    with pytest.raises(InvalidParameterError, match=r"must be in \[0, 60\)"):
        plot_projection(pool, [0, 60])
    with pytest.raises(EmbeddingError, match="non-empty"):
        plot_projection(np.zeros((0, 4)))
    fig = plot_projection(pool, max_points=20)  # no path: a Figure, sampled pool points
    assert "20 drawn" in fig.axes[0].get_legend().get_texts()[0].get_text()
