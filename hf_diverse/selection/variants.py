"""QDIT variants of the paper's Appendix H (the QDIT paper): `method="qdit-threshold"` and `method="qdit-cluster"`.

- **Threshold.** Walk the pool by quality, best first (ties: lower row), and keep a row only if its cosine similarity
  to every row kept so far is at most `tau` (paper: 0.5); stop at k. If the pool runs out first, an error says how
  many rows were found and how to relax `tau`. Similarities are computed in torch on the embeddings' device, block
  by block: a block of candidates is compared with the kept rows in one matrix product, and only the candidates
  that pass are checked against each other (in quality order) inside the block. Memory O(B (k + B)).
- **Cluster.** k-means (`n_clusters=100` as in the paper; fewer on small pools: at most k and at most N / 10, so
  clusters hold about 10 rows or more) on the embeddings, then an equal quota per cluster, best quality first
  within each cluster; clusters too small for their share give everything they have and the rest is shared among
  the others (water-filling, `hf_diverse.quota.equal_quota`). Per-cluster counts of clusters that are
  not exhausted differ by at most one; the extra rows go to the clusters whose next row has the best quality.

Without a `quality_column` both walk the pool in a random order drawn from `seed` instead of quality order
(hf_diverse's choice; logged), i.e. the threshold variant becomes a seeded random greedy packing and the cluster
variant a stratified random sample.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..clustering import kmeans_labels
from ..errors import InvalidParameterError
from ..quota import equal_quota, take_round_robin, water_level, within_cluster_orders
from ..utils.logging import get_logger
from ..utils.progress import tqdm
from .base import Method, SelectionContext, SelectionResult
from .config import MethodConfig, option

logger = get_logger(__name__)


@dataclass
class ThresholdConfig(MethodConfig):
    """Options of `method="qdit-threshold"`."""

    tau: float = option(
        0.5,
        "Cosine-similarity threshold in [-1, 1]: a row is kept only if its similarity to every kept row is at most "
        "tau (the paper: 0.5). Larger keeps more.",
        bounds=(-1, 1),
        space={"minimum": -1, "maximum": 1, "step": 0.05},
    )
    block_size: int = option(1024, "Candidates compared with the kept rows per matrix product.", bounds=(1, None))


@dataclass
class ClusterConfig(MethodConfig):
    """Options of `method="qdit-cluster"`."""

    n_clusters: int = option(
        100,
        "k-means clusters (the paper: 100); on small pools at most k and at most N / 10 are used (recorded).",
        bounds=(1, None),
    )


def quality_order(quality: np.ndarray | None, n: int, seed: int, method: str) -> np.ndarray:
    """Row order: quality descending (ties to the lower row), or a seeded random permutation without quality."""
    if quality is None:
        logger.warning(
            "%s: no `quality_column` given; rows are visited in a random order (seed %d) instead of quality order.",
            method,
            seed,
        )
        return np.random.default_rng(seed).permutation(n).astype(np.int64)
    return np.lexsort((np.arange(n), -quality)).astype(np.int64)


def threshold_greedy(
    x: torch.Tensor, order: np.ndarray, k: int, tau: float, block_size: int = 1024, show_progress: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep rows of `x` in `order` whose cosine similarity to every kept row is <= `tau`, up to `k` rows.

    Returns `(kept, max_similarity, visited)`: kept rows in order, each one's max similarity to the rows kept before
    it (-1 for the first), and how many rows of `order` were examined.
    """
    x = torch.nn.functional.normalize(x.float(), dim=1)
    kept_emb = torch.empty((k, x.shape[1]), dtype=x.dtype, device=x.device)
    kept: list[int] = []
    max_sims: list[float] = []
    visited = 0
    bar = tqdm(total=k, desc="Threshold", disable=not show_progress, leave=False)
    for start in range(0, len(order), block_size):
        if len(kept) >= k:
            break
        rows = order[start : start + block_size]
        cand = x[torch.as_tensor(rows, device=x.device)]
        if kept:
            best_prev = (cand @ kept_emb[: len(kept)].T).max(dim=1).values
        else:
            best_prev = torch.full((len(rows),), -1.0, dtype=x.dtype, device=x.device)
        alive = best_prev <= tau
        idx = torch.nonzero(alive).flatten()
        if idx.numel() == 0:
            visited = start + len(rows)
            continue
        inner = (cand[idx] @ cand[idx].T).cpu().numpy()
        best = best_prev[idx].cpu().numpy().astype(np.float64)
        ok = np.ones(len(idx), dtype=bool)
        idx_np = idx.cpu().numpy()
        visited = start + len(rows)
        for j in range(len(idx_np)):
            if not ok[j]:
                continue
            # candidate j passes the kept rows and every earlier candidate of the block that was kept
            kept.append(int(rows[idx_np[j]]))
            max_sims.append(float(best[j]))
            kept_emb[len(kept) - 1] = cand[idx_np[j]]
            bar.update(1)
            if len(kept) == k:
                visited = start + int(idx_np[j]) + 1
                break
            later = inner[j, j + 1 :]
            best[j + 1 :] = np.maximum(best[j + 1 :], later)
            ok[j + 1 :] &= later <= tau
    bar.close()
    return np.asarray(kept, dtype=np.int64), np.asarray(max_sims, dtype=np.float64), visited


