"""Blocked exact greedy: the N x N similarity matrix is never stored.

Two implementations of `strategy="blocked"`, with the picks of the stored strategies:

- **Compiled, on CPU** (`blocked_greedy`, numba). One pass of products X[rows] X^T, a block of rows at a time
  (`hf_diverse.facility.toplists`), keeps of each row v its largest similarities, at most `top` of them (`TopLists`:
  float32 values and their columns, 8 bytes an entry), a bound tau_v on the values it did not keep, and d(v | {}),
  and guesses the first picks (below). Then greedy keeps every gain exact by updates, as the `"incremental"`
  strategy does: when a pick raises the cover of v from old_v to new_v, candidate i loses
  clamp(S[v, i], old_v, new_v) - old_v.
  - **Updates.** If old_v >= tau_v, a similarity of row v that was not kept is <= old_v and takes nothing, so the
    update reads the kept entries of row v only (in coarse value order: it stops at the first bin below old_v's).
    Rows still under their threshold (all of them at the start, few after some dozens of picks on clustered data)
    are recomputed, `X[rows] X^T`, in tiles of rows and columns, each taken off the gains of its columns while in
    cache.
  - **Columns.** A pick needs column j of S (its cover) and the near-ties need theirs (their direct re-score); by
    symmetry that is row j, whose kept entries give every value that can matter for the points v with
    cur_v >= tau_j. The others (the set W: cur_v below the largest tau of the candidates at hand) come from one
    product `X[W] X[candidates]^T`.
  The updated gains carry rounding of their own, so every pick re-scores directly the candidates within a rounding
  bound of the best and decides on those numbers, summed as `kernels._row_gain` sums a row of the stored S.
  - **The first picks, guessed.** The first raises the cover of nearly every point from 0, so its update would
    recompute most rows of S (0.55-0.9 N rows at N = 20k, the most of any pick), and the next few recompute 0.1-0.3
    N each. The pass picks their candidates beforehand (each the best of a shortlist by exact gains, with its near
    ties if any, assuming the picks before it are the guessed ones) and sums what each would take from every gain.
    When a pick is a candidate and the picks before it are the ones its guess assumed, its update is that sum and
    recomputes no row (`hf_diverse.facility.toplists`, up to `GUESS_PICKS` picks). The log and the result's details
    say which were.
- **torch** (GPU, or without numba): lazy greedy asks for the similarity rows it re-scores (`similarity_rows`), and
  they are recomputed from the embeddings, `max(0, X[rows] X^T)`. Memory O(N d + B N); ~12 N rows re-scored (33x
  one X X^T at N = 20k, k = 2k on 2 CPU cores, where the compiled loop takes 2.1-2.9x: `benchmarks/RESULTS.md`).

**Same values.** A product smaller than `MIN_PRODUCT_ROWS` either way is padded to that size: small products take
other summation paths in the BLAS and round differently in the last bit, while in the BLAS torch ships for x86 CPUs
products of at least 16 x 16 gave every entry the float32 value it has in X X^T
(`tests/facility/test_blocked.py` checks it on the machine that runs the tests). So the similarities are those of
the stored matrix, and the picks, the gains and the tie-breaking are the stored strategies'.
"""

import math
import time

import numpy as np
import torch

from ..utils.logging import get_logger
from ..utils.progress import tqdm
from . import kernels
from .objective import GreedyResult
from .toplists import MIN_PRODUCT_ROWS, TopLists, build_top_lists, padded

logger = get_logger(__name__)

# rows recomputed in the greedy: products of up to UPDATE_ROWS rows by UPDATE_TILE columns (8 MiB), each taken off
# the gains of its columns while in cache. Fewer rows per product make it memory-bound (every product reads all of
# X: N = 100k, 68 s per N rows at 20 rows, 24 s at 167); at N = 100k, 1024 x 2048 tiles took 21.1-22.5 s per N rows
# against 24.7-25.8 s for whole rows 160 at a time (RESULTS.md, "eighth pass")
UPDATE_ROWS, UPDATE_TILE = 1024, 2048
# what the compiled pick loop hands back to Python for
_DONE, _NEED_COLUMNS, _NEED_ROWS = 0, 1, 2


