"""Compiled CPU kernels (numba) of greedy facility location on the kNN graph (`hf_diverse.facility.graph`, strategy
`"sparse"`): the heap argmax over stale score snapshots, the cover on the graph's pairs and the gain updates of the
rows adjacent to the points whose cover rose. Gains are float64, their terms exact differences of float32 values.
The heap is `hf_diverse.facility.kernels`'s (the larger score first, then the lower row). Without numba,
`kernels.HAS_NUMBA` is False and `hf_diverse.facility.graph` runs its torch loop.
"""

import numpy as np

from . import kernels

if kernels.HAS_NUMBA:
    from numba import njit

    _sift_down, _pop, _NEG_INF = kernels._sift_down, kernels._pop, kernels._NEG_INF

    @njit(cache=True, nogil=True)
    def _graph_lose(indptr, indices, values, v, o, h, div, score, picked, w, bonus):
        """Every candidate c adjacent to v loses max(0, s - o) - max(0, s - h) of gain when cur[v] rises from o to h
        (float64 terms: exact differences of float32 values); returns the entries read."""
        lo, hi = indptr[v], indptr[v + 1]
        for e in range(lo, hi):
            c = indices[e]
            s = np.float64(values[e])
            div[c] += max(s - h, 0.0) - max(s - o, 0.0)
            if not picked[c]:
                score[c] = w * div[c] + bonus[c]
        return hi - lo

    @njit(cache=True, nogil=True)
    def graph_lose_many(indptr, indices, values, rose, old, new, div, score, picked, w, bonus):
        """`_graph_lose` for each row of `rose` (cover old -> new): the dense cover's update; returns entries read."""
        touched = 0
        for t in range(rose.shape[0]):
            o, h = np.float64(old[t]), np.float64(new[t])
            touched += _graph_lose(indptr, indices, values, rose[t], o, h, div, score, picked, w, bonus)
        return touched

    @njit(cache=True, nogil=True)
    def graph_heap(score):
        """A max-heap of (stale score, row) snapshots over all rows: `(keys, rows)`, the larger score first, then the
        lower row."""
        n = score.shape[0]
        keys = score.copy()
        rows = np.arange(n)
        for pos in range(n // 2 - 1, -1, -1):
            _sift_down(keys, rows, n, pos)
        return keys, rows

    @njit(cache=True, nogil=True)
    def graph_picks(indptr, indices, values, cur, div, score, picked, w, bonus, keys, rows, size, count, out, start):
        """`count` greedy picks on the graph, written to `out[start:]` as (row, score, d(row | A)) in columns 0-2.

        The argmax pops the heap of stale snapshots: scores only decrease, so a top whose snapshot equals its score is
        the best row (ties: lower row) and the others are re-keyed and sifted down. Each pick raises cur on its graph
        row and takes what it covers from the gains of the rows adjacent to those it raised. Returns
        `(heap size, entries read)`."""
        touched = 0
        for t in range(count):
            while True:
                j = rows[0]
                if score[j] == keys[0]:
                    j, size = _pop(keys, rows, size)
                    break
                keys[0] = score[j]
                _sift_down(keys, rows, size, 0)
            out[start + t, 0], out[start + t, 1], out[start + t, 2] = j, score[j], div[j]
            picked[j] = True
            score[j] = _NEG_INF
            for e in range(indptr[j], indptr[j + 1]):
                v = indices[e]
                s = values[e]
                if s > cur[v]:
                    o = np.float64(cur[v])
                    cur[v] = s
                    touched += _graph_lose(indptr, indices, values, v, o, np.float64(s), div, score, picked, w, bonus)
        return size, touched


def warm_up() -> None:
    """Compile (or load from numba's cache) the graph kernels on a tiny graph; a no-op without numba.

    Example:
    ```py
    >>> warm_up()  # a few seconds the first time in an environment, well under a second afterwards
    ```
    """
    if not kernels.HAS_NUMBA:
        return
    indptr, indices = np.arange(17, dtype=np.int64), np.arange(16, dtype=np.int32)
    values, cur, picked = np.ones(16, dtype=np.float32), np.zeros(16, dtype=np.float32), np.zeros(16, dtype=np.bool_)
    div = np.ones(16)
    score = div.copy()
    keys, rows = graph_heap(score)
    args = (indptr, indices, values, cur, div, score, picked, 1.0, np.zeros(16))
    graph_picks(*args, keys, rows, 16, 2, np.empty((2, 3)), 0)
    graph_lose_many(indptr, indices, values, np.arange(2), cur[:2], cur[:2] + 1, *args[4:])
