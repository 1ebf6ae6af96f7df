"""The pass of the compiled blocked mode (`hf_diverse.facility.blocked`): one pass of products X[rows] X^T, a block
of rows at a time, that keeps of each row v its largest similarities (`TopLists`), a bound tau_v on the ones it
did not keep, and d(v | {}); and guesses of the first picks with what each would take from every gain.

- **Kept similarities.** At most `top` per row (`top_per_row`: what `memory_budget` allows at 8 bytes each), whole
  value bins from the highest down (`BINS` of width 1/1024 from 0), so that an update can stop at the first bin below
  a cover.
- **The first pick, guessed.** The first pick raises the cover of nearly every point from 0, so its update would
  recompute most rows of S (0.55-0.9 N rows at N = 20k, the most of any pick). The pass guesses it instead. Before
  it, the `GUESS_SHORTLIST` rows of highest w * x_j . sum_v x_v + b_j (the linear part of d(j | {}) =
  x_j . sum_v x_v + sum_v max(0, -S[v, j]), which does not depend on the order of the rows) get their exact d(j | {})
  from one product of their columns, and the best of them by w * d(j | {}) + b_j is the candidate. Those exact
  gains are summed in another order than the pass sums d(j | {}), so rows within a rounding margin of the best
  (`GUESS_TIE`) are candidates too, at most `GUESS_CANDIDATES`: one, unless the best is an exact or near tie. The
  pass sums, for each, what its pick would take from every gain (`PickGuess`). If the first pick is one of them, its
  update is that sum and recomputes no row; if not, it runs as if there had been no guess. The log and the result's
  details say which.
- **The next picks, guessed** the same way, up to pick `GUESS_PICKS`, each assuming the picks before it are the
  first candidates of their guesses, p_1 ... p_{t-1}: the max(`GUESS_SHORTLIST`, N / `GUESS_SHARE`) rows of
  highest w * (x_j . sum_v x_v - sum_{s<t} S[j, p_s] * sum_v (c_s(v) - c_{s-1}(v))) + b_j, with
  c_s(v) = max(0, S[v, p_1], ..., S[v, p_s]) the cover after s picks (each pick's raise of the cover, charged to the
  rows in proportion to their similarity to it), get their exact d(j | {p_1 ... p_{t-1}}), and the pass sums the
  candidates' updates (chosen as above) for the rows still under their threshold. A guess counts only when the
  picks before it are the ones it assumed. The estimate ranks the true pick within its shortlist for some picks and
  not others (RESULTS.md, "eighth pass"), and the first miss ends the chain: the log and the details say how far it
  went.

Every product is at least `MIN_PRODUCT_ROWS` x `MIN_PRODUCT_ROWS` (`padded`), so each similarity has its X X^T
value to the last bit (see `hf_diverse.facility.blocked`).
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..utils.progress import tqdm
from . import kernels
from .memory import page_buffer

MIN_PRODUCT_ROWS = 16  # smaller products either way are padded: they round differently (`hf_diverse.facility.blocked`)
TOP_BYTES_PER_ENTRY = 8  # a kept similarity: float32 value and int32 column
TOP_MIN = 16  # kept similarities per row whatever the budget
BINS = 1024  # the coarse value order of the kept entries: bins of width 1/1024 from 0, the top one open above
SAMPLE_SPAN, SAMPLE_STEP = 16, 16  # the first guess of a row's threshold: 16 similarities of every 256
# the first pick's guess: the GUESS_SHORTLIST rows of highest w * x_j . sum_v x_v + b_j get their exact d(j | {}) (a
# product of that many columns), and the best of them by the objective is the candidate, with the rows within
# GUESS_TIE * w * (the shortlist's largest d) of it, at most GUESS_CANDIDATES. The true first pick ranked 0-35 under
# w * x_j . sum_v x_v + b_j on the pools of RESULTS.md ("fifth pass"), and first of the shortlist on all of them (a
# pick on the shortlist is its best, up to rounding); each candidate's losses cost ~1/20 of the pass's product.
# GUESS_TIE: the shortlist's gains and the greedy's differ by rounding only (float64 sums of the same float64 terms in
# other orders), far below 2^-20 of the largest gain
GUESS_SHORTLIST, GUESS_CANDIDATES, GUESS_TIE = 256, 3, 2.0**-20
# picks guessed in all (the first included), and the shortlist of each after the first: at least 1/GUESS_SHARE of the
# rows. Each of picks 3-10 recomputes 0.05-0.3 N rows unguessed (N = 100k), against a shortlist product of N/64 columns
# (1/64 of the pass's product) and the losses' sums per guess. Ranks of the true picks under the estimate: RESULTS.md,
# "eighth pass"
GUESS_PICKS, GUESS_SHARE = 8, 64
BUILD_BLOCK_BYTES = 64 * 2**20  # rows of X X^T per block of the build pass: ~64 MiB


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
        guesses (`list` of `PickGuess`): `guesses[t]`, the candidates for pick t + 1 and their losses, assuming the
            picks before it are the first candidates of the guesses before it (see the module docstring); empty when
            the pass did not guess. The greedy sets an entry to None once it is used.
    """

    values: np.ndarray
    columns: np.ndarray
    count: np.ndarray
    tau: np.ndarray
    gains: np.ndarray
    guesses: "list[PickGuess | None]"


