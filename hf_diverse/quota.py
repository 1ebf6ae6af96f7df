"""Quotas: how many rows each group (cluster, bin) gives, and in which order they come out.

- `equal_quota`: as even as the group sizes allow (water-filling), for the `clusters` method and QDIT-cluster.
- `largest_remainder_quota` / `binned_quota`: proportional to the group sizes, exactly k rows (largest-remainder
  apportionment with deterministic ties), for ADG's bins.
"""

import numpy as np

from .errors import InvalidParameterError


def water_level(sizes: np.ndarray, k: int) -> int:
    """The largest level L with `sum(min(sizes, L)) <= k` (binary search)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    lo, hi = 0, int(sizes.max()) if len(sizes) else 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.minimum(sizes, mid).sum()) <= k:
            lo = mid
        else:
            hi = mid - 1
    return lo


def equal_quota(sizes: np.ndarray, k: int, tie_scores: np.ndarray | None = None) -> np.ndarray:
    """Split `k` rows over groups of `sizes` as evenly as the sizes allow (water-filling).

    Every group gets `min(size, L)` for the largest level L with `sum(min(size, L)) <= k`; the `r` rows left over go
    one each to groups with more than L rows, highest `tie_scores` first (ties and `None`: lower group index).
    So the counts of groups not exhausted differ by at most one.

    Example:
    ```py
    >>> equal_quota(np.array([1, 10, 10]), 8).tolist()
    [1, 4, 3]
    ```
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if k > int(sizes.sum()):
        raise InvalidParameterError(f"Cannot take {k} rows from groups holding {int(sizes.sum())}.")
    if k <= 0 or len(sizes) == 0:
        return np.zeros(len(sizes), dtype=np.int64)
    lo = water_level(sizes, k)
    quota = np.minimum(sizes, lo)
    rest = k - int(quota.sum())
    if rest:
        open_groups = np.flatnonzero(sizes > lo)
        if tie_scores is not None:
            order = open_groups[np.lexsort((open_groups, -np.asarray(tie_scores, dtype=np.float64)[open_groups]))]
        else:
            order = open_groups
        quota[order[:rest]] += 1
    return quota


def within_cluster_orders(labels: np.ndarray, groups: np.ndarray, quality: np.ndarray | None, seed: int) -> list:
    """For each label in `groups`, its rows best quality first (ties: lower row), or in a seeded random order."""
    n = len(labels)
    if quality is not None:
        key = np.lexsort((np.arange(n), -quality))  # quality desc, then row asc
    else:
        key = np.random.default_rng(seed).permutation(n)
    pos = np.empty(n, dtype=np.int64)
    pos[key] = np.arange(n)
    by_label = np.lexsort((pos, labels))  # rows grouped by label, each group in `key` order
    sorted_labels = labels[by_label]
    starts = np.searchsorted(sorted_labels, groups, side="left")
    ends = np.searchsorted(sorted_labels, groups, side="right")
    return [by_label[a:b] for a, b in zip(starts, ends, strict=True)]


def take_round_robin(orders: list, quota: np.ndarray, quality: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Take `quota[g]` leading rows of each `orders[g]`; return them round-robin (rank within the group first, then
    better quality / lower group position) with each row's group position."""
    rows, ranks, group, qkey = [], [], [], []
    for g, (order, q) in enumerate(zip(orders, quota, strict=True)):
        take = order[: int(q)]
        rows.append(take)
        ranks.append(np.arange(len(take)))
        group.append(np.full(len(take), g))
        qkey.append(-quality[take] if quality is not None else np.zeros(len(take)))
    rows, ranks, group, qkey = (np.concatenate(a) if a else np.zeros(0) for a in (rows, ranks, group, qkey))
    order = np.lexsort((group, qkey, ranks))
    return rows[order].astype(np.int64), group[order].astype(np.int64)


def binned_quota(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Exactly `k` row indices: a proportional, largest-remainder quota per bin, best scores first in each bin.

    Args:
        scores (`np.ndarray`): one score per row; higher is better.
        labels (`np.ndarray`): one bin label per row (any integers).
        k (`int`): rows to select, in [0, N].

    Returns:
        `np.ndarray` of int64: the selected rows in pick order (score descending, ties to the lower row).

    Example:
    ```py
    >>> binned_quota(np.array([0.9, 0.1, 0.5, 0.7]), np.array([0, 0, 1, 1]), k=2)
    array([0, 3])
    ```
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(scores)
    if len(labels) != n:
        raise InvalidParameterError(f"Got {n} scores but {len(labels)} bin labels.")
    if not 0 <= k <= n:
        raise InvalidParameterError(f"k must be in [0, {n}], got {k}.")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    # rows by bin, then score descending, then row index: each bin's rows come out best first
    order = np.lexsort((np.arange(n), -scores, labels))
    bins, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    quota = (sizes * k) // n
    remainder = (sizes * k) % n
    extra = k - int(quota.sum())
    if extra:
        # the best row a bin would add next (bins already full have remainder 0 and never get an extra row)
        nxt = np.minimum(starts + quota, starts + sizes - 1)
        next_score = scores[order[nxt]]
        first_row = np.minimum.reduceat(order, starts)
        ranked = np.lexsort((first_row, -next_score, -remainder))
        quota[ranked[:extra]] += 1
    chosen = np.concatenate([order[s : s + q] for s, q in zip(starts, quota, strict=True)]) if len(bins) else order[:0]
    chosen = chosen[np.lexsort((chosen, -scores[chosen]))]
    return chosen.astype(np.int64)
