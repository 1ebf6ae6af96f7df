"""Blocked exact greedy: the N x N similarity matrix is never stored.

Two implementations of `strategy="blocked"`, with the picks of the stored strategies:

- **Compiled, on CPU** (`blocked_greedy`, numba). One pass of products X[rows] X^T, a block of rows at a time,
  keeps of each row v its largest similarities, at most `top` of them (`TopLists`: float32 values and their columns,
  8 bytes an entry), a bound tau_v on the values it did not keep, and d(v | {}). Then greedy keeps every gain
  exact by updates, as the `"incremental"` strategy does: when a pick raises the cover of v from old_v to new_v,
  candidate i loses clamp(S[v, i], old_v, new_v) - old_v.
  - **Updates.** If old_v >= tau_v, a similarity of row v that was not kept is <= old_v and takes nothing, so the
    update reads the kept entries of row v only (in coarse value order: it stops at the first bin below old_v's).
    Rows still under their threshold (all of them at the start, few after some dozens of picks on clustered data)
    are recomputed, `X[rows] X^T`, a block at a time.
  - **Columns.** A pick needs column j of S (its cover) and the near-ties need theirs (their direct re-score); by
    symmetry that is row j, whose kept entries give every value that can matter for the points v with
    cur_v >= tau_j. The others (the set W: cur_v below the largest tau of the candidates at hand) come from one
    product `X[W] X[candidates]^T`.
  The updated gains carry rounding of their own, so every pick re-scores directly the candidates within a rounding
  bound of the best and decides on those numbers, summed as `kernels._row_gain` sums a row of the stored S.
- **torch** (GPU, or without numba): lazy greedy asks for the similarity rows it re-scores (`similarity_rows`), and
  they are recomputed from the embeddings, `max(0, X[rows] X^T)`. Memory O(N d + B N); ~12 N rows re-scored (33x
  one X X^T at N = 20k, k = 2k on 2 CPU cores, where the compiled loop takes 3.1-4.5x: `benchmarks/RESULTS.md`).

**Same values.** A product smaller than `MIN_PRODUCT_ROWS` either way is padded to that size: small products take
other summation paths in the BLAS and round differently in the last bit, while in the BLAS torch ships for x86 CPUs
products of at least 16 x 16 gave every entry the float32 value it has in X X^T
(`tests/facility/test_blocked.py` checks it on the machine that runs the tests). So the similarities are those of
the stored matrix, and the picks, the gains and the tie-breaking are the stored strategies'.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..utils.logging import get_logger
from ..utils.progress import tqdm
from . import kernels
from .objective import GreedyResult

logger = get_logger(__name__)

MIN_PRODUCT_ROWS = 16  # products smaller than this either way are padded: they round differently (see above)
TOP_BYTES_PER_ENTRY = 8  # a kept similarity: float32 value and int32 column
TOP_MIN = 16  # kept similarities per row whatever the budget
BINS = 1024  # the coarse value order of the kept entries: bins of width 1/1024 from 0, the top one open above
SAMPLE_SPAN, SAMPLE_STEP = 16, 16  # the first guess of a row's threshold: 16 similarities of every 256
BUILD_BLOCK_BYTES = 64 * 2**20  # rows of X X^T per block of the build pass: ~64 MiB
# rows recomputed per product in the greedy: ~8 MiB (read again while in cache), and at least 160: every product
# reads all of X, so fewer rows make it memory-bound (N = 100k: 68 s per N rows at 20 rows, 24 s at 167)
UPDATE_BLOCK_BYTES, UPDATE_MIN_ROWS = 8 * 2**20, 160
# what the compiled pick loop hands back to Python for
_DONE, _NEED_COLUMNS, _NEED_ROWS = 0, 1, 2


def similarity_rows(x: torch.Tensor):
    """A row provider for the torch greedy loops: `rows -> max(0, X[rows] X^T)` (float32, on `x.device`); fewer than
    `MIN_PRODUCT_ROWS` rows are computed padded, so each row has the values of the full product."""

    def rows_of(rows: torch.Tensor) -> torch.Tensor:
        m = rows.numel()
        return (x[_padded(rows)] @ x.T)[:m].clamp_(min=0)

    return rows_of


def top_per_row(n: int, memory_budget: int) -> int:
    """Similarities kept per row within `memory_budget` bytes: between `TOP_MIN` and N/2 (which takes the memory of
    S itself).

    Example:
    ```py
    >>> top_per_row(20_000, 2**30)
    6710
    ```
    """
    return int(max(min(TOP_MIN, n), min(n // 2, memory_budget // (TOP_BYTES_PER_ENTRY * n))))


@dataclass
class TopLists:
    """The largest similarities of each row of S = X X^T (see the module docstring).

    Args:
        values, columns (`np.ndarray` of shape `(N, top)`): row v's kept similarities (float32, all > 0) and their
            columns in `values[v, :count[v]]`, by value bin (`BINS` of width 1 / BINS from 0, the last one open
            above), the highest first.
        count (`np.ndarray` of int64): kept similarities per row.
        tau (`np.ndarray` of float32): a bound on the similarities of each row that were not kept (all are < tau_v):
            the lower edge of its lowest kept bin, 0 when every positive one was kept, just above the row's largest
            similarity when none was (its top bin alone held more than `top`).
        gains (`np.ndarray` of float64): d(v | {}) = sum_i max(0, S[v, i]).
    """

    values: np.ndarray
    columns: np.ndarray
    count: np.ndarray
    tau: np.ndarray
    gains: np.ndarray


def build_top_lists(x: torch.Tensor, top: int, show_progress: bool = False) -> TopLists:
    """One pass of products over row blocks of X X^T: the `top` largest similarities of every row (whole value bins:
    fewer where a bin does not fit), the thresholds and the initial gains.

    Example:
    ```py
    >>> x = torch.nn.functional.normalize(torch.randn(500, 16), dim=1)
    >>> lists = build_top_lists(x, top=50)
    >>> bool((lists.count <= 50).all()), lists.values.shape
    (True, (500, 50))
    ```
    """
    n = x.shape[0]
    width = kernels.block_width(n)
    values = np.empty((n, top), dtype=np.float32)
    columns = np.empty((n, top), dtype=np.int32)
    count = np.empty(n, dtype=np.int64)
    tau = np.empty(n, dtype=np.float32)
    gains = np.empty(n, dtype=np.float64)
    rows = max(MIN_PRODUCT_ROWS, min(n, BUILD_BLOCK_BYTES // (4 * n)))
    block = torch.empty((rows, n), dtype=torch.float32)
    parts = 4 * kernels.numba.get_num_threads()
    for start in tqdm(range(0, n, rows), desc="Similarities", disable=not show_progress, leave=False):
        stop = min(n, start + rows)
        if stop - start >= MIN_PRODUCT_ROWS:
            out = block[: stop - start]
            torch.matmul(x[start:stop], x.T, out=out)
        else:  # the last block, padded
            out = block[:MIN_PRODUCT_ROWS]
            torch.matmul(x[_padded(torch.arange(start, stop))], x.T, out=out)
        sl = slice(start, stop)
        _select_rows(out[: stop - start].numpy(), values[sl], columns[sl], count[sl], tau[sl], gains[sl], width, parts)
    return TopLists(values, columns, count, tau, gains)


def blocked_greedy(x: torch.Tensor, k: int, w: float, b: torch.Tensor, top: int, show_progress: bool) -> GreedyResult:
    """Exact greedy without the N x N matrix, with the compiled kernels (see the module docstring): maximises
    w * d(j | A) + b_j keeping `top` similarities per row. `facility_location_greedy(strategy="blocked")` calls it.

    Example:
    ```py
    >>> x = torch.nn.functional.normalize(torch.randn(500, 16), dim=1)
    >>> res = blocked_greedy(x, 10, 1.0, torch.zeros(500, dtype=torch.float64), top=50, show_progress=False)
    >>> res.indices.shape, res.details["blocked_top"]
    ((10,), 50)
    ```
    """
    n = x.shape[0]
    t0 = time.perf_counter()
    lists = build_top_lists(x, top, show_progress)
    t1 = time.perf_counter()
    loop = _Loop(x, k, w, b.cpu().numpy().astype(np.float64), lists)
    bar = tqdm(total=k, desc="Facility location (blocked)", disable=not show_progress, leave=False)
    while loop.step < k:
        before = loop.step
        loop.run()
        bar.update(loop.step - before)
    bar.close()
    details = {
        "backend": "numba",
        "similarity_s": round(t1 - t0, 3),
        "greedy_s": round(time.perf_counter() - t1, 3),
        "blocked_top": int(top),
        "blocked_recomputed_rows": int(loop.recomputed),
        "blocked_column_products": int(loop.column_products),
    }
    logger.info(
        "blocked greedy: kept up to %d similarities per row; recomputed %d similarity rows (%.2f N); %d picks "
        "needed a column product",
        top,
        loop.recomputed,
        loop.recomputed / n,
        loop.column_products,
    )
    coverage = kernels._total(loop.cur)
    return GreedyResult(loop.picks, loop.scores, loop.div_gains, coverage, "blocked", loop.evaluations, details)


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels of `blocked_greedy` on a tiny pool; a no-op without numba."""
    if not kernels.HAS_NUMBA:
        return
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(64, 8, generator=g), dim=1)
    blocked_greedy(x, 8, 1.0, torch.zeros(64, dtype=torch.float64), 4, show_progress=False)


