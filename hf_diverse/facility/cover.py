"""The cover of a set of picks, cur[v] = max_{a in A} max(0, sim(a, v)) for every row v, without an N x N matrix.

Raising the cover by a batch of B picks is one `(N, d) x (d, B)` product: k N d flops over a run of k picks, the
largest cost of the kNN-graph strategies at a million rows (and of measuring d(A) once). On CPUs with bfloat16
matrix units (AMX or AVX512-BF16, `torch.cpu._is_amx_tile_supported()`), where a bfloat16 product runs ~4x faster
than a float32 one, each batch is first **screened** with a bfloat16 product: a row v whose largest screened
similarity is below cur[v] - `SCREEN_MARGIN` cannot be raised by the batch and is skipped; the float32 products of
the rows left decide. The cover is therefore the float32 one, not an approximation (the screen only skips rows it
proves unchanged).

`SCREEN_MARGIN` bounds |bf16 product - fp32 product| for unit vectors: rounding both inputs to bfloat16 moves each
term x_i y_i by at most (2 * 2^-9 + 2^-18) |x_i y_i|, so the dot product by at most ~2^-8 ||x|| ||y||; accumulation in
float32 adds at most d 2^-24 (~2.3e-5 at d = 384) and rounding the output to bfloat16 at most 2^-9. Together
< 0.0062; the margin is 2^-7 = 0.0078, times the largest squared row norm where that is above 1 (rows off unit
length: the bound scales with ||x|| ||y||). When most rows are left by the screen (the first batches, while the
cover is low), the next batch skips it and runs the float32 product directly.
"""

import torch

SCREEN_MARGIN = 2.0**-7
COVER_BATCH = 64  # picks per product when measuring d(A) of a whole set
SCREEN_MIN_ROWS = 65_536  # below this the float32 product is fast enough that screening does not pay
_FULL_PRODUCT_ABOVE = 0.5  # share of rows left by the screen above which the next batch skips screening


def row_norms(x: torch.Tensor) -> torch.Tensor:
    """L2 norms of the rows of `x`, summed in float32 (float64 for float64 rows: torch will not narrow them).

    Example:
    ```py
    >>> row_norms(torch.tensor([[3.0, 4.0]], dtype=torch.bfloat16)).tolist()
    [5.0]
    ```
    """
    return torch.linalg.vector_norm(x, dim=1, dtype=torch.promote_types(x.dtype, torch.float32))


def bf16_matmul_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 products run on matrix units here (CPU with AMX or AVX512-BF16).

    Example:
    ```py
    >>> bf16_matmul_is_fast(torch.device("cuda"))  # only CPUs are screened
    False
    ```
    """
    if device.type != "cpu":
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return bool(amx or avx512_bf16)


class Cover:
    """cur[v] = max_{a in A} max(0, sim(a, v)) for the rows of `x`, raised a batch of picks at a time.

    Args:
        x (`torch.Tensor` of shape `(N, d)`): L2-normalised rows; similarities are float32 products of them.
        cur (`torch.Tensor` of shape `(N,)`, *optional*): float32 cover to raise in place (defaults to zeros).
        screen (`bool`, *optional*): screen each batch with a bfloat16 product (see the module docstring). Defaults
            to `True` on CPUs with fast bfloat16 products from `SCREEN_MIN_ROWS` rows.

    Example:
    ```py
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> cover = Cover(x)
    >>> _ = cover.raise_(torch.tensor([0]))
    >>> cover.cur.tolist()
    [1.0, 0.0, 0.6000000238418579]
    ```
    """

    def __init__(self, x: torch.Tensor, cur: torch.Tensor | None = None, screen: bool | None = None):
        n = x.shape[0]
        self.x = x
        self.cur = torch.zeros(n, dtype=torch.float32, device=x.device) if cur is None else cur
        if screen is None:
            screen = n >= SCREEN_MIN_ROWS and bf16_matmul_is_fast(x.device)
        self.x_screen = (x if x.dtype == torch.bfloat16 else x.to(torch.bfloat16)) if screen else None
        self.margin = SCREEN_MARGIN
        if screen:  # the error bound scales with ||x_v|| ||x_p||
            top_norm = float(row_norms(x).max())
            self.margin = SCREEN_MARGIN * max(1.0, top_norm**2)
        self.left = 1.0  # share of rows the last screen left (1.0: the first batch runs the full product)
        self.stats = {"batches": 0, "screened": 0, "rows_left": 0}

    def raise_(self, picks: torch.Tensor, fixed: list | None = None):
        """cur = max(cur, max(0, x_picks . x_v)) for every row v; returns `(v, old, new)`, the rows that rose with
        their cover before and after.

        `fixed` (one `(rows, values)` pair per pick, or `None`): similarities to use instead of the computed ones on
        those pairs, which the caller has already raised cur to (the kNN graph's own values, applied at each pick):
        a product that rounds differently then does not raise cur by an ulp."""
        x, cur = self.x, self.cur
        self.stats["batches"] += 1
        screen = self.x_screen is not None and self.left <= _FULL_PRODUCT_ABOVE
        rows = self._screen(picks) if screen else None
        if rows is None:
            sims = (x @ x[picks].T).float()  # X @ x_p^T (tall and skinny): the fast orientation on CPU BLAS
            if self.x_screen is not None:
                self.left = self._share_left(sims)
        elif rows.numel() == 0:  # the screen proved every row unchanged
            return rows, cur[rows], cur[rows]
        else:
            sims = x[rows].float() @ x[picks].float().T
        if fixed is not None:
            for b, (v, values) in enumerate(fixed):
                if rows is None:
                    sims[v, b] = values
                    continue
                pos = torch.searchsorted(rows, v).clamp_(max=rows.numel() - 1)
                hit = rows[pos] == v
                sims[pos[hit], b] = values[hit]
        best = sims.amax(dim=1)  # cur >= 0, so max(cur, best) is max(cur, max(0, best))
        del sims
        here = cur if rows is None else cur[rows]
        up = torch.nonzero(best > here).squeeze(1)
        v = up if rows is None else rows[up]
        old, new = cur[v], best[up]
        cur[v] = new
        return v, old, new

    def _screen(self, picks: torch.Tensor) -> torch.Tensor | None:
        """The rows (sorted) a bfloat16 product of the batch cannot prove unchanged, or `None` when that is more than
        `_FULL_PRODUCT_ABOVE` of them (the float32 product of every row is then cheaper)."""
        self.stats["screened"] += 1
        top = (self.x_screen @ self.x_screen[picks].T).amax(dim=1).float()
        rows = torch.nonzero(top + self.margin > self.cur).squeeze(1)
        self.left = rows.numel() / self.cur.numel()
        self.stats["rows_left"] += rows.numel()
        return rows if self.left <= _FULL_PRODUCT_ABOVE else None

    def _share_left(self, sims: torch.Tensor) -> float:
        """Share of rows a screen would have left for this batch, from its float32 similarities (upper bound)."""
        return float((sims.amax(dim=1) + self.margin > self.cur).float().mean())

    def total(self) -> float:
        """d(A) = sum_v cur[v], in float64."""
        return float(self.cur.sum(dtype=torch.float64))

    def info(self) -> dict:
        """How the cover was computed, for the provenance."""
        return {
            "cover_screen": "bfloat16" if self.x_screen is not None else None,
            "cover_batches": self.stats["batches"],
            "cover_batches_screened": self.stats["screened"],
        }
