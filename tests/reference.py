"""Reference computations written straight off the definitions, with numpy only (no `datasets`): the GPU check
imports them on a machine that has torch and numba but nothing else of the suite's dependencies."""

import numpy as np


def plain_greedy_on(s: np.ndarray, k: int, w: float, bonus: np.ndarray) -> tuple[list[int], float]:
    """Plain greedy on f(j | A) = w sum_v max(0, s[j, v] - cur[v]) + bonus[j] over a float64 matrix `s`, read off the
    definition (cur[v] = max over the picks of s[a, v]; ties to the lower row, as `np.argmax`): `(picks, d(A))`."""
    cur, picks = np.zeros(len(s)), []
    for _ in range(k):
        f = w * np.maximum(s - cur, 0.0).sum(axis=1) + bonus
        f[picks] = -np.inf
        j = int(np.argmax(f))
        picks.append(j)
        cur = np.maximum(cur, s[j])
    return picks, float(cur.sum())