def _padded(rows):
    """`rows` (numpy or torch) with its first entry repeated up to `MIN_PRODUCT_ROWS` entries (the extra rows of the
    product are ignored)."""
    m = rows.shape[0]
    if m >= MIN_PRODUCT_ROWS:
        return rows
    if isinstance(rows, torch.Tensor):
        return torch.cat([rows, rows[:1].expand(MIN_PRODUCT_ROWS - m)])
    return np.concatenate([rows, np.full(MIN_PRODUCT_ROWS - m, rows[0], dtype=rows.dtype)])


class _Loop:
    """The greedy loop's state. `run()` lets the compiled loop pick until it needs a product, then computes it:
    the columns of the near-ties for the points under their threshold, or the rows of S a pick covered that were
    still under theirs."""

    def __init__(self, x, k, w, bonus, lists: TopLists):
        n = x.shape[0]
        self.x, self.k, self.w, self.bonus, self.lists = x, k, w, bonus, lists
        self.width = kernels.block_width(n)
        self.cur = np.zeros(n, dtype=np.float32)
        self.div = lists.gains.copy()
        self.picked = np.zeros(n, dtype=np.bool_)
        self.picks = np.empty(k, dtype=np.int64)
        self.scores = np.empty(k, dtype=np.float64)
        self.div_gains = np.empty(k, dtype=np.float64)
        self.near = np.empty(n, dtype=np.int64)
        self.col = np.zeros(n, dtype=np.float32)  # zero between uses
        self.in_w = np.zeros(n, dtype=np.bool_)  # False between uses
        self.rows, self.old, self.new = np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.float32)
        self.counters = np.zeros(4, dtype=np.int64)  # step, updates, evaluations, near-ties
        self.div_max = float(self.div.max())
        chunk = max(MIN_PRODUCT_ROWS, min(n, max(UPDATE_MIN_ROWS, UPDATE_BLOCK_BYTES // (4 * n))))
        self.rows_buf = torch.empty((chunk, n), dtype=torch.float32)
        self.parts = 4 * kernels.numba.get_num_threads()
        self.recomputed = self.column_products = 0

    @property
    def step(self) -> int:
        return int(self.counters[0])

    @property
    def evaluations(self) -> int:
        return int(self.counters[2])

    def _args(self):
        lst = self.lists
        return (lst.values, lst.columns, lst.count, lst.tau, self.cur, self.div, self.picked, self.w, self.bonus)

    def _outputs(self):
        return (self.picks, self.scores, self.div_gains, self.rows, self.old, self.new, self.col, self.width)

    def run(self) -> None:
        status, limit, dense = _run_picks(
            *self._args(),
            self.k,
            self.cur.shape[0],
            self.div_max,
            self.near,
            self.in_w,
            self.counters,
            *self._outputs(),
        )
        if status == _NEED_COLUMNS:
            self.column_products += 1
            near = self.near[: self.counters[3]]
            w_rows = np.nonzero(self.cur < limit)[0]
            cols = (self.x[torch.from_numpy(_padded(w_rows))] @ self.x[torch.from_numpy(_padded(near))].T).numpy()
            dense = _pick(*self._args(), near, w_rows, cols, self.in_w, self.counters, *self._outputs())
        for c0 in range(0, dense, self.rows_buf.shape[0]):  # covered rows under their threshold: recomputed
            c1 = min(dense, c0 + self.rows_buf.shape[0])
            index = torch.from_numpy(_padded(self.rows[c0:c1]))
            out = self.rows_buf[: index.numel()]
            torch.matmul(self.x[index], self.x.T, out=out)
            _take_rows(out.numpy(), self.old[c0:c1], self.new[c0:c1], self.div, self.parts)
        self.recomputed += dense


if kernels.HAS_NUMBA:
    from numba import njit, prange

    _span_gain = kernels._span_gain
    _near_rows = kernels._near_rows
    _NEG_INF = -math.inf

    @njit(cache=True, nogil=True)
    def _blocks_gain(row, cur, width):
        """sum_v max(0, row[v] - cur[v]) summed `width` columns at a time, as `kernels._row_gain` sums a row of the
        stored S (a block it skips adds exactly 0), so both give the same float64."""
        n, total = row.shape[0], 0.0
        for lo in range(0, n, width):
            total += _span_gain(row[lo : min(n, lo + width)], cur[lo : min(n, lo + width)])
        return total

    @njit(cache=True, nogil=True)
    def _bin(s):
        return min(int(s * BINS), BINS - 1)

    @njit(cache=True, nogil=True)
    def _select_row(row, top, values, columns, buf_v, buf_c, hist):
        """Keep the positive entries of `row` from the highest value bin down, as many whole bins as fit `top`,
        bin by bin (columns increasing within a bin). Returns `(kept, tau)`, tau the lower edge of the lowest kept
        bin (0 when every positive entry is kept; just above the row's largest entry when nothing is): every entry
        left out is < tau."""
        n = row.shape[0]
        # a first threshold from a sample (16 consecutive entries of every 256: 1/16 of the cache lines), aiming at
        # 5/4 of `top`; the exact trim below fixes it
        hist[:] = 0
        for lo in range(0, n, SAMPLE_SPAN * SAMPLE_STEP):
            for c in range(lo, min(n, lo + SAMPLE_SPAN)):
                if row[c] > 0:
                    hist[_bin(row[c])] += 1
        floor, seen = BINS, 0
        while floor > 0 and (seen + hist[floor - 1]) * SAMPLE_STEP * 4 <= 5 * top:
            seen += hist[floor - 1]
            floor -= 1
        # bin(s) >= floor <=> s >= floor / BINS exactly (BINS is a power of 2); floor = 0: every s > 0
        limit = np.float32(floor / BINS) if floor > 0 else np.float32(1e-45)
        m = 0
        for c in range(n):  # branch-free gather of the entries >= limit
            s = row[c]
            buf_v[m], buf_c[m] = s, c
            m += s >= limit
        # trim to whole bins that fit `top`
        hist[:] = 0
        for t in range(m):
            hist[_bin(buf_v[t])] += 1
        first, kept = BINS, 0  # not below `floor`: the entries under it were not gathered
        while first > floor and kept + hist[first - 1] <= top:
            kept += hist[first - 1]
            first -= 1
        if first == BINS:  # the top bin alone holds more than `top`: nothing is kept, and since that bin is open
            hi = np.float32(1)  # above (rows off unit length have entries over 1), the row's largest entry bounds
            for t in range(m):  # what was left out
                hi = max(hi, buf_v[t])
            return 0, np.float32(np.nextafter(hi, np.float32(np.inf)))
        pos = np.empty(BINS, dtype=np.int64)
        p = 0
        for bn in range(BINS - 1, first - 1, -1):
            pos[bn] = p
            p += hist[bn]
        for t in range(m):
            s = buf_v[t]
            bn = _bin(s)
            if bn >= first:
                values[pos[bn]], columns[pos[bn]] = s, buf_c[t]
                pos[bn] += 1
        return kept, np.float32(first / BINS)

    @njit(cache=True, parallel=True)
    def _select_rows(block, values, columns, count, tau, gains, width, parts):
        """For each row of a block of X X^T (the rows of the other arguments' slices): `_select_row`, and
        d(row | {}) summed as `kernels._row_gain` sums it."""
        rows, n, top = block.shape[0], block.shape[1], values.shape[1]
        zero = np.zeros(n, dtype=np.float32)
        for p in prange(parts):
            buf_v = np.empty(n + 1, dtype=np.float32)
            buf_c = np.empty(n + 1, dtype=np.int32)
            hist = np.empty(BINS, dtype=np.int64)
            for r in range(p * rows // parts, (p + 1) * rows // parts):
                row = block[r]
                count[r], tau[r] = _select_row(row, top, values[r], columns[r], buf_v, buf_c, hist)
                gains[r] = _blocks_gain(row, zero, width)

    @njit(cache=True, nogil=True)
    def _direct_gain(c, values, columns, count, w_rows, w_col, in_w, cur, col, width):
        """d(c | A) from row c of S (= column c): the product's values for the rows of W, the kept entries of row c
        for the others (one not kept is <= tau_c <= cur there and adds 0), summed block by block as
        `kernels._row_gain` sums row c of the stored S."""
        for e in range(count[c]):
            v = columns[c, e]
            if not in_w[v]:
                col[v] = values[c, e]
        for i in range(w_rows.shape[0]):
            col[w_rows[i]] = w_col[i]
        total = _blocks_gain(col, cur, width)
        for e in range(count[c]):
            col[columns[c, e]] = 0
        for i in range(w_rows.shape[0]):
            col[w_rows[i]] = 0
        return total

    @njit(cache=True, nogil=True)
    def _take_kept(values, columns, count, v, o, h, div):
        """div[i] -= clamp(S[v, i], o, h) - o over the kept entries of row v (the others are <= o), stopping at the
        first value bin below o's."""
        o64, h64 = np.float64(o), np.float64(h)
        floor = _bin(o)
        for e in range(count[v]):
            s = values[v, e]
            if s > o:
                div[columns[v, e]] -= min(np.float64(s), h64) - o64
            elif _bin(s) < floor:
                break

    @njit(cache=True, nogil=True)
    def _pick(values, columns, count, tau, cur, div, picked, w, bonus, near, w_rows, cols, in_w, counters,
              picks, scores, div_gains, rows, old, new, col, width):  # fmt: skip
        """One pick among the near-ties `near` (direct re-scores; ties: the lower row), its cover and the updates
        the kept entries can do. The covered rows still under their threshold go to rows/old/new; returns their
        count. `w_rows`, `cols`: the rows of W and their similarities to `near` (a product), `in_w` their flags."""
        for i in range(w_rows.shape[0]):
            in_w[w_rows[i]] = True
        best, top = -1, _NEG_INF
        for t in range(near.shape[0]):
            c = near[t]
            div[c] = _direct_gain(c, values, columns, count, w_rows, cols[:, t], in_w, cur, col, width)
            f = w * div[c] + bonus[c]
            if f > top:  # rows come in increasing order: ties keep the lower one
                top, best = f, t
        j = near[best]
        step = counters[0]
        picks[step], scores[step], div_gains[step] = j, top, div[j]
        picked[j] = True
        dense = covered = 0
        for e in range(count[j] + w_rows.shape[0]):  # column j: kept entries outside W, then W
            if e < count[j]:
                v = columns[j, e]
                if in_w[v]:
                    continue
                s = values[j, e]
            else:
                v = w_rows[e - count[j]]
                s = cols[e - count[j], best]
            if s > cur[v]:
                o = cur[v]
                cur[v] = s
                covered += 1
                if o < tau[v]:
                    rows[dense], old[dense], new[dense] = v, o, s
                    dense += 1
                else:
                    _take_kept(values, columns, count, v, o, s, div)
        for i in range(w_rows.shape[0]):
            in_w[w_rows[i]] = False
        counters[0] += 1
        counters[1] += covered
        counters[2] += near.shape[0] + covered
        return dense

    @njit(cache=True, nogil=True)
    def _run_picks(values, columns, count, tau, cur, div, picked, w, bonus, k, n, div_max, near, in_w, counters,
                   picks, scores, div_gains, rows, old, new, col, width):  # fmt: skip
        """Pick until done or a product is needed: `(status, limit, rows to recompute)`. `_NEED_COLUMNS`: some
        point has cur below `limit`, the largest tau of the near-ties (their count in counters[3], in `near`);
        `_NEED_ROWS`: the last pick covered rows under their threshold (in rows/old/new)."""
        no_rows = np.empty(0, dtype=np.int64)
        no_cols = np.empty((0, 0), dtype=np.float32)
        while counters[0] < k:
            # the updates round: at most one ulp of div_max per update of a gain, twice over
            tol = w * 2.0 * (counters[1] + n) * 2.0**-52 * div_max
            m = _near_rows(div, w, bonus, picked, tol, near)
            counters[3] = m
            limit = np.float32(0)
            for t in range(m):
                limit = max(limit, tau[near[t]])
            for v in range(n):
                if cur[v] < limit:
                    return _NEED_COLUMNS, limit, 0
            args = (values, columns, count, tau, cur, div, picked, w, bonus, near[:m], no_rows, no_cols, in_w)
            dense = _pick(*args, counters, picks, scores, div_gains, rows, old, new, col, width)
            if dense:
                return _NEED_ROWS, limit, dense
        return _DONE, np.float32(0), 0

    @njit(cache=True, parallel=True)
    def _take_rows(block, old, new, div, parts):
        """div[i] -= clamp(S[v, i], old_v, new_v) - old_v for recomputed rows S[v, :] (`block`), each of `parts`
        tasks over its own range of columns."""
        n = div.shape[0]
        for p in prange(parts):
            lo, hi = p * n // parts, (p + 1) * n // parts
            part = div[lo:hi]
            for r in range(old.shape[0]):  # on slices: the loop vectorises (5x faster than indexing div here)
                kernels._take(block[r, lo:hi], part, np.float64(old[r]), np.float64(new[r]))
