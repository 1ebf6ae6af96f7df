"""Compiled CPU kernels (numba) of exact greedy facility location over the stored similarity matrix.

Maximises f(j | A) = w * d(j | A) + b_j with d(j | A) = sum_v max(0, S[j, v] - cur[v]) on S = max(0, X X^T) (float32,
symmetric). Every gain is computed by one function, `_row_gain` (float32 terms widened to float64 and summed in
float64), so equal rows give equal gains in whichever phase they are computed, and ties go to the lower row.

- **Column blocks.** S is read in blocks of `width` columns. Each row keeps the maximum of each of its blocks
  (`bmax`, N x N/width float32: 1/16 of S at width 64) and the loop keeps the lowest cover of each block (`cmin`): a
  block where S[j, :] never exceeds the block's lowest cover adds exactly 0 and is not read.
- **Lazy phase.** A binary heap of (upper bound, row) in compiled code; the stale rows at the top are re-scored a
  batch at a time (the batch doubles while the top stays stale; large batches run in parallel) until a bound that is
  exact for this pick is on top.
- **Incremental phase** (`incremental=True`). Once a pick re-scored more rows than the exact update of every gain would
  read (or right after the first pick, when it raised the cover of at least N / `EXACT_FROM_FIRST` rows: every gain is
  still exact then, so nothing is re-scored), every gain is kept exact by subtracting what each pick takes away: for
  the points v whose cover rose from old_v to new_v, candidate i loses clamp(S[v, i], old_v, new_v) - old_v; S is
  symmetric, so that is a pass over the rows S[v, :] (blocks where S[v, :] <= old_v are skipped), split over the
  threads, each streaming whole rows into partial sums of its own that are added at the end, four rows per pass over a
  block of them (`_take4`: the updates are bound by the float64 gains' reads and writes, so one pass for four rows is
  1.7x faster). The updated gains carry rounding of their own, so each pick re-scores directly (with `_row_gain`) every
  candidate within a rounding bound of the best, and decides on those numbers: the same picks as plain greedy, ties
  included.

numba is a dependency of hf_diverse. Where it cannot be imported, `HAS_NUMBA` is False and the engine runs its torch
loops (`hf_diverse.facility.stored`; same picks, slower) and logs it once. The first call in a fresh environment
compiles the kernels (~10 s); `cache=True` keeps the machine code on disk (numba's cache, beside this file or in
`NUMBA_CACHE_DIR`), so later processes load it in well under a second. `warm_up()` does that on a tiny input.
"""

import math

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:  # exercised by the fallback test, which hides numba
    numba = None

HAS_NUMBA = numba is not None
# below these sizes a loop runs on one thread: a parallel region per small batch costs more than it saves (and under
# CPU contention a thread waiting at the barrier for a descheduled one costs milliseconds)
_PARALLEL_ROWS = 64
_PARALLEL_UPDATES = 32
# `incremental` keeps every gain exact from the first pick on when that pick raises the cover of at least N / this
# many rows (`first_covers` of `greedy`): lazy greedy would then re-score most rows at the next pick, and all of them
# again when it switches (the first pick raised 0.55 N and 0.89 N covers on the 20k pools of benchmarks/RESULTS.md,
# "sixth pass", and the switch came at pick 2)
EXACT_FROM_FIRST = 4
_NEG_INF = -math.inf