def similarity_rows(x: torch.Tensor):
    """A row provider for the torch greedy loops: `rows -> max(0, X[rows] X^T)` (float32, on `x.device`); fewer than
    `MIN_PRODUCT_ROWS` rows are computed padded, so each row has the values of the full product."""

    def rows_of(rows: torch.Tensor) -> torch.Tensor:
        m = rows.numel()
        return (x[padded(rows)] @ x.T)[:m].clamp_(min=0)

    return rows_of


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
    bonus = b.cpu().numpy().astype(np.float64)
    lists = build_top_lists(x, top, show_progress, w, bonus)
    t1 = time.perf_counter()
    loop = _Loop(x, k, w, bonus, lists)
    bar = tqdm(total=k, desc="Facility location (blocked)", disable=not show_progress, leave=False)
    while loop.step < k:
        before = loop.step
        loop.run()
        bar.update(loop.step - before)
    bar.close()
    guessed = loop.guessed
    details = {
        "backend": "numba",
        "similarity_s": round(t1 - t0, 3),
        "greedy_s": round(time.perf_counter() - t1, 3),
        "blocked_top": int(top),
        "blocked_recomputed_rows": int(loop.recomputed),
        "blocked_column_products": int(loop.column_products),
        "blocked_first_pick_guessed": guessed[0] if guessed else None,
        "blocked_second_pick_guessed": guessed[1] if len(guessed) > 1 else None,
        "blocked_picks_guessed": guessed,
    }
    said = {None: "was not guessed", True: "was guessed", False: "was not among the guesses"}
    logger.info(
        "blocked greedy: kept up to %d similarities per row; recomputed %d similarity rows (%.2f N); %d picks "
        "needed a column product; the first pick %s, the second %s; %d of the first %d picks were guessed",
        top,
        loop.recomputed,
        loop.recomputed / n,
        loop.column_products,
        said[details["blocked_first_pick_guessed"]],
        said[details["blocked_second_pick_guessed"]],
        sum(guessed),
        len(guessed),
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
        self.chunk = max(MIN_PRODUCT_ROWS, min(n, UPDATE_ROWS))
        starts = list(range(0, n, UPDATE_TILE))
        if len(starts) > 1 and n - starts[-1] < MIN_PRODUCT_ROWS:  # no product narrower than MIN_PRODUCT_ROWS
            starts.pop()
        self.tiles = list(zip(starts, starts[1:] + [n], strict=True))
        self.rows_buf = torch.empty(self.chunk * max(b - a for a, b in self.tiles), dtype=torch.float32)
        self.parts = 4 * kernels.numba.get_num_threads()
        self.recomputed = self.column_products = 0
        # per guessed pick: whether its update came from its guess (a candidate, after the picks the guess assumed)
        self.guessed = [False] * len(lists.guesses)

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
            cols = (self.x[torch.from_numpy(padded(w_rows))] @ self.x[torch.from_numpy(padded(near))].T).numpy()
            dense = _pick(*self._args(), near, w_rows, cols, self.in_w, self.counters, *self._outputs())
        step = self.step
        guess = self.lists.guesses[step - 1] if 0 < step <= len(self.lists.guesses) else None
        if guess is not None and dense:
            hit = np.nonzero(guess.candidates == self.picks[step - 1])[0]
            if hit.size and np.array_equal(self.picks[: step - 1], guess.after):
                self.guessed[step - 1] = True  # its losses are the update of every row the pick sent here
                self.div -= guess.losses[hit[0]]
                dense = 0
            self.lists.guesses[step - 1] = None  # its losses are no longer needed
        for c0 in range(0, dense, self.chunk):  # covered rows under their threshold: recomputed, a tile at a time
            c1 = min(dense, c0 + self.chunk)
            xr = self.x[torch.from_numpy(padded(self.rows[c0:c1]))]
            for a, b in self.tiles:
                out = self.rows_buf[: xr.shape[0] * (b - a)].view(xr.shape[0], b - a)
                torch.matmul(xr, self.x[a:b].T, out=out)
                _take_rows(out.numpy(), self.old[c0:c1], self.new[c0:c1], self.div[a:b], self.parts)
        self.recomputed += dense


if kernels.HAS_NUMBA:
    from numba import njit, prange

    from .toplists import _bin, _blocks_gain

    _near_rows = kernels._near_rows
    _NEG_INF = -math.inf

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
        n, m = div.shape[0], old.shape[0]
        for p in prange(parts):
            lo, hi = p * n // parts, (p + 1) * n // parts
            part = div[lo:hi]
            r = 0
            while r + 4 <= m:  # four rows per pass over the part (`kernels._take4`); on slices: the loop vectorises
                rows = block[r, lo:hi], block[r + 1, lo:hi], block[r + 2, lo:hi], block[r + 3, lo:hi]
                kernels._take4(*rows, part, old, new, r)
                r += 4
            for t in range(r, m):
                kernels._take(block[t, lo:hi], part, np.float64(old[t]), np.float64(new[t]))
