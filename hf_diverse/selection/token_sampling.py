"""The two stages of `method="tokens"` (the macro-to-micro paper's Algorithms 1 and 2, as hf_diverse designs them).

- `prune_pool`: Algorithm 1, *inverse greedy pruning of the pool*. All rows start alive and every mid-band type is
  kept. Each step drops the kept type held by the fewest alive rows (ties: fewer occurrences in the pool, then a
  seeded random order) together with every alive row holding it; types left without an alive holder leave too. The
  chain ends before a step would leave fewer than k rows. Along the chain the number of kept types |K| and of alive
  rows only fall, so the chain is nested and |K| is non-increasing.
- `token_aware_sample`: Algorithm 2, *token-aware sampling* of k rows from the alive rows: a greedy on the entropy
  of the kept types' occurrence counts in the sample (the evenness of their representation). A row holding types the
  sample lacks raises the entropy most, so coverage grows with it, but not at any price: a row that brings a new type
  while piling more occurrences onto types already frequent can lose to one that brings fewer new types and evens
  the counts out. Ties go to a seeded random order. Entropy is not submodular, so every step re-scores every candidate
  exactly (vectorised; only rows sharing a type with the last pick change their sums).
- `TokenPlan`: the chain of a pool and where the dial lands on it; `length_plan`: the `length="matched"` target.
- `LengthBudget`: the `length="matched"` constraint. Rows fall in length bins (pool quantiles); the sample takes as
  many rows from each bin as a random reference subset does, and its total length stays within
  `[lo_total, hi_total]`: a row is eligible only if the rows still to pick can complete the sample inside the band
  (exact bounds: sums of the shortest / longest rows left in each bin). So a sample that starts feasible always ends
  inside the band.
"""

import heapq
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..utils.progress import tqdm

NEVER = np.iinfo(np.int64).max
MAX_GRID = 64  # chain points the dial may land on (each one costs a sample)
MAX_LENGTH_BINS = 10


@dataclass
class PruneChain:
    """The inverse-greedy pruning chain of a pool.

    Attributes:
        sizes (`np.ndarray`): |K| (kept mid-band types with an alive holder) after each step; `sizes[0]` is the pool's.
        alive (`np.ndarray`): alive rows after each step.
        row_removed_at (`np.ndarray`): the step that removed each row (`NEVER` when it stays to the end); row i is
            alive at step s when `row_removed_at[i] > s`.
        type_removed_at (`np.ndarray`): the step at which each mid-band type left K (`NEVER` when it stays).
        pruned (`np.ndarray`): the type dropped at each step (step s drops `pruned[s - 1]`).
    """

    sizes: np.ndarray
    alive: np.ndarray
    row_removed_at: np.ndarray
    type_removed_at: np.ndarray
    pruned: np.ndarray

    @property
    def length(self) -> int:
        return len(self.sizes) - 1

    def alive_rows(self, step: int) -> np.ndarray:
        return np.flatnonzero(self.row_removed_at > step)

    def kept_types(self, step: int) -> np.ndarray:
        return np.flatnonzero(self.type_removed_at > step)

    def first_step_at_most(self, target: float) -> int:
        """The first step with |K| <= `target` (the last step when none is)."""
        hits = np.flatnonzero(self.sizes <= target + 1e-9)
        return int(hits[0]) if hits.size else self.length