if HAS_NUMBA:
    # reassociation lets LLVM vectorise the float64 sum; the order it picks is fixed for the compiled kernel
    @njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
    def _span_gain(row, cur):
        acc = 0.0
        for v in range(row.shape[0]):  # from 0: no negative-index check, so the loop vectorises
            acc += max(np.float64(row[v]) - np.float64(cur[v]), 0.0)
        return acc

    @njit(cache=True, nogil=True)
    def _row_gain(s, bmax, width, j, cur, cmin):
        """d(j | A), block by block; a block whose maximum does not exceed its lowest cover adds exactly 0."""
        row = s[j]
        total = 0.0
        for b in range(bmax.shape[1]):
            if bmax[j, b] > cmin[b]:
                lo = b * width
                total += _span_gain(row[lo : lo + width], cur[lo : lo + width])
        return total

    @njit(cache=True, nogil=True)
    def _clamp_max(row):
        top = np.float32(0)
        for v in range(row.shape[0]):
            x = max(row[v], np.float32(0))
            row[v] = x
            top = max(top, x)
        return top

    @njit(cache=True, parallel=True)
    def prepare_rows(block, bmax, out, width):
        """For rows of X X^T just computed, in one pass while they are in cache: clamp at 0 in place, their column
        block maxima `bmax` and `out[r] = d(r | {})`. `bmax` and `out` are the slices of these rows."""
        zero = np.zeros(block.shape[1], dtype=np.float32)
        cmin = np.zeros(bmax.shape[1], dtype=np.float32)
        for r in prange(block.shape[0]):
            for b in range(bmax.shape[1]):
                bmax[r, b] = _clamp_max(block[r, b * width : (b + 1) * width])
            out[r] = _row_gain(block, bmax, width, r, zero, cmin)

    @njit(cache=True, parallel=True)
    def _rescore_parallel(s, bmax, width, rows, cur, cmin, out):
        for i in prange(rows.shape[0]):
            out[i] = _row_gain(s, bmax, width, rows[i], cur, cmin)

    @njit(cache=True, nogil=True)
    def _rescore(s, bmax, width, rows, cur, cmin, out):
        if rows.shape[0] >= _PARALLEL_ROWS:
            _rescore_parallel(s, bmax, width, rows, cur, cmin, out)
        else:
            for i in range(rows.shape[0]):
                out[i] = _row_gain(s, bmax, width, rows[i], cur, cmin)

    # --- a binary max-heap of rows keyed by score: the larger score first, then the lower row --------------------
    @njit(cache=True, nogil=True)
    def _before(keys, rows, a, b):
        return keys[a] > keys[b] or (keys[a] == keys[b] and rows[a] < rows[b])

    @njit(cache=True, nogil=True)
    def _sift_down(keys, rows, size, pos):
        while True:
            left = 2 * pos + 1
            if left >= size:
                return
            best = left
            if left + 1 < size and _before(keys, rows, left + 1, left):
                best = left + 1
            if not _before(keys, rows, best, pos):
                return
            keys[pos], keys[best] = keys[best], keys[pos]
            rows[pos], rows[best] = rows[best], rows[pos]
            pos = best

    @njit(cache=True, nogil=True)
    def _sift_up(keys, rows, pos):
        while pos > 0:
            parent = (pos - 1) // 2
            if not _before(keys, rows, pos, parent):
                return
            keys[pos], keys[parent] = keys[parent], keys[pos]
            rows[pos], rows[parent] = rows[parent], rows[pos]
            pos = parent

    @njit(cache=True, nogil=True)
    def _pop(keys, rows, size):
        row = rows[0]
        size -= 1
        keys[0], rows[0] = keys[size], rows[size]
        _sift_down(keys, rows, size, 0)
        return row, size

    @njit(cache=True, nogil=True)
    def _push(keys, rows, size, key, row):
        keys[size], rows[size] = key, row
        _sift_up(keys, rows, size)
        return size + 1

    # --- the incremental phase ---------------------------------------------------------------------------------------
    @njit(cache=True, nogil=True)
    def _take(row, div, o, h):
        for i in range(row.shape[0]):
            div[i] -= max(min(np.float64(row[i]), h), o) - o

    @njit(cache=True, nogil=True, inline="always")
    def _terms4(r0, r1, r2, r3, i, old, new, t):
        """sum over the rows r of old/new[t:t + 4] of clamp(S[r, i], old_r, new_r) - old_r (float64 terms, exact
        differences of float32 values), summed ((t0 + t1) + (t2 + t3)): each sum is at most the gain it comes off, so
        the rounding bound of the updates holds."""
        o0, o1, o2, o3 = np.float64(old[t]), np.float64(old[t + 1]), np.float64(old[t + 2]), np.float64(old[t + 3])
        h0, h1, h2, h3 = np.float64(new[t]), np.float64(new[t + 1]), np.float64(new[t + 2]), np.float64(new[t + 3])
        t01 = (max(min(np.float64(r0[i]), h0), o0) - o0) + (max(min(np.float64(r1[i]), h1), o1) - o1)
        t23 = (max(min(np.float64(r2[i]), h2), o2) - o2) + (max(min(np.float64(r3[i]), h3), o3) - o3)
        return t01 + t23

    @njit(cache=True, nogil=True)
    def _take4(r0, r1, r2, r3, div, old, new, t):
        """`_take` of four rows at once, the rows of old/new[t:t + 4] (`_terms4`): one read and write of div for four
        updates (1.7x faster: the updates are memory-bound)."""
        for i in range(div.shape[0]):
            div[i] -= _terms4(r0, r1, r2, r3, i, old, new, t)

    @njit(cache=True, nogil=True)
    def _take_row(s, bmax, width, div, v, o, h):
        """div[i] -= clamp(S[v, i], o, h) - o along row v, skipping its blocks whose maximum is <= o (they take 0)."""
        n = div.shape[0]
        for b in range(bmax.shape[1]):
            if bmax[v, b] > o:
                lo = b * width
                hi = min(n, lo + width)
                _take(s[v, lo:hi], div[lo:hi], o, h)

    @njit(cache=True, nogil=True)
    def _take_rows4(s, bmax, width, div, rows, old, new, t):
        """`_take_row` of rows[t:t + 4]: a block that three or four of them reach is taken by `_take4` (a row whose
        block maximum is <= its old cover adds exact zeros there), the others row by row."""
        n = div.shape[0]
        v0, v1, v2, v3 = rows[t], rows[t + 1], rows[t + 2], rows[t + 3]
        o0, o1, o2, o3 = np.float64(old[t]), np.float64(old[t + 1]), np.float64(old[t + 2]), np.float64(old[t + 3])
        h0, h1, h2, h3 = np.float64(new[t]), np.float64(new[t + 1]), np.float64(new[t + 2]), np.float64(new[t + 3])
        for b in range(bmax.shape[1]):
            a0, a1, a2, a3 = bmax[v0, b] > o0, bmax[v1, b] > o1, bmax[v2, b] > o2, bmax[v3, b] > o3
            reached = int(a0) + int(a1) + int(a2) + int(a3)
            if reached == 0:
                continue
            lo = b * width
            hi = min(n, lo + width)
            if reached >= 3:
                _take4(s[v0, lo:hi], s[v1, lo:hi], s[v2, lo:hi], s[v3, lo:hi], div[lo:hi], old, new, t)
                continue
            if a0:
                _take(s[v0, lo:hi], div[lo:hi], o0, h0)
            if a1:
                _take(s[v1, lo:hi], div[lo:hi], o1, h1)
            if a2:
                _take(s[v2, lo:hi], div[lo:hi], o2, h2)
            if a3:
                _take(s[v3, lo:hi], div[lo:hi], o3, h3)

    @njit(cache=True, nogil=True)
    def _take_range(s, bmax, width, div, rows, old, new, start, stop):
        """`_take_row` of rows[start:stop], four at a time (`_take_rows4`)."""
        t = start
        while t + 4 <= stop:
            _take_rows4(s, bmax, width, div, rows, old, new, t)
            t += 4
        for r in range(t, stop):
            _take_row(s, bmax, width, div, rows[r], np.float64(old[r]), np.float64(new[r]))

    @njit(cache=True, parallel=True)
    def _subtract_parallel(s, bmax, width, div, improved, old, new, m, part):
        # each thread streams whole rows (contiguous, so prefetched) into its own partial sums, added at the end
        chunks, n = part.shape[0], div.shape[0]
        for c in prange(chunks):
            acc = part[c]
            acc[:] = 0.0
            _take_range(s, bmax, width, acc, improved, old, new, c * m // chunks, (c + 1) * m // chunks)
        for c in range(chunks):
            for i in range(n):
                div[i] += part[c, i]

    @njit(cache=True, nogil=True)
    def _subtract_lost(s, bmax, width, div, improved, old, new, m, part):
        """div[i] -= clamp(S[v, i], old_v, new_v) - old_v for every v whose cover rose (row v of S is S[:, v]);
        `part`: one row of partial sums per thread."""
        if m >= _PARALLEL_UPDATES and part.shape[0] > 1:
            _subtract_parallel(s, bmax, width, div, improved, old, new, m, part)
        else:
            _take_range(s, bmax, width, div, improved, old, new, 0, m)

    @njit(cache=True, nogil=True)
    def _cover(s, j, cur, cmin, width, improved, old, new):
        """cur = max(cur, S[j]), keeping the block minima of cur; the rows whose cover rose, with their old and new
        cover, go to improved/old/new, and their count is returned."""
        n = cur.shape[0]
        m = 0
        for b in range(cmin.shape[0]):
            lo, hi = b * width, min(n, (b + 1) * width)
            rose = False
            for v in range(lo, hi):
                x = s[j, v]
                if x > cur[v]:
                    improved[m], old[m], new[m] = v, cur[v], x
                    cur[v] = x
                    m += 1
                    rose = True
            if rose:
                low = cur[lo]
                for v in range(lo + 1, hi):
                    low = min(low, cur[v])
                cmin[b] = low
        return m

    @njit(cache=True, nogil=True)
    def _near_rows(div, w, bonus, picked, tol, near):
        """The unpicked rows whose score w * div + bonus is within `tol` of the best, increasing, in `near`; returns
        their count."""
        best, m = _NEG_INF, 0
        for r in range(div.shape[0]):  # one pass: every row within tol of the best so far, then those within tol
            if not picked[r]:  # of the best
                f = w * div[r] + bonus[r]
                if f >= best - tol:
                    best = max(best, f)
                    near[m] = r
                    m += 1
        kept = 0
        for t in range(m):
            r = near[t]
            if w * div[r] + bonus[r] >= best - tol:
                near[kept] = r
                kept += 1
        return kept

    @njit(cache=True, nogil=True)
    def _exact_argmax(s, bmax, width, cur, cmin, div, w, bonus, picked, tol, near):
        """argmax of w * div + bonus over unpicked rows while div is kept by updates: the rows within `tol` of the
        best are re-scored directly and the best of those wins (ties: lower row). Returns `(row, re-scored)`."""
        m = _near_rows(div, w, bonus, picked, tol, near)
        j, top = -1, _NEG_INF
        for t in range(m):
            r = near[t]
            div[r] = _row_gain(s, bmax, width, r, cur, cmin)
            f = w * div[r] + bonus[r]
            if f > top:  # rows come in increasing order: ties keep the lower one
                top, j = f, r
        return j, m

    @njit(cache=True, nogil=True)
    def _total(cur):
        total = 0.0
        for v in range(cur.shape[0]):
            total += np.float64(cur[v])
        return total

    @njit(cache=True, nogil=True)
    def _lazy_pick(s, bmax, width, cur, cmin, div, w, bonus, keys, rows, size, stamp, step, stale, fresh):
        """Pop the best row once its bound is exact for pick `step`: `(row, heap size, rows re-scored)`."""
        cost, batch = 0, 16
        while stamp[rows[0]] != step:
            m = 0
            while size > 0 and m < batch and stamp[rows[0]] != step:
                stale[m], size = _pop(keys, rows, size)
                m += 1
            _rescore(s, bmax, width, stale[:m], cur, cmin, fresh[:m])
            cost += m
            for t in range(m):
                r = stale[t]
                div[r], stamp[r] = fresh[t], step
                size = _push(keys, rows, size, w * fresh[t] + bonus[r], r)
            batch = min(2 * batch, stale.shape[0])
        j, size = _pop(keys, rows, size)
        return j, size, cost

    @njit(cache=True, nogil=True)
    def greedy(s, bmax, width, k, w, bonus, gains0, incremental, switch_after, first_covers, threads):
        """Exact greedy on the stored S (see the module docstring): `(picks, scores, div_gains, coverage d(A),
        evaluations, switched_at)`, `switched_at` the pick at which the incremental phase began (-1: never).
        `incremental`: exact updates once lazy greedy re-scores more than max(`switch_after`, 2 * the covers the pick
        raised) rows at a pick, or from the first pick when it raises at least `first_covers` covers (or
        `switch_after` is 0). `threads`: numba's thread count (`numba.get_num_threads()`), one row of partial sums
        each."""
        n = s.shape[0]
        cur = np.zeros(n, dtype=np.float32)
        cmin = np.zeros(bmax.shape[1], dtype=np.float32)
        div = gains0.copy()
        keys = w * div + bonus
        rows = np.arange(n)
        size = n
        for pos in range(size // 2 - 1, -1, -1):
            _sift_down(keys, rows, size, pos)
        stamp = np.zeros(n, dtype=np.int64)  # pick at which div[row] was last exact
        picked = np.zeros(n, dtype=np.bool_)
        picks = np.empty(k, dtype=np.int64)
        scores = np.empty(k, dtype=np.float64)
        div_gains = np.empty(k, dtype=np.float64)
        improved = np.empty(n, dtype=np.int64)
        old = np.empty(n, dtype=np.float32)
        new = np.empty(n, dtype=np.float32)
        stale = np.empty(min(n, 1024), dtype=np.int64)
        fresh = np.empty(n, dtype=np.float64)
        div_max = 0.0
        for r in range(n):
            div_max = max(div_max, div[r])
        part = np.empty((threads if incremental else 0, n), dtype=np.float64)
        evaluations, updates, switched_at = 0, 0, -1
        for step in range(k):
            if switched_at < 0:
                args = (s, bmax, width, cur, cmin, div, w, bonus, keys, rows, size, stamp, step, stale, fresh)
                j, size, cost = _lazy_pick(*args)
            else:  # the updates round: at most one ulp of div_max per update of a gain, twice over
                tol = w * 2.0 * (updates + n) * 2.0**-52 * div_max
                j, cost = _exact_argmax(s, bmax, width, cur, cmin, div, w, bonus, picked, tol, improved)
            picks[step], scores[step], div_gains[step] = j, w * div[j] + bonus[j], div[j]
            picked[j] = True
            m = _cover(s, j, cur, cmin, width, improved, old, new)
            if switched_at >= 0:
                _subtract_lost(s, bmax, width, div, improved, old, new, m, part)
                cost += m
                updates += m
            evaluations += cost
            if incremental and step == 0 and (m >= first_covers or switch_after == 0):
                # the first pick raised many covers, so lazy greedy would re-score most rows at once; every gain is
                # still exact here, so the updates start from this pick's, with no re-score
                _subtract_lost(s, bmax, width, div, improved, old, new, m, part)
                evaluations += m
                updates += m
                switched_at = 1
            elif incremental and switched_at < 0 and cost > max(switch_after, 2 * m):
                # exact updates from the next pick on: one full re-score of the rows left first
                m = 0
                for r in range(n):
                    if not picked[r]:
                        improved[m] = r
                        m += 1
                _rescore(s, bmax, width, improved[:m], cur, cmin, fresh[:m])
                for t in range(m):
                    div[improved[t]] = fresh[t]
                evaluations += m
                switched_at = step + 1
        return picks, scores, div_gains, _total(cur), evaluations, switched_at

    @njit(cache=True, nogil=True)
    def plain_greedy(s, bmax, width, k, w, bonus, gains0):
        """Plain greedy, every gain re-scored at every pick (`strategy="dense"`, the reference):
        `(picks, scores, div_gains, coverage d(A), evaluations)`."""
        n = s.shape[0]
        cur = np.zeros(n, dtype=np.float32)
        cmin = np.zeros(bmax.shape[1], dtype=np.float32)
        div = gains0.copy()
        picked = np.zeros(n, dtype=np.bool_)
        picks = np.empty(k, dtype=np.int64)
        scores = np.empty(k, dtype=np.float64)
        div_gains = np.empty(k, dtype=np.float64)
        improved = np.empty(n, dtype=np.int64)
        old = np.empty(n, dtype=np.float32)
        new = np.empty(n, dtype=np.float32)
        rows = np.arange(n)
        evaluations = 0
        for step in range(k):
            if step > 0:
                _rescore(s, bmax, width, rows, cur, cmin, div)
                evaluations += n
            j, top = -1, _NEG_INF
            for r in range(n):
                f = w * div[r] + bonus[r]
                if not picked[r] and f > top:
                    top, j = f, r
            picks[step], scores[step], div_gains[step] = j, top, div[j]
            picked[j] = True
            _cover(s, j, cur, cmin, width, improved, old, new)
        return picks, scores, div_gains, _total(cur), evaluations


def block_width(n: int) -> int:
    """Columns per block of the block maxima: 64 (1/16 of S in memory), fewer for tiny pools."""
    return int(min(64, max(1, n)))


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) every kernel of this module on a tiny input, so that the first
    real call is not spent compiling (`graph_kernels.warm_up` and `blocked.warm_up` do theirs). A no-op without
    numba.

    Example:
    ```py
    >>> warm_up()  # ~10 s the first time in an environment, well under a second afterwards
    ```
    """
    if not HAS_NUMBA:
        return
    x = np.eye(16, dtype=np.float32)
    bmax = np.empty((16, 2), dtype=np.float32)
    gains = np.empty(16, dtype=np.float64)
    prepare_rows(x, bmax, gains, 8)
    greedy(x, bmax, 8, 4, 1.0, np.zeros(16), gains, True, 0, 16, numba.get_num_threads())
    plain_greedy(x, bmax, 8, 2, 1.0, np.zeros(16), gains)
