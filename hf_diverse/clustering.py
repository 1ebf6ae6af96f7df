"""One k-means for the whole library: QDIT-cluster, the `clusters` method, ADG bins and the report's cluster coverage.

`fit_kmeans` runs scikit-learn `MiniBatchKMeans` with `random_state=seed` and one BLAS/OpenMP thread: MiniBatchKMeans's
per-batch threading overhead dominates at these sizes, and on a 2-core machine one thread was 5-10x faster
(50k x 384: 1.6 s against 17 s). On a CUDA tensor it uses FAISS k-means when `faiss` is installed. Callers choose
`n_init` and `batch_size` (their documented settings); everything else is shared. `umap_hdbscan_labels` is the
macro-to-micro paper's clustering (the `umap` extra).
"""

import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .errors import InvalidParameterError, require


@dataclass
class KMeansFit:
    """Labels of the fitted rows, a `predict` for other rows, and a record of how it was computed."""

    labels: np.ndarray
    info: dict
    _model: object = field(default=None, repr=False)

    def predict(self, x) -> np.ndarray:
        """The nearest centroid of each row of `x` (int64)."""
        data = _as_numpy(x)
        if self._model is None:  # a single cluster
            return np.zeros(len(data), dtype=np.int64)
        if hasattr(self._model, "index"):  # faiss.Kmeans
            return self._model.index.search(data, 1)[1][:, 0].astype(np.int64)
        with threadpool_limits(limits=1):
            return self._model.predict(data).astype(np.int64)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def fit_kmeans(x, n_clusters: int, seed: int = 0, n_init: int = 3, batch_size: int | None = None) -> KMeansFit:
    """Seeded k-means of the rows of `x` (`torch.Tensor` or array).

    Args:
        x (`torch.Tensor` or `np.ndarray` of shape `(N, d)`): rows to cluster; a CUDA tensor uses FAISS when installed.
        n_clusters (`int`): in [1, N]; 1 gives one trivial cluster.
        seed (`int`, defaults to 0): `random_state` of MiniBatchKMeans (seed of FAISS).
        n_init (`int`, defaults to 3): initialisations tried.
        batch_size (`int`, *optional*): mini-batch size; defaults to `max(1024, 3 * n_clusters)`. scikit-learn caps it
            at N.

    Example:
    ```py
    >>> x = np.concatenate([np.zeros((5, 2)), np.ones((5, 2))]).astype(np.float32)
    >>> fit = fit_kmeans(x, 2, seed=0)
    >>> len(set(fit.labels[:5])), len(set(fit.labels[5:])), bool(fit.labels[0] != fit.labels[5])
    (1, 1, True)
    ```
    """
    n = x.shape[0]
    if isinstance(n_clusters, bool) or not 1 <= n_clusters <= max(n, 1):
        raise InvalidParameterError(f"n_clusters must be in [1, {n}] (the number of rows), got {n_clusters!r}.")
    if n_clusters == 1 or n <= 1:
        return KMeansFit(np.zeros(n, dtype=np.int64), {"backend": "trivial", "n_clusters": 1})
    data = _as_numpy(x)
    if isinstance(x, torch.Tensor) and x.device.type == "cuda":
        try:
            import faiss
        except ImportError:
            faiss = None
        if faiss is not None:
            km = faiss.Kmeans(data.shape[1], n_clusters, niter=20, seed=seed, gpu=True, verbose=False)
            km.train(data)
            labels = km.index.search(data, 1)[1][:, 0].astype(np.int64)
            return KMeansFit(labels, {"backend": "faiss.Kmeans(gpu)", "n_clusters": n_clusters, "niter": 20}, km)
    from sklearn.cluster import MiniBatchKMeans

    batch = max(1024, 3 * n_clusters) if batch_size is None else int(batch_size)
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=n_init, batch_size=batch)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # duplicate points can leave a cluster empty: harmless for binning and quotas
        warnings.simplefilter("ignore")
        labels = km.fit_predict(data).astype(np.int64)
    info = {
        "backend": "sklearn.MiniBatchKMeans",
        "n_clusters": n_clusters,
        "n_init": n_init,
        "batch_size": batch,
        "random_state": seed,
        "threads": 1,
    }
    return KMeansFit(labels, info, km)


def kmeans_labels(x, n_clusters: int, seed: int = 0, n_init: int = 3, batch_size: int | None = None):
    """`(labels, info)` of `fit_kmeans` (see there)."""
    fit = fit_kmeans(x, n_clusters, seed=seed, n_init=n_init, batch_size=batch_size)
    return fit.labels, fit.info


def umap_hdbscan_labels(
    x, seed: int = 0, n_neighbors: int = 15, n_components: int = 5, min_cluster_size: int = 20
) -> tuple[np.ndarray, dict]:
    """The macro-to-micro paper's UMAP + HDBSCAN clustering; noise rows get label -1.

    UMAP (cosine metric as in BERTopic, `min_dist=0`, `random_state=seed`) then HDBSCAN (euclidean) from the `hdbscan`
    package, else scikit-learn's `HDBSCAN`. Needs `pip install 'hf_diverse[umap]'`.
    """
    umap = require("umap", "umap")
    data = _as_numpy(x)
    n = data.shape[0]
    if n <= n_components + 1:
        raise InvalidParameterError(f"UMAP with n_components={n_components} needs more than {n_components + 1} rows.")
    reducer = umap.UMAP(
        n_neighbors=min(n_neighbors, n - 1),
        n_components=n_components,
        min_dist=0.0,
        metric="cosine",
        random_state=seed,
        n_jobs=1,
    )
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": seeded UMAP is single-threaded
        warnings.simplefilter("ignore", UserWarning)
        reduced = reducer.fit_transform(data)
    try:
        import hdbscan

        labels = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, metric="euclidean").fit_predict(reduced)
        backend = "umap-learn + hdbscan"
    except ImportError:
        from sklearn.cluster import HDBSCAN

        extra = {"copy": True} if "copy" in inspect.signature(HDBSCAN).parameters else {}
        labels = HDBSCAN(min_cluster_size=min_cluster_size, metric="euclidean", **extra).fit_predict(reduced)
        backend = "umap-learn + sklearn.cluster.HDBSCAN"
    labels = np.asarray(labels, dtype=np.int64)
    info = {
        "backend": backend,
        "n_neighbors": n_neighbors,
        "n_components": n_components,
        "umap_metric": "cosine",
        "min_dist": 0.0,
        "hdbscan_metric": "euclidean",
        "min_cluster_size": min_cluster_size,
        "n_clusters": int(labels.max() + 1) if n else 0,
        "noise_rows": int((labels < 0).sum()),
    }
    return labels, info
