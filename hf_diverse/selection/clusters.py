"""`method="clusters"`: macro (semantic-cluster) diversity with a `diversity` dial (the macro-to-micro paper).

The pool's embeddings are clustered; `diversity` in [0, 1] sets how many clusters the k rows are drawn from, and
the rows are spread as evenly as possible over the chosen clusters.

Procedure (hf_diverse's choices where the paper is silent are marked *choice*):

1. **Clusters.** `clustering="kmeans"` (default): scikit-learn `MiniBatchKMeans(random_state=seed, n_init=3)`, or
   FAISS k-means when `faiss` is installed and the embeddings are on a CUDA device. `n_clusters=None` follows the
   paper's density (~2,000 clusters on 117K rows, i.e. one per 58 rows): `max(2, round(N / 58))`, at most N
   (*choice*). `clustering="umap-hdbscan"`: the paper's settings, UMAP (n_neighbors 15, n_components 5,
   min_dist 0, cosine metric as in BERTopic, `random_state=seed`) then HDBSCAN (euclidean, min_cluster_size 20),
   from the `umap` extra (`hdbscan` package, else scikit-learn's `HDBSCAN`). HDBSCAN noise rows (label -1) belong to
   no cluster: they are only used to top up when all clusters together hold fewer than k rows (*choice*).
2. **Which clusters** (*choice*). Clusters are ranked by size, largest first (ties: lower label). `C_min` is the
   smallest number of leading clusters that together hold at least k rows, `C` the number of clusters, and
   `C_max = max(C_min, min(C, k))` the most clusters k rows can reach (one row each). The subset is drawn from the
   first `c = C_min + round(diversity * (C_max - C_min))` clusters. So `diversity=0` is the fewest clusters that can
   supply k rows and `diversity=1` every cluster k rows can reach: all of them when k >= C, else the k largest (one
   row from each). Every point of the dial uses a different number of clusters as long as `C_max - C_min` allows; the
   chosen sets are nested, and because `c` never drops below `C_min` the chosen clusters can always supply k rows.
3. **Uniform across the chosen clusters.** Equal quotas by water-filling: every chosen cluster gets
   `min(size, L)` rows for the largest level L that fits, and the remaining rows go one each to clusters that
   still have rows (those whose next row has the best quality, else the lower cluster position). Counts of
   clusters larger than the level therefore differ by at most one; clusters too small for the level give all
   their rows and their share goes to the others.
4. **Rows within a cluster.** With a `quality_column`, best quality first (ties: lower row); without, a random
   order from `seed` (*choice*).

The subset is ordered round-robin (each cluster's first row, then each cluster's second row, ...). The cluster of
each row is written as `selection_cluster`.
"""

from dataclasses import dataclass

import numpy as np

from ..clustering import kmeans_labels, umap_hdbscan_labels
from ..errors import InvalidParameterError
from ..quota import equal_quota, take_round_robin, water_level, within_cluster_orders
from ..utils.logging import get_logger
from .base import Method, SelectionContext, SelectionResult
from .config import MethodConfig, diversity_option, option

logger = get_logger(__name__)

CLUSTERINGS = ("kmeans", "umap-hdbscan")
# the paper: ~2,000 HDBSCAN clusters on 117K rows
ROWS_PER_CLUSTER = 58


def default_n_clusters(n: int) -> int:
    """The paper's cluster density: one cluster per ~58 rows, at least 2 and at most `n`."""
    return int(min(n, max(2, round(n / ROWS_PER_CLUSTER))))


@dataclass
class ClustersConfig(MethodConfig):
    """Options of `method="clusters"`."""

    diversity: float = diversity_option(
        "0 draws from the fewest (largest) clusters that can supply k rows, 1 from every cluster k rows can reach "
        "(all of them, or the k largest when k is below the number of clusters); the number of clusters grows "
        "linearly in between."
    )
    clustering: str = option(
        "kmeans", "'kmeans' (seeded) or 'umap-hdbscan' (the paper's; the `umap` extra).", choices=CLUSTERINGS
    )
    n_clusters: int | None = option(
        None,
        "k-means clusters; default max(2, round(N / 58)), the paper's density. Ignored by 'umap-hdbscan'.",
        bounds=(1, None),
    )
    min_cluster_size: int = option(20, "HDBSCAN's min_cluster_size (the paper's value).", bounds=(1, None))


