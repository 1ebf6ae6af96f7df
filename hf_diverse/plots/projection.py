"""2-D projection of a pool with the selected rows highlighted (PCA of the embeddings, matplotlib Agg, PNG).

The projection is fitted on the pool only; selected rows are placed with the same linear map, so the plot needs no
row matching between the subset and the pool: any subset with embeddings from the same model can be drawn on it.
"""

import os

import numpy as np
import torch
from datasets import Dataset

from ..embeddings import read_embeddings
from ..errors import EmbeddingError, InvalidParameterError
from . import finish_figure


def fit_pca_2d(embeddings, block_size: int = 65536) -> dict:
    """Fit a 2-component PCA on `embeddings` (N x d), on the tensor's device, in row blocks.

    The covariance is accumulated block by block (memory O(d^2)), so pools of millions of rows work. Component signs
    are fixed (largest-magnitude coordinate positive) so the picture is deterministic.

    Args:
        embeddings (`torch.Tensor` or `np.ndarray`): an `(N, d)` float matrix, N >= 1, d >= 1.
        block_size (`int`, defaults to 65536): rows per block.

    Returns:
        `dict` with `mean` (d,), `components` (2, d) and `explained` (2,) explained-variance ratios, as numpy arrays.

    Example:
    ```py
    >>> pca = fit_pca_2d(torch.randn(100, 8, generator=torch.Generator().manual_seed(0)))
    >>> project(torch.randn(5, 8), pca).shape
    (5, 2)
    ```
    """
    x = _as_tensor(embeddings)
    n, d = x.shape
    acc = torch.float64 if x.device.type != "mps" else torch.float32
    mean = x.to(acc).mean(dim=0)
    mean32 = mean.to(torch.float32)
    # float32 block products (fast matmul), accumulated in float64: precise enough for a picture
    cov = torch.zeros(d, d, dtype=acc, device=x.device)
    for start in range(0, n, block_size):
        block = x[start : start + block_size].to(torch.float32) - mean32
        cov += (block.T @ block).to(acc)
    cov /= max(n - 1, 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(evals, descending=True)[: min(2, d)]
    comps = evecs[:, order].T  # (c, d)
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    total = float(evals.clamp(min=0).sum())
    explained = evals[order].clamp(min=0) / total if total > 0 else torch.zeros(len(order), dtype=evals.dtype)
    if comps.shape[0] < 2:  # one-dimensional embeddings: second axis is flat
        comps = torch.cat([comps, torch.zeros_like(comps)])
        explained = torch.cat([explained, torch.zeros_like(explained)])
    return {"mean": mean.cpu().numpy(), "components": comps.cpu().numpy(), "explained": explained.cpu().numpy()}


def project(embeddings, pca: dict, block_size: int = 65536) -> np.ndarray:
    """Coordinates `(M, 2)` of `embeddings` under a PCA fitted by `fit_pca_2d` (float32, in row blocks)."""
    x = _as_tensor(embeddings)
    if x.shape[1] != pca["mean"].shape[0]:
        raise EmbeddingError(
            f"Embeddings of dimension {x.shape[1]} cannot be projected with a PCA fitted on dimension "
            f"{pca['mean'].shape[0]}: use the same embedding model for the pool and the subset."
        )
    mean = torch.as_tensor(pca["mean"], dtype=torch.float32, device=x.device)
    comps = torch.as_tensor(pca["components"], dtype=torch.float32, device=x.device)
    out = [
        ((x[s : s + block_size].to(torch.float32) - mean) @ comps.T).cpu() for s in range(0, x.shape[0], block_size)
    ]
    return torch.cat(out).numpy().astype(np.float64)


def plot_projection(
    pool,
    selected=None,
    *,
    embedding_column: str = "embedding",
    path: str | os.PathLike | None = None,
    title: str | None = None,
    max_points: int = 20000,
    seed: int = 0,
    figsize: tuple = (6.4, 5.2),
    dpi: int = 110,
):
    """Scatter the pool in its first two principal components with the selected rows highlighted.

    Args:
        pool (`datasets.Dataset`, `torch.Tensor` or `np.ndarray`):
            The pool: a dataset with `embedding_column`, or its `(N, d)` embedding matrix.
        selected (*optional*):
            The selected rows: a sequence of row indices into the pool, a `datasets.Dataset` with `embedding_column`
            (e.g. the output of `select_diverse`), or an `(M, d)` embedding matrix from the same model.
        embedding_column (`str`, defaults to `"embedding"`): column read from datasets.
        path (`str` or `os.PathLike`, *optional*): write a PNG there and return the path; otherwise return the
            `matplotlib.figure.Figure`.
        title (`str`, *optional*): plot title.
        max_points (`int`, defaults to 20000): pool points drawn at most (a seeded sample; all selected rows are
            always drawn; the PCA is fitted on the whole pool).
        seed (`int`, defaults to 0): seed of that sample.
        figsize (`tuple`, defaults to `(6.4, 5.2)`) and dpi (`int`, defaults to 110): figure size.

    Returns:
        The `path` written, or a `matplotlib.figure.Figure` when `path` is `None`.

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> from hf_diverse.plots.projection import plot_projection
    >>> subset = select_diverse(pool, k=10)  # `pool` has an `embedding` column, `subset` keeps it
    >>> plot_projection(pool, subset, path="projection.png")
    'projection.png'
    ```
    """
    from matplotlib.figure import Figure

    if max_points < 1:
        raise InvalidParameterError(f"max_points must be positive, got {max_points}.")
    pool_emb = _embeddings_of(pool, embedding_column, "pool")
    n = pool_emb.shape[0]
    pca = fit_pca_2d(pool_emb)
    coords = project(pool_emb, pca)
    sel_coords = _selected_coords(selected, coords, pca, embedding_column) if selected is not None else None
    shown = np.arange(n)
    if n > max_points:
        shown = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    pool_label = f"pool ({n:,} rows" + (f", {max_points:,} drawn)" if n > max_points else ")")
    ax.scatter(coords[shown, 0], coords[shown, 1], s=6, c="#b0b0b0", alpha=0.6, linewidths=0, label=pool_label)
    if sel_coords is not None:
        ax.scatter(
            sel_coords[:, 0],
            sel_coords[:, 1],
            s=22,
            c="#e4572e",
            edgecolors="black",
            linewidths=0.4,
            label=f"selected ({len(sel_coords):,} rows)",
        )
    ev = pca["explained"]
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.1f}% of variance)")
    ax.set_title(title or "Pool and selected rows, PCA of the embeddings")
    ax.legend(loc="best", fontsize=8, frameon=True)
    return finish_figure(fig, path)


def _selected_coords(selected, coords: np.ndarray, pca: dict, embedding_column: str) -> np.ndarray:
    """2-D coordinates of the selected rows: pool rows by index, or their own embeddings projected."""
    if not _is_index_list(selected):
        return project(_embeddings_of(selected, embedding_column, "selected rows"), pca)
    n = coords.shape[0]
    idx = np.asarray(selected, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InvalidParameterError(
            f"Selected row indices must be in [0, {n}), got min {idx.min()} and max {idx.max()}."
        )
    return coords[idx]


def _is_index_list(value) -> bool:
    if isinstance(value, (list, tuple, range)):
        return len(value) == 0 or isinstance(next(iter(value)), (int, np.integer))
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and np.issubdtype(value.dtype, np.integer)
    return False


def _embeddings_of(obj, column: str, what: str) -> torch.Tensor:
    if isinstance(obj, Dataset):
        return read_embeddings(obj, column)
    return _as_tensor(obj, what)


def _as_tensor(x, what: str = "embeddings") -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise EmbeddingError(f"The {what} must be a non-empty (N, d) matrix, got shape {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise EmbeddingError(f"The {what} hold NaN or inf values.")
    return t