def prune_pool(
    csr: sp.csr_matrix, k: int, type_rank: np.ndarray, quota=None, show_progress: bool = False
) -> PruneChain:
    """Algorithm 1 over the pool's row x mid-band-type matrix (see the module docstring).

    Args:
        csr (`scipy.sparse.csr_matrix`): rows x mid-band types, non-zero where a row holds a type.
        k (`int`): rows that must stay alive.
        type_rank (`np.ndarray`): tie order of the types (lower first) among those with equally few holders.
        quota (`tuple`, *optional*): `(bin of each row, rows needed per bin)`: a type is never dropped when that
            would leave a bin with fewer alive rows than it needs (`length="matched"`). Such a type stays for good:
            rows only die, so a bin's spare rows only shrink.
    """
    n, m = csr.shape
    csc = csr.tocsc()
    holders = np.diff(csc.indptr).astype(np.int64)
    row_removed_at = np.full(n, NEVER, dtype=np.int64)
    type_removed_at = np.where(holders > 0, NEVER, 0).astype(np.int64)
    heap = [(int(holders[j]), int(type_rank[j]), int(j)) for j in range(m) if holders[j] > 0]
    heapq.heapify(heap)
    sizes, alive, pruned = [int((holders > 0).sum())], [n], []
    n_alive, n_kept = n, sizes[0]
    if quota is not None:
        row_bin, need = np.asarray(quota[0]), np.asarray(quota[1])
        spare = np.bincount(row_bin, minlength=len(need)) - need
    bar = tqdm(total=n_kept, desc="Pruning the pool", disable=not show_progress, leave=False)
    while heap:
        count, _, j = heap[0]
        if type_removed_at[j] != NEVER or count != holders[j]:
            heapq.heappop(heap)  # stale entry
            continue
        if n_alive - count < k:
            break  # the next step would leave fewer than k rows
        heapq.heappop(heap)
        step = len(sizes)
        col = csc.indices[csc.indptr[j] : csc.indptr[j + 1]]
        out = col[row_removed_at[col] == NEVER]
        if quota is not None:
            losing = np.bincount(row_bin[out], minlength=len(need))
            if np.any(losing > spare):
                continue  # protected: dropping it would empty a length bin below its quota
            spare -= losing
        row_removed_at[out] = step
        n_alive -= len(out)
        lost = np.concatenate([csr.indices[csr.indptr[i] : csr.indptr[i + 1]] for i in out]) if len(out) else col[:0]
        np.subtract.at(holders, lost, 1)
        touched = np.unique(lost)
        gone = touched[(holders[touched] == 0) & (type_removed_at[touched] == NEVER)]
        type_removed_at[gone] = step
        n_kept -= len(gone)
        for t in touched[holders[touched] > 0].tolist():
            heapq.heappush(heap, (int(holders[t]), int(type_rank[t]), t))
        sizes.append(n_kept)
        alive.append(n_alive)
        pruned.append(j)
        bar.update(len(gone))
    bar.close()
    return PruneChain(
        np.asarray(sizes, dtype=np.int64),
        np.asarray(alive, dtype=np.int64),
        row_removed_at,
        type_removed_at,
        np.asarray(pruned, dtype=np.int64),
    )