def select_qdit_threshold(ctx: SelectionContext, config: ThresholdConfig) -> SelectionResult:
    """QDIT threshold variant: best quality first, skip rows with cosine similarity > `tau` to a kept row.

    Args:
        ctx (`SelectionContext`): from `select_diverse` (embedding column; `quality_column` strongly advised).
        config (`ThresholdConfig`): `tau` and `block_size`.

    Returns:
        `SelectionResult`; the column `selection_max_similarity` holds each row's largest cosine similarity to the
        rows kept before it (-1 for the first row). Raises `InvalidParameterError` when fewer than k rows pass.

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10, method="qdit-threshold", quality_column="reward", tau=0.6)
    >>> max(subset["selection_max_similarity"]) <= 0.6  # no kept row is closer than tau to an earlier one
    True
    ```
    """
    tau, block_size = config.tau, config.block_size
    q = ctx.quality()
    order = quality_order(q, ctx.n, ctx.seed, "qdit-threshold")
    kept, max_sims, visited = threshold_greedy(
        ctx.embeddings(), order, ctx.k, float(tau), int(block_size), ctx.show_progress
    )
    if len(kept) < ctx.k:
        found_max = float(max_sims.max()) if len(max_sims) else -1.0
        raise InvalidParameterError(
            f"qdit-threshold found only {len(kept)} of k={ctx.k} rows whose pairwise cosine similarity is <= "
            f"tau={tau} in the pool of {ctx.n}. Relax the threshold (raise `tau`, e.g. to {min(1.0, tau + 0.1):.2f}),"
            f" lower k to at most {len(kept)}, or use method='qdit'."
            + (f" (largest similarity among the kept rows: {found_max:.3f})" if len(kept) > 1 else "")
        )
    objective = {"tau": float(tau), "rows_examined": int(visited), "max_pairwise_similarity": float(max_sims.max())}
    if q is not None:
        objective["quality_mean"] = float(q[kept].mean())
    return SelectionResult(
        indices=kept,
        gains=q[kept] if q is not None else np.zeros(len(kept)),
        objective=objective,
        details={
            "order": "quality descending" if q is not None else f"random (seed {ctx.seed})",
            "similarity": "cosine of the L2-normalised embeddings",
            "block_size": int(block_size),
        },
        columns={"selection_max_similarity": max_sims.tolist()},
    )


def qdit_cluster_count(n_clusters: int, n: int, k: int) -> int:
    """Clusters actually used: `n_clusters`, but at most k and at most N / 10 (clusters of ~10+ rows), at least 1."""
    return int(max(1, min(n_clusters, k, n // 10)))


def select_qdit_cluster(ctx: SelectionContext, config: ClusterConfig) -> SelectionResult:
    """QDIT cluster variant: k-means clusters, an equal quota from each, best quality first.

    Args:
        ctx (`SelectionContext`): from `select_diverse` (embedding column; `quality_column` strongly advised).
        config (`ClusterConfig`): `n_clusters`.

    Returns:
        `SelectionResult` with a `selection_cluster` column (k-means label of each row).

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10, method="qdit-cluster", quality_column="reward", n_clusters=5)
    >>> np.bincount(subset["selection_cluster"]).tolist()  # rows per cluster: an equal quota
    [2, 2, 2, 2, 2]
    ```
    """
    n_clusters = config.n_clusters
    n, k = ctx.n, ctx.k
    c = qdit_cluster_count(int(n_clusters), n, k)
    if c < n_clusters:
        logger.info("qdit-cluster: %d clusters instead of %d (pool of %d rows, k=%d).", c, n_clusters, n, k)
    labels, info = kmeans_labels(ctx.embeddings(), c, ctx.seed)
    q = ctx.quality()
    if q is None:
        logger.warning(
            "qdit-cluster: no `quality_column` given; rows within a cluster are taken in a random order "
            "(seed %d) instead of best quality first.",
            ctx.seed,
        )
    groups, sizes = np.unique(labels, return_counts=True)
    orders = within_cluster_orders(labels, groups, q, ctx.seed)
    tie = None
    if q is not None:
        level = water_level(sizes, k)
        tie = np.array([q[o[level]] if level < len(o) else -np.inf for o in orders])
    quota = equal_quota(sizes, k, tie)
    rows, pos = take_round_robin(orders, quota, q)
    objective = {
        "clusters": len(groups),
        "rows_per_cluster_min": int(quota.min()),
        "rows_per_cluster_max": int(quota.max()),
    }
    if q is not None:
        objective["quality_mean"] = float(q[rows].mean())
    return SelectionResult(
        indices=rows,
        gains=q[rows] if q is not None else np.zeros(k),
        objective=objective,
        details={
            "clustering": info,
            "n_clusters_requested": int(n_clusters),
            "within_cluster": "quality descending" if q is not None else f"random (seed {ctx.seed})",
        },
        columns={"selection_cluster": groups[pos].astype(np.int64).tolist()},
    )


THRESHOLD = Method(
    name="qdit-threshold",
    select=select_qdit_threshold,
    config=ThresholdConfig,
    label="QDIT threshold variant (quality order, similarity <= tau)",
    summary="QDIT threshold variant: rows in quality order, each kept only if its cosine similarity to every kept row "
    "is at most `tau`.",
    choices=(
        "If the pool runs out before k rows pass the threshold, hf_diverse raises an error naming how many rows were "
        "found, instead of returning fewer rows.",
    ),
    needs_embeddings=True,
)
CLUSTER = Method(
    name="qdit-cluster",
    select=select_qdit_cluster,
    config=ClusterConfig,
    label="QDIT cluster variant (equal quota per k-means cluster, best quality first)",
    summary="QDIT cluster variant: k-means clusters of the embeddings, an equal share from each cluster, best quality "
    "first.",
    choices=("When a cluster runs dry its share goes to the other clusters, so the subset has exactly k rows.",),
    needs_embeddings=True,
)