@dataclass
class PickGuess:
    """Candidates for a pick, given the picks before it, and what each would take from every gain.

    Args:
        candidates (`np.ndarray` of int64): rows guessed for the pick.
        losses (`np.ndarray` of shape `(len(candidates), N)`, float64): `losses[c, i]` = sum over the rows v with
            tau_v > cover_v of clamp(S[v, i], cover_v, S[v, candidates[c]]) - cover_v, the update of gain i by pick
            `candidates[c]` (the other rows are updated from their kept entries).
        after (`np.ndarray` of int64): the picks before it that it assumes, in order (empty for the first pick).
        cover (`np.ndarray` of float32, *optional*): the cover before the pick, max(0, S[v, a]) over the rows a of
            `after`; None for the first pick (0).
    """

    candidates: np.ndarray
    losses: np.ndarray
    after: np.ndarray
    cover: np.ndarray | None = None


def build_top_lists(
    x: torch.Tensor, top: int, show_progress: bool = False, w: float = 1.0, bonus: np.ndarray | None = None
) -> TopLists:
    """One pass of products over row blocks of X X^T: the `top` largest similarities of every row (whole value bins:
    fewer where a bin does not fit), the thresholds and the initial gains; and the first pick's guess (for the
    objective w * d(j | A) + bonus_j) with its losses.

    Example:
    ```py
    >>> x = torch.nn.functional.normalize(torch.randn(500, 16), dim=1)
    >>> lists = build_top_lists(x, top=50)
    >>> bool((lists.count <= 50).all()), lists.values.shape
    (True, (500, 50))
    ```
    """
    n = x.shape[0]
    values, _ = page_buffer((n, top), np.float32)
    columns, _ = page_buffer((n, top), np.int32)
    count = np.empty(n, dtype=np.int64)
    tau = np.empty(n, dtype=np.float32)
    gains = np.empty(n, dtype=np.float64)
    rows = max(MIN_PRODUCT_ROWS, min(n, BUILD_BLOCK_BYTES // (4 * n)))
    block = torch.empty((rows, n), dtype=torch.float32)
    parts = 4 * kernels.numba.get_num_threads()
    bonus = np.zeros(n) if bonus is None else bonus
    guesses = []
    if GUESS_CANDIDATES and GUESS_PICKS:
        xd = x.double()
        estimate = (xd @ xd.sum(0)).numpy()  # x_j . sum_v x_v
        guesses.append(_first_pick_guess(x, w, bonus, estimate))
        cover = torch.zeros(n, dtype=torch.float32)
        while len(guesses) < min(GUESS_PICKS, n):
            assumed = np.array([g.candidates[0] for g in guesses], dtype=np.int64)
            raised = torch.maximum(cover, _column(x, int(assumed[-1])))  # the column, clamped at 0 by the max
            estimate = estimate - (xd @ xd[assumed[-1]]).numpy() * (raised - cover).double().sum().item()
            cover = raised
            guesses.append(_later_pick_guess(x, w, bonus, estimate, assumed, cover))
        del xd
    zero = np.zeros(n, dtype=np.float32)
    for start in tqdm(range(0, n, rows), desc="Similarities", disable=not show_progress, leave=False):
        stop = min(n, start + rows)
        if stop - start >= MIN_PRODUCT_ROWS:
            out = block[: stop - start]
            torch.matmul(x[start:stop], x.T, out=out)
        else:  # the last block, padded
            out = block[:MIN_PRODUCT_ROWS]
            torch.matmul(x[padded(torch.arange(start, stop))], x.T, out=out)
        sl = slice(start, stop)
        sims = out[: stop - start].numpy()
        _select_rows(sims, values[sl], columns[sl], count[sl], tau[sl], gains[sl], parts)
        for g in guesses:
            before = zero[sl] if g.cover is None else g.cover[sl]
            _pick_losses(sims, tau[sl], before, g.candidates, g.losses, parts)
    return TopLists(values, columns, count, tau, gains, guesses)


def _first_pick_guess(x, w, bonus, linear) -> PickGuess:
    """The best rows by w * d(j | {}) + bonus_j (`_best_of_shortlist`; ties: the lower row) among the `GUESS_SHORTLIST`
    of highest w * x_j . sum_v x_v + bonus_j, with zeroed losses. Since d(j | {}) = x_j . sum_v x_v +
    sum_v max(0, -S[v, j]), the linear part ranks the first pick near the top but not always at it; the shortlist's
    d(j | {}) are exact (a product of its columns)."""
    return _best_of_shortlist(x, w, bonus, w * linear + bonus, GUESS_SHORTLIST, None, np.empty(0, dtype=np.int64))


def _later_pick_guess(x, w, bonus, estimate, assumed, cover) -> PickGuess:
    """The next pick's candidates, assuming the picks so far are `assumed` (cover: `cover`, float32): the best by
    w * d(j | assumed) + bonus_j among the max(`GUESS_SHORTLIST`, N / `GUESS_SHARE`) of highest
    w * estimate_j + bonus_j (`estimate`: the module docstring's, in float64)."""
    score = w * estimate + bonus
    score[assumed] = -np.inf
    size = max(GUESS_SHORTLIST, x.shape[0] // GUESS_SHARE)
    return _best_of_shortlist(x, w, bonus, score, size, cover, assumed)


def _column(x, j):
    """S[:, j] with the values of X X^T (a padded product)."""
    return (x @ x[padded(torch.tensor([j]))].T)[:, 0].contiguous()


def _best_of_shortlist(x, w, bonus, estimate, size, cover, after) -> PickGuess:
    """The best row by w * d(j | A) + bonus_j (ties: the lower row) among the `size` of highest `estimate`, and the
    rows within `GUESS_TIE` * w * max d of it, at most `GUESS_CANDIDATES` in all; d(j | A) = sum_v max(0, S[v, j] -
    cover_v) computed from a product of their columns, exact up to rounding."""
    n = x.shape[0]
    shortlist = np.argsort(-estimate, kind="stable")[: min(size, n - len(after))]
    cols = x[torch.from_numpy(padded(shortlist))]
    exact = np.zeros(cols.shape[0], dtype=np.float64)
    before = np.zeros(n, dtype=np.float32) if cover is None else cover.numpy()
    step = max(MIN_PRODUCT_ROWS, BUILD_BLOCK_BYTES // (4 * cols.shape[0]))
    for start in range(0, n, step):
        stop = min(n, start + step)
        part = (cols @ x[padded(torch.arange(start, stop))].T)[:, : stop - start]  # padded: the values of X X^T
        _add_gains(part.numpy(), before[start:stop], exact)
    gains = exact[: len(shortlist)]
    score = w * gains + bonus[shortlist]
    order = np.lexsort((shortlist, -score))[:GUESS_CANDIDATES]
    near = score[order] >= score[order[0]] - GUESS_TIE * w * gains.max()  # the best, and rows it may not beat
    candidates = shortlist[order[near]].astype(np.int64)
    losses = np.zeros((len(candidates), n), dtype=np.float64)
    return PickGuess(candidates, losses, after, None if cover is None else cover.numpy())


def padded(rows):
    """`rows` (numpy or torch) with its first entry repeated up to `MIN_PRODUCT_ROWS` entries (the extra rows of the
    product are ignored)."""
    m = rows.shape[0]
    if m >= MIN_PRODUCT_ROWS:
        return rows
    if isinstance(rows, torch.Tensor):
        return torch.cat([rows, rows[:1].expand(MIN_PRODUCT_ROWS - m)])
    return np.concatenate([rows, np.full(MIN_PRODUCT_ROWS - m, rows[0], dtype=rows.dtype)])


if kernels.HAS_NUMBA:
    from numba import njit, prange
    from numba.cpython.unsafe.numbers import trailing_zeros

    _span_gain = kernels._span_gain

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
        m = c0 = 0
        while c0 + 64 <= n:  # gather the entries >= limit, 64 at a time: a bit mask of them (the compares vectorise),
            bits = np.uint64(0)  # then one step per set bit (3x faster than a branch-free copy of every entry)
            for j in range(64):
                bits |= np.uint64(row[c0 + j] >= limit) << np.uint64(j)
            while bits:
                j = trailing_zeros(bits)
                buf_v[m], buf_c[m] = row[c0 + j], c0 + j
                m += 1
                bits &= bits - np.uint64(1)
            c0 += 64
        for c in range(c0, n):  # the last < 64, branch-free
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

    @njit(cache=True, parallel=True, fastmath={"reassoc", "nsz"})
    def _add_gains(part, cover, out):
        """out[j] += sum_v max(0, part[j, v] - cover[v]) in float64, in any order (the shortlist's gains: rows within
        `GUESS_TIE` of the best are candidates too)."""
        for j in prange(part.shape[0]):
            acc = 0.0
            for v in range(part.shape[1]):
                acc += max(np.float64(part[j, v]) - np.float64(cover[v]), 0.0)
            out[j] += acc

    @njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
    def _positive_sum(row):
        """sum_i max(0, row[i]) in float64, in any order (reassoc lets the loop vectorise): the greedy's rounding
        bound allows for the initial gains' rounding in any order, and every pick decides on gains summed as
        `kernels._row_gain` sums them (`blocked._direct_gain`)."""
        acc = 0.0
        for i in range(row.shape[0]):
            acc += max(np.float64(row[i]), 0.0)
        return acc

    @njit(cache=True, parallel=True)
    def _select_rows(block, values, columns, count, tau, gains, parts):
        """For each row of a block of X X^T (the rows of the other arguments' slices): `_select_row`, and
        d(row | {}) (`_positive_sum`)."""
        rows, top = block.shape[0], values.shape[1]
        n = block.shape[1]
        for p in prange(parts):
            buf_v = np.empty(n + 1, dtype=np.float32)
            buf_c = np.empty(n + 1, dtype=np.int32)
            hist = np.empty(BINS, dtype=np.int64)
            for r in range(p * rows // parts, (p + 1) * rows // parts):
                row = block[r]
                count[r], tau[r] = _select_row(row, top, values[r], columns[r], buf_v, buf_c, hist)
                gains[r] = _positive_sum(row)

    @njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
    def _add_loss(row, o, h, loss):
        for i in range(row.shape[0]):  # each loss[i] in row order; reassoc only lets the loop vectorise
            loss[i] += max(min(np.float64(row[i]), h), o) - o

    @njit(cache=True, nogil=True)
    def _add_loss4(r0, r1, r2, r3, loss, old, new, t):
        for i in range(loss.shape[0]):  # four rows per pass over `loss`, as `kernels._take4` takes them
            loss[i] += kernels._terms4(r0, r1, r2, r3, i, old, new, t)

    @njit(cache=True, parallel=True)
    def _pick_losses(block, tau, cover, candidates, losses, parts):
        """losses[c, i] += clamp(S[v, i], cover_v, S[v, candidates[c]]) - cover_v over the rows v of a block of X X^T
        with tau_v > cover_v and S[v, candidates[c]] > cover_v (the update of gain i by that pick, as `_take` does
        it), four rows at a time, each of `parts` tasks over its own range of columns."""
        rows, n = block.shape
        for p in prange(parts):
            lo, hi = p * n // parts, (p + 1) * n // parts
            sel = np.empty(rows, dtype=np.int64)
            old = np.empty(rows, dtype=np.float32)
            new = np.empty(rows, dtype=np.float32)
            for c in range(candidates.shape[0]):
                m = 0
                for r in range(rows):  # the rows whose cover the pick raises, under their threshold
                    o, h = cover[r], block[r, candidates[c]]
                    if tau[r] > o and h > o:
                        sel[m], old[m], new[m] = r, o, h
                        m += 1
                loss = losses[c, lo:hi]
                t = 0
                while t + 4 <= m:
                    rows4 = (
                        block[sel[t], lo:hi],
                        block[sel[t + 1], lo:hi],
                        block[sel[t + 2], lo:hi],
                        block[sel[t + 3], lo:hi],
                    )
                    _add_loss4(*rows4, loss, old, new, t)
                    t += 4
                for u in range(t, m):
                    _add_loss(block[sel[u], lo:hi], np.float64(old[u]), np.float64(new[u]), loss)