def select_clusters(ctx: SelectionContext, config: ClustersConfig) -> SelectionResult:
    """Macro diversity: draw the k rows uniformly from a `diversity`-controlled number of semantic clusters.

    Args:
        ctx (`SelectionContext`): from `select_diverse` (reads the embedding column; `quality_column` optional).
        config (`ClustersConfig`): the dial and the clustering.

    Returns:
        `SelectionResult` with a `selection_cluster` column (the cluster label of each row).

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10, method="clusters", diversity=0.5, n_clusters=6)
    >>> len(subset.unique("selection_cluster"))  # 1 cluster at diversity=0, all 6 at diversity=1
    3
    ```
    """
    diversity, clustering, n_clusters = config.diversity, config.clustering, config.n_clusters
    x = ctx.embeddings()
    n, k = ctx.n, ctx.k
    if clustering == "kmeans":
        c_req = default_n_clusters(n) if n_clusters is None else int(n_clusters)
        if c_req > n:
            raise InvalidParameterError(f"n_clusters={c_req} exceeds the pool size {n}.")
        labels, info = kmeans_labels(x, c_req, ctx.seed)
    else:
        labels, info = umap_hdbscan_labels(x, ctx.seed, min_cluster_size=config.min_cluster_size)
    quality = ctx.quality()
    if quality is None:
        logger.info(
            "clusters: no `quality_column`, rows within a cluster are taken in a random order (seed %d).", ctx.seed
        )

    groups, sizes = np.unique(labels[labels >= 0], return_counts=True)
    by_size = np.lexsort((groups, -sizes))  # largest first, ties to the lower label
    groups, sizes = groups[by_size], sizes[by_size]
    n_total = len(groups)
    cum = np.cumsum(sizes)
    c_min = int(np.searchsorted(cum, k) + 1) if n_total and cum[-1] >= k else n_total
    c_max = max(c_min, min(n_total, k))  # k rows reach at most k clusters
    c_used = c_min + int(round(diversity * (c_max - c_min)))
    chosen, chosen_sizes = groups[:c_used], sizes[:c_used]
    orders = within_cluster_orders(labels, chosen, quality, ctx.seed)
    k_clusters = min(k, int(chosen_sizes.sum()))
    tie = None
    if quality is not None:  # the rows left over after the water level go to clusters whose next row is best
        level = water_level(chosen_sizes, k_clusters)
        tie = np.array([quality[o[level]] if level < len(o) else -np.inf for o in orders])
    quota = equal_quota(chosen_sizes, k_clusters, tie)
    rows, pos = take_round_robin(orders, quota, quality)
    cluster_of_row = chosen[pos]
    if len(rows) < k:  # only HDBSCAN noise is left to supply the rest
        noise = np.flatnonzero(labels < 0)
        extra = np.random.default_rng(ctx.seed).permutation(noise)[: k - len(rows)]
        logger.warning(
            "clusters: the %d clusters hold %d rows; %d noise rows (label -1) fill up to k=%d.",
            n_total,
            len(rows),
            len(extra),
            k,
        )
        rows = np.concatenate([rows, extra])
        cluster_of_row = np.concatenate([cluster_of_row, np.full(len(extra), -1)])
    gains = quality[rows] if quality is not None else np.zeros(k)
    counts = quota[quota > 0]
    return SelectionResult(
        indices=rows.astype(np.int64),
        gains=np.asarray(gains, dtype=np.float64),
        objective={
            "clusters_used": int((quota > 0).sum()),
            "clusters_total": n_total,
            "clusters_min": c_min,
            "clusters_max": c_max,
            "rows_per_cluster_min": int(counts.min()) if len(counts) else 0,
            "rows_per_cluster_max": int(counts.max()) if len(counts) else 0,
        },
        details={
            "clustering": info,
            "diversity": diversity,
            "clusters_chosen": c_used,
            "cluster_order": "size descending, ties to the lower label",
            "within_cluster": "quality descending" if quality is not None else f"random (seed {ctx.seed})",
        },
        columns={"selection_cluster": cluster_of_row.astype(np.int64).tolist()},
    )


METHOD = Method(
    name="clusters",
    select=select_clusters,
    config=ClustersConfig,
    label="clusters: macro diversity over k-means clusters (diversity dial)",
    summary="Macro diversity (macro-to-micro paper): semantic clusters of the embeddings; the `diversity` dial sets "
    "how many clusters the rows are drawn from.",
    choices=("k-means is the default clustering (seeded); the paper's UMAP + HDBSCAN is optional.",),
    needs_embeddings=True,
)