class LengthBudget:
    """Per-bin row quotas and a total-length band for the sample (`length="matched"`).

    Args:
        lengths (`np.ndarray`): length of each candidate row.
        bins (`np.ndarray`): length bin of each candidate row.
        quotas (`np.ndarray`): rows to take from each bin (they sum to k).
        lo_total, hi_total (`float`): the band the sample's total length must end in.
    """

    def __init__(self, lengths, bins, quotas, lo_total: float, hi_total: float):
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.bins = np.asarray(bins, dtype=np.int64)
        self.quotas = np.asarray(quotas, dtype=np.int64).copy()
        self.lo, self.hi = float(lo_total), float(hi_total)
        self.total = 0.0
        self.missed = 0  # picks made without an eligible row (the band may then be missed)
        self._taken: list[int] = []
        self.left = [np.sort(self.lengths[self.bins == b]) for b in range(len(self.quotas))]

    def _sums(self, b: int, q: int) -> tuple[float, float]:
        rows = self.left[b]
        return float(rows[:q].sum()), float(rows[len(rows) - q :].sum()) if q else 0.0

    def feasible(self) -> bool:
        """Whether some completion of the sample meets every quota and ends inside the band."""
        if any(q > len(rows) for q, rows in zip(self.quotas, self.left, strict=True)):
            return False
        small = sum(self._sums(b, int(q))[0] for b, q in enumerate(self.quotas))
        large = sum(self._sums(b, int(q))[1] for b, q in enumerate(self.quotas))
        return self.total + small <= self.hi + 1e-9 and self.total + large >= self.lo - 1e-9

    def eligible(self) -> np.ndarray:
        """Rows whose pick leaves a completion inside the band.

        Exact for the last two picks (the last row must land in the band; before it, some row of the bin still
        needing one must). Earlier, the rows still to pick can end anywhere between the sums of the shortest and of
        the longest rows left in their bins: a pick is allowed when the band meets that range (sums of several rows
        are dense, so a gap is unlikely; `token_aware_sample` falls back, logged, if one occurs).
        """
        b, x = self.bins, self.lengths
        quota_left = np.array([0 < q <= len(r) for q, r in zip(self.quotas, self.left, strict=True)])
        rest = int(self.quotas.sum()) - 1  # rows to pick after this one
        if rest <= 0:
            ok = (self.total + x >= self.lo - 1e-9) & (self.total + x <= self.hi + 1e-9)
        elif rest == 1:
            ok = self._last_row_fits(b, x)
        else:
            ok = self._range_meets_band(b, x)
        return ok & quota_left[b]

    def _last_row_fits(self, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Two rows left: after picking a row, is there a row of the bin still needing one that lands in the band?"""
        needing = np.flatnonzero(self.quotas > 0)
        # the bin of the last row: the candidate's own when it needs two, else the other one needing a row
        last = np.where(
            self.quotas[b] >= 2,
            b,
            needing[0] if len(needing) == 1 else np.where(b == needing[0], needing[-1], needing[0]),
        )
        lower, upper = self.lo - self.total - x - 1e-9, self.hi - self.total - x + 1e-9
        count = np.zeros(len(x), dtype=np.int64)
        for bin_ in np.unique(last).tolist():
            rows = self.left[bin_]
            sel = last == bin_
            count[sel] = np.searchsorted(rows, upper[sel], side="right") - np.searchsorted(rows, lower[sel])
            count[sel] -= (b[sel] == bin_) & (x[sel] >= lower[sel]) & (x[sel] <= upper[sel])  # not the row itself
        return count > 0

    def _range_meets_band(self, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        nb = len(self.quotas)
        small_q, small_q1, large_q, large_q1 = (np.zeros(nb) for _ in range(4))
        t_small, t_large = np.full(nb, -np.inf), np.full(nb, np.inf)
        for bin_, q in enumerate(self.quotas.tolist()):
            rows = self.left[bin_]
            if q == 0 or q > len(rows):
                continue
            small_q[bin_], large_q[bin_] = self._sums(bin_, q)
            small_q1[bin_], large_q1[bin_] = self._sums(bin_, q - 1)
            if q > 1:
                t_small[bin_], t_large[bin_] = rows[q - 2], rows[len(rows) - (q - 1)]
        # the q - 1 shortest rows of the bin other than this one (this one is among them when it is short enough)
        rest_small = small_q.sum() - small_q[b] + np.where(x > t_small[b], small_q1[b], small_q[b] - x)
        rest_large = large_q.sum() - large_q[b] + np.where(x < t_large[b], large_q1[b], large_q[b] - x)
        return (self.total + x + rest_small <= self.hi + 1e-9) & (self.total + x + rest_large >= self.lo - 1e-9)

    def nearest(self, free: np.ndarray) -> int | None:
        """The free row of a bin still needing rows that brings the total nearest the band's centre, assuming the
        rows after it are of the mean length the band asks for (the fallback when no row is eligible)."""
        rest = int(self.quotas.sum()) - 1
        centre = (self.lo + self.hi) / 2
        per_row = centre / (rest + 1 + len(self._taken))
        gap = np.abs(self.total + self.lengths + rest * per_row - centre)
        gap = np.where(free & (self.quotas > 0)[self.bins], gap, np.inf)
        return int(np.argmin(gap)) if np.isfinite(gap.min()) else None

    def take(self, row: int) -> None:
        b, x = int(self.bins[row]), self.lengths[row]
        rows = self.left[b]
        self.left[b] = np.delete(rows, int(np.searchsorted(rows, x)))
        self.quotas[b] -= 1
        self.total += x
        self._taken.append(row)


@dataclass
class Sample:
    """Outcome of `token_aware_sample` (row indices are those of the matrix it was given)."""

    rows: np.ndarray  # in pick order
    new_types: np.ndarray  # kept types each pick covered first
    covered: int  # kept types covered by the sample
    complete: bool  # every kept type (column) is covered
    entropy: float  # entropy (nats) of the kept types' occurrence counts in the sample
    budget_misses: int = 0  # picks made when no row kept the length band reachable (`LengthBudget.nearest`)


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of `arange(s, e)` for each pair, without a Python loop."""
    lengths = ends - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + offsets


def _entropy(total: float, a: float) -> float:
    return float(np.log(total) - a / total) if total > 0 else 0.0


def token_aware_sample(
    x: sp.csr_matrix,
    k: int,
    tie_rank: np.ndarray,
    budget: LengthBudget | None = None,
    evenness: bool = True,
    stop_when_complete: bool = False,
    show_progress: bool = False,
) -> Sample:
    """Algorithm 2: k rows of `x` (candidate rows x kept types, occurrence counts), each step the row that raises the
    entropy of the kept types' counts in the sample most (see the module docstring).

    Args:
        x (`scipy.sparse.csr_matrix`): occurrence counts of the kept types in each candidate row.
        k (`int`): rows to pick (at most the number of rows of `x`).
        tie_rank (`np.ndarray`): tie order of the candidate rows (lower first).
        budget (`LengthBudget`, *optional*): the `length="matched"` constraint over the same rows.
        evenness (`bool`, defaults to `True`): rank rows by the entropy gain (`False` ranks them by the number of
            uncovered kept types they hold, ties to `tie_rank`: plain greedy coverage, an ablation).
        stop_when_complete (`bool`, defaults to `False`): stop as soon as every kept type is covered (to test whether
            k rows can cover them).
    """
    n, m = x.shape
    x = x.tocsr()
    x.sum_duplicates()
    csc = x.tocsc()
    counts = np.zeros(m, dtype=np.float64)  # n_j: occurrences of kept type j in the sample
    covered = np.zeros(m, dtype=bool)
    new = np.diff(x.indptr).astype(np.int64)  # kept types of each row not yet covered
    row_len = np.asarray(x.sum(axis=1)).ravel().astype(np.float64)
    # sum_j [f(n_j + c_ij) - f(n_j)] per row, f(x) = x log x: what the row adds to sum_j f(n_j)
    d_a = np.asarray(sp.csr_matrix((_xlogx(x.data), x.indices, x.indptr), shape=x.shape).sum(axis=1)).ravel()
    total, a = 0.0, 0.0
    free = np.ones(n, dtype=bool)
    picked, new_types = [], []
    bar = tqdm(total=k, desc="Token-aware sampling", disable=not show_progress, leave=False)
    while len(picked) < k:
        allowed = free if budget is None else free & budget.eligible()
        forced = None
        if budget is not None and not allowed.any():
            # a gap in the sums of the rows left (see `LengthBudget.eligible`): keep the quotas, head for the target
            forced = budget.nearest(free)
            budget.missed += 1
        if forced is None and not allowed.any():
            break
        after = np.maximum(total + row_len, 1e-300)
        gain = np.where(total + row_len > 0, np.log(after) - (a + d_a) / after, 0.0) - _entropy(total, a)
        key = gain if evenness else new.astype(np.float64)
        key = np.where(allowed, key, -np.inf)
        best = np.flatnonzero(key == key.max())
        i = int(best[np.argmin(tie_rank[best])]) if forced is None else forced
        types, c = x.indices[x.indptr[i] : x.indptr[i + 1]], x.data[x.indptr[i] : x.indptr[i + 1]]
        new_types.append(int((~covered[types]).sum()))
        # every candidate holding one of the pick's types: its entropy sums and its count of uncovered types change
        entries = _ranges(csc.indptr[types], csc.indptr[types + 1])
        holders = csc.indices[entries]
        c_r = csc.data[entries].astype(np.float64)
        per_entry = np.repeat(np.arange(len(types)), np.diff(csc.indptr)[types])
        old = counts[types]
        upd = old + c
        o, u = old[per_entry], upd[per_entry]
        delta = (_xlogx(u + c_r) - _xlogx(u)) - (_xlogx(o + c_r) - _xlogx(o))
        d_a += np.bincount(holders, weights=delta, minlength=n)
        first = ~covered[types]
        new -= np.bincount(holders[first[per_entry]], minlength=n)
        covered[types] = True
        a += float((_xlogx(upd) - _xlogx(old)).sum())
        counts[types] = upd
        total += row_len[i]
        free[i] = False
        picked.append(i)
        if budget is not None:
            budget.take(i)
        bar.update(1)
        if stop_when_complete and covered.all():
            break
    bar.close()
    return Sample(
        rows=np.asarray(picked, dtype=np.int64),
        new_types=np.asarray(new_types, dtype=np.int64),
        covered=int(covered.sum()),
        complete=bool(covered.all()),
        entropy=_entropy(total, a),
        budget_misses=0 if budget is None else budget.missed,
    )


@dataclass
class LengthPlan:
    """The `length="matched"` target: a random subset's mean length, the band around it and the bin quotas."""

    target: float  # mean length of the random reference subset
    low: float  # the band of the subset's mean length
    high: float
    bins: np.ndarray  # length bin of every pool row
    quotas: np.ndarray  # rows of the reference subset in each bin
    edges: list

    def budget(self, rows: np.ndarray, lengths: np.ndarray, k: int) -> LengthBudget:
        return LengthBudget(lengths[rows], self.bins[rows], self.quotas, self.low * k, self.high * k)


def length_plan(lengths: np.ndarray, k: int, seed: int, tolerance: float) -> LengthPlan:
    """Target, band and bin quotas of `length="matched"` (see the module docstring).

    Example:
    ```py
    >>> plan = length_plan(np.arange(100), k=20, seed=0, tolerance=0.1)
    >>> round(plan.target, 2), int(plan.quotas.sum()), len(plan.quotas)
    (48.85, 20, 5)
    ```
    """
    n = len(lengths)
    reference = np.random.default_rng(seed).choice(n, size=k, replace=False)
    target = float(lengths[reference].mean())
    n_bins = max(1, min(MAX_LENGTH_BINS, k // 4))
    edges = np.quantile(lengths, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.zeros(0)
    bins = np.searchsorted(edges, lengths, side="right")
    quotas = np.bincount(bins[reference], minlength=n_bins)
    return LengthPlan(target, target * (1 - tolerance), target * (1 + tolerance), bins, quotas, edges.tolist())


class TokenPlan:
    """The pruning chain of a pool and the samples the dial lands on, computed once per (pool, k, seed, length).

    The dial's points are a fixed grid of chain steps (at most `MAX_GRID`, spread evenly over |K|, the first and the
    last step included); the sample of each is computed when first needed and memoised.

    Args:
        inc (`TokenIncidence`): the pool's mid-band types.
        k (`int`): subset size.
        seed (`int`): orders ties (rows and types).
        lengths (`LengthPlan`, *optional*): the `length="matched"` constraint.
    """

    def __init__(self, inc, k: int, seed: int, lengths: LengthPlan | None, show_progress=False):
        self.inc, self.k, self.lengths, self.show_progress = inc, k, lengths, show_progress
        rng = np.random.default_rng(seed)
        self.row_rank = np.empty(inc.n_rows, dtype=np.int64)
        self.row_rank[rng.permutation(inc.n_rows)] = np.arange(inc.n_rows)
        occurrences = np.asarray(inc.csr.sum(axis=0)).ravel()
        type_rank = np.empty(inc.n_mid, dtype=np.int64)
        type_rank[np.lexsort((rng.permutation(inc.n_mid), occurrences))] = np.arange(inc.n_mid)
        quota = None if lengths is None else (lengths.bins, lengths.quotas)
        self.chain: PruneChain = prune_pool(inc.csr, k, type_rank, quota=quota, show_progress=show_progress)
        self.end = self.chain.length if lengths is None else self._last_feasible_step()
        self.sizes = self.chain.sizes[: self.end + 1]
        self.grid = _grid(self.sizes)
        self._samples: dict[int, tuple] = {}

    def _budget(self, rows):
        return None if self.lengths is None else self.lengths.budget(rows, self.inc.lengths, self.k)

    def _last_feasible_step(self) -> int:
        """Removing rows only shrinks what the quotas and the band can use: feasibility is monotone, so bisect."""
        lo, hi = 0, self.chain.length
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._budget(self.chain.alive_rows(mid)).feasible():
                lo = mid
            else:
                hi = mid - 1
        return lo

    def sample(self, g: int):
        """`(rows, Sample)`: the k-row sample of the pool pruned to grid point `g` (memoised)."""
        if g not in self._samples:
            step = int(self.grid[g])
            rows, kept = self.chain.alive_rows(step), self.chain.kept_types(step)
            x = self.inc.csr[rows][:, kept]
            progress = self.show_progress and len(self._samples) == 0
            sample = token_aware_sample(x, self.k, self.row_rank[rows], self._budget(rows), show_progress=progress)
            self._samples[g] = (rows[sample.rows], sample)
        return self._samples[g]

    def coverage(self, g: int) -> int:
        """Mid-band types the sample at grid point `g` covers (alive rows hold kept types only)."""
        return self.sample(g)[1].covered

    def landing(self, diversity: float) -> tuple[int, float]:
        """`(grid point, target)`: the first grid point whose sample covers at most `c_min + diversity * (c_max -
        c_min)` types, c_max / c_min the coverage at the first / last grid point (`diversity=1`: the first point)."""
        c_max, c_min = self.coverage(0), self.coverage(len(self.grid) - 1)
        target = c_min + diversity * (c_max - c_min)
        g = 0
        while g < len(self.grid) - 1 and self.coverage(g) > target + 1e-9:
            g += 1
        return g, target


def _grid(sizes: np.ndarray) -> np.ndarray:
    """The chain points the dial may land on: every step, or `MAX_GRID` spread evenly over |K| (first and last in)."""
    if len(sizes) <= MAX_GRID:
        return np.arange(len(sizes))
    targets = np.linspace(sizes[-1], sizes[0], MAX_GRID)
    # sizes fall strictly: the first step at or below each target
    steps = len(sizes) - np.searchsorted(sizes[::-1], targets, side="right")
    return np.unique(np.concatenate([[0, len(sizes) - 1], np.clip(steps, 0, len(sizes) - 1)]))
