"""Greedy facility location on a kNN graph (`hf_diverse.facility.knn`): memory O(N m), never O(N^2).

Maximises f(j | A) = w * d(j | A) + b_j where a candidate's gain only counts its graph neighbours:
d(j | A) ~ sum_{v in N(j)} max(0, S[j, v] - cur[v]).

**Dense cover** (`embeddings=` given, as `knn_greedy` and QDIT do): the cover cur[v] = max_{a in A} max(0, sim(a, v))
is kept on the full similarity rows of the picks, computed `cover_batch` picks at a time (one `(B, d) x (d, N)`
product, k N d flops in all, no N x N matrix; B = k / 64 within [1, 64]; screened with bfloat16 products where those
are fast, which leaves the float32 cover unchanged: `hf_diverse.facility.cover`), with the graph's own values on the
graph's pairs, which are applied at each pick; the rest of a pick's cover lags by at most B - 1 picks. Without it the
cover only counts graph pairs, so a point covered by a similar pick that is not among its m nearest looks uncovered and
later gains are inflated: with alpha > 0 that mis-weighs diversity against quality (clustered data, N = 20k, m = 32,
alpha 0.3 / 0.7: 0.982 of exact greedy's quality-diversity objective for `sparse` and 0.959 for `stochastic` with the
graph-only cover; >= 0.99 with the dense one, benchmarks/RESULTS.md). The result's `coverage` is then the exact dense
d(A), so no separate pass measures it. Gains still ignore similarities outside the graph (lower bounds of the dense
gains).

- `"sparse"`: greedy. Gains are kept exact incrementally: when a pick raises cur[v], only the candidates adjacent to
  v lose gain, by exactly what they lose. With the graph-only cover: the same picks as plain (or lazy) greedy on the
  sparsified objective; total work ~ sum over v of (times cur[v] rose) x degree(v). On CPU with numba the per-pick
  work (heap argmax, cover on the graph's pairs, gain updates) runs compiled (`graph_kernels.graph_picks`), with the
  same picks as the torch loop, which runs on GPU and without numba.
- `"stochastic"`: stochastic greedy (Mirzasoleiman et al. 2015): each step scores a uniform sample of
  ceil(N/k ln(1/epsilon)) rows (drawn with replacement from a seeded CPU generator, already-picked rows dropped)
  and takes the best. hf_diverse adds to each sample as many rows of highest stale score (upper bounds, by
  submodularity), so rows of high bonus are not left to chance; the best of a superset of the sample keeps the
  guarantee (expected (1 - 1/e - epsilon) of optimal). Approximate.

Ties go to the lower row index, as in the stored-matrix strategies.
"""

import heapq
import math
import os
import time

import numpy as np
import torch

from ..errors import InvalidParameterError
from ..utils.progress import tqdm
from . import graph_kernels, kernels
from .cover import Cover
from .knn import KnnGraph, build_knn_graph
from .objective import GreedyResult, check_score

SPARSE_STRATEGIES = ("sparse", "stochastic")
_product_threads = None  # torch threads outside the greedy loop (it runs on one CPU thread)


def _gather_rows(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For CSR rows `rows`: `(seg, pos)` with `pos` the entry positions of all those rows, concatenated, and `seg`
    the position in `rows` each entry belongs to."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    seg = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), lens)
    offsets = torch.cumsum(lens, 0) - lens
    pos = torch.arange(seg.numel(), device=rows.device) + (starts - offsets)[seg]
    return seg, pos


def _row_sums(graph: KnnGraph, chunk_entries: int = 1 << 22) -> torch.Tensor:
    """sum_v value(j, v) per row j in float64 (d(j | {})), over contiguous row ranges of ~`chunk_entries`."""
    n, device = graph.n, graph.values.device
    out = torch.zeros(n, dtype=torch.float64, device=device)
    degrees = graph.indptr[1:] - graph.indptr[:-1]
    indptr_cpu = graph.indptr.cpu().numpy()
    start = 0
    while start < n:
        stop = int(np.searchsorted(indptr_cpu, indptr_cpu[start] + chunk_entries, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        seg = torch.repeat_interleave(torch.arange(stop - start, device=device), degrees[start:stop])
        vals = graph.values[indptr_cpu[start] : indptr_cpu[stop]].to(torch.float64)
        out[start:stop].index_add_(0, seg, vals)
        start = stop
    return out


def sparse_facility_location_greedy(
    graph: KnnGraph,
    k: int,
    bonus: np.ndarray | torch.Tensor | None = None,
    diversity_weight: float = 1.0,
    strategy: str = "sparse",
    epsilon: float = 0.01,
    seed: int = 0,
    show_progress: bool = True,
    embeddings: torch.Tensor | None = None,
    cover_batch: int | None = None,
) -> GreedyResult:
    """Greedy maximisation of f(j|A) = diversity_weight * d(j|A) + bonus[j] on a `KnnGraph`.

    Args:
        graph (`KnnGraph`): from `build_knn_graph`; the work runs on its device.
        k (`int`): number of picks.
        bonus (array of shape `(N,)`, *optional*): a fixed per-row term added to the score.
        diversity_weight (`float`, defaults to 1.0): weight of the marginal coverage.
        strategy (`str`, defaults to `"sparse"`): `"sparse"` (exact greedy on the graph) or `"stochastic"`
            (stochastic greedy, approximate).
        epsilon (`float`, defaults to 0.01): stochastic greedy's epsilon; sample size ceil(N/k ln(1/epsilon)).
        seed (`int`, defaults to 0): stochastic greedy's sampling seed (CPU generator: same picks on any device).
        show_progress (`bool`, defaults to `True`): progress bar over the k picks.
        embeddings (`torch.Tensor` of shape `(N, d)`, *optional*): the graph's L2-normalised rows, on its device:
            the cover is then kept on the dense similarities (see the module docstring). Without them it only counts
            the graph's pairs.
        cover_batch (`int`, *optional*): with `embeddings`, the dense rows of this many picks are computed
            together (one `(B, d) x (d, N)` product); the graph's pairs are applied at once, the rest of the cover
            after each batch. Defaults to k / 64, between 1 and 64 (a lag of at most 1/64 of the picks; measured:
            a lag of 1/4 of k cost up to 0.01 of the objective at alpha > 0).

    Returns:
        `GreedyResult` whose `coverage` is d(A): the exact dense one with `embeddings`, else on the graph's pairs
        (at most the dense d(A)); `details["cover"]` says which.

    Example:
    ```py
    >>> graph = build_knn_graph(torch.nn.functional.normalize(torch.randn(5000, 64), dim=1), 16, cache=False)
    >>> sparse_facility_location_greedy(graph, k=50).indices.shape
    (50,)
    ```
    """
    if strategy not in SPARSE_STRATEGIES:
        raise InvalidParameterError(f"Unknown sparse strategy {strategy!r}. Valid: {list(SPARSE_STRATEGIES)}.")
    n, device = graph.n, graph.values.device
    b = check_score(n, k, bonus, diversity_weight, device)
    if not 0.0 < epsilon < 1.0:
        raise InvalidParameterError(f"epsilon must be in (0, 1), got {epsilon}.")
    if cover_batch is None:
        cover_batch = min(64, max(1, k // 64))
    loop = _exact_greedy if strategy == "sparse" else _stochastic_greedy
    bar = tqdm(total=k, desc=f"Facility location ({strategy})", disable=not show_progress)
    global _product_threads
    _product_threads = torch.get_num_threads()  # the dense cover's products run on all of them
    with torch_threads(1 if device.type == "cpu" else None):  # k steps of small ops: extra threads only add latency
        out = loop(graph, k, diversity_weight, b, epsilon, seed, bar, embeddings, cover_batch)
    picks, gains, div_gains, coverage, touched, details = out
    details["cover"] = "dense" if embeddings is not None else "graph"
    if embeddings is not None:
        details["cover_batch"] = cover_batch
    bar.close()
    return GreedyResult(
        indices=np.asarray(picks, dtype=np.int64),
        gains=np.asarray(gains),
        diversity_gains=np.asarray(div_gains),
        coverage=coverage,
        strategy=strategy,
        evaluations=touched,
        details=details,
    )


class torch_threads:
    """Context manager setting `torch.set_num_threads(n)` for its body (`None`: unchanged)."""

    def __init__(self, n: int | None):
        self.n, self.saved = n, None

    def __enter__(self):
        if self.n is not None:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.saved is not None:
            torch.set_num_threads(self.saved)


class _HeapArgmax:
    """argmax of a CPU score vector whose entries only decrease, via a heap of stale snapshots: the top snapshot is
    re-read and re-pushed until it is current. Same answer as `torch.argmax` (ties: lowest index), without an O(N)
    scan per step. The winner leaves the heap."""

    def __init__(self, score: torch.Tensor):
        self.score = score.numpy()  # shares memory with the tensor, so later updates are seen
        self.heap = list(zip((-self.score).tolist(), range(len(self.score)), strict=True))
        heapq.heapify(self.heap)

    def __call__(self) -> int:
        heap, score = self.heap, self.score
        while True:
            neg, j = heap[0]
            now = float(score[j])
            if now == -neg:
                heapq.heappop(heap)
                return j
            heapq.heapreplace(heap, (-now, j))


def _raise_cur(graph: KnnGraph, cur: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cur[v] = max(cur[v], value(j, v)) over row j; returns the rows v that rose, with their old and new cur."""
    lo, hi = int(graph.indptr[j]), int(graph.indptr[j + 1])
    v = graph.indices[lo:hi].long()
    s = graph.values[lo:hi]
    old = cur[v]
    up = s > old
    v, old, new = v[up], old[up], s[up]
    cur[v] = new
    return v, old, new


def _raise_cur_dense(graph: KnnGraph, cover: Cover, pending: list[int]):
    """cur = max(cur, max(0, x_j . X^T)) for the picks `pending` (one product for all, see `Cover`), with the graph's
    own values on the graph's pairs so both agree; returns the rows v that rose, with their old and new cur."""
    fixed = []
    for j in pending:
        lo, hi = int(graph.indptr[j]), int(graph.indptr[j + 1])
        fixed.append((graph.indices[lo:hi].long(), graph.values[lo:hi]))
    with torch_threads(_product_threads if cover.x.device.type == "cpu" else None):
        return cover.raise_(torch.as_tensor(pending, device=cover.x.device), fixed)


def _new_cover(x: torch.Tensor | None, cur: torch.Tensor) -> Cover | None:
    return None if x is None else Cover(x, cur=cur)


def _exact_greedy(graph: KnnGraph, k: int, w_div: float, modular: torch.Tensor, epsilon, seed, bar, x, cover_batch):
    n, device = graph.n, graph.values.device
    if device.type == "cpu" and kernels.HAS_NUMBA:
        return _exact_greedy_numba(graph, k, w_div, modular, bar, x, cover_batch)
    cur = torch.zeros(n, dtype=torch.float32, device=device)
    cover = _new_cover(x, cur)
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    div = _row_sums(graph)  # d(j | {}) for every j
    score = w_div * div + modular
    argmax = _HeapArgmax(score) if device.type == "cpu" else lambda: int(torch.argmax(score))
    picks, gains, div_gains, touched, pending = [], [], [], graph.nnz, []
    for step in range(k):
        j = argmax()
        picks.append(j)
        gains.append(float(score[j]))
        div_gains.append(float(div[j]))
        selected[j] = True
        score[j] = -math.inf
        v, old, new = _raise_cur(graph, cur, j)
        touched += _lose_gain(graph, v, old, new, div, score, selected, w_div, modular)
        if cover is not None:
            pending.append(j)
            if len(pending) == cover_batch or step == k - 1:
                v, old, new = _raise_cur_dense(graph, cover, pending)
                touched += _lose_gain(graph, v, old, new, div, score, selected, w_div, modular)
                pending = []
        bar.update(1)
    return picks, gains, div_gains, float(cur.sum(dtype=torch.float64)), touched, _cover_info(cover)


def _exact_greedy_numba(graph: KnnGraph, k: int, w_div: float, modular: torch.Tensor, bar, x, cover_batch):
    """`_exact_greedy` with its per-pick work in compiled code (`graph_kernels.graph_picks`): the same picks, ties
    included; the dense cover's products stay in torch, `cover_batch` picks at a time."""
    n = graph.n
    indptr, indices, values = graph.indptr.numpy(), graph.indices.numpy(), graph.values.numpy()
    cur = torch.zeros(n, dtype=torch.float32)
    cover = _new_cover(x, cur)
    picked = np.zeros(n, dtype=np.bool_)
    div = _row_sums(graph).numpy()
    bonus = np.ascontiguousarray(modular.numpy(), dtype=np.float64)
    score = w_div * div + bonus
    keys, rows = graph_kernels.graph_heap(score)
    size, touched = n, graph.nnz
    out = np.empty((k, 3), dtype=np.float64)
    batch = cover_batch if cover is not None else 256
    state = (indptr, indices, values, cur.numpy(), div, score, picked, w_div, bonus)
    for start in range(0, k, batch):
        count = min(batch, k - start)
        size, read = graph_kernels.graph_picks(*state, keys, rows, size, count, out, start)
        touched += read
        if cover is not None:
            v, old, new = _raise_cur_dense(graph, cover, out[start : start + count, 0].astype(np.int64).tolist())
            rose = (v.numpy(), old.numpy(), new.numpy())
            touched += graph_kernels.graph_lose_many(indptr, indices, values, *rose, *state[4:])
        bar.update(count)
    picks, coverage = out[:, 0].astype(np.int64).tolist(), float(cur.sum(dtype=torch.float64))
    return picks, out[:, 1].tolist(), out[:, 2].tolist(), coverage, touched, _cover_info(cover)


def _cover_info(cover: Cover | None) -> dict:
    return {} if cover is None else cover.info()


def _lose_gain(graph, v, old, new, div, score, selected, w_div, modular, chunk_entries: int = 1 << 22) -> int:
    """Every candidate c adjacent to a risen v loses max(0, s - old_v) - max(0, s - new_v) of gain (in chunks of
    rows of ~`chunk_entries` graph entries: with the dense cover an early pick raises most rows)."""
    if not v.numel():
        return 0
    indptr, cols, vals = graph.indptr, graph.indices, graph.values
    ends = torch.cumsum(indptr[v + 1] - indptr[v], 0).cpu().numpy()
    touched, start = 0, 0
    while start < v.numel():
        before = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, before + chunk_entries, side="right")))
        seg, pos = _gather_rows(indptr, v[start:stop])
        c = cols[pos].long()
        s_cv = vals[pos].double()  # float64 terms: exact differences of float32 values
        o, h = old[start:stop].double()[seg], new[start:stop].double()[seg]
        div.index_add_(0, c, (s_cv - h).clamp_(min=0) - (s_cv - o).clamp_(min=0))
        score[c] = torch.where(selected[c], -math.inf, w_div * div[c] + modular[c])
        touched += int(pos.numel())
        start = stop
    return touched


def _stochastic_greedy(
    graph: KnnGraph, k: int, w_div: float, modular: torch.Tensor, epsilon, seed, bar, x, cover_batch
):
    n, device = graph.n, graph.values.device
    indptr, cols, vals = graph.indptr, graph.indices, graph.values
    cur = torch.zeros(n, dtype=torch.float32, device=device)
    cover = _new_cover(x, cur)
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    sample = min(n, math.ceil(n / k * math.log(1.0 / epsilon)))
    gen = torch.Generator().manual_seed(int(seed))  # CPU generator: the same draws on every device
    # stale scores are upper bounds (submodularity): the rows with the highest join each random sample, so rows of
    # high bonus are not left to chance; the pick is still the best exact score of a superset of the sample
    bound = w_div * _row_sums(graph) + modular
    picks, gains, div_gains, touched, pending = [], [], [], 0, []
    for step in range(k):
        drawn = torch.randint(0, n, (sample,), generator=gen).to(device)
        top = torch.topk(bound, min(sample, n - step)).indices
        cand = torch.unique(torch.cat([drawn, top]))  # sorted: ties to the lower row
        cand = cand[~selected[cand]]
        seg, pos = _gather_rows(indptr, cand)
        contrib = (vals[pos].double() - cur[cols[pos].long()].double()).clamp_(min=0)
        div_c = torch.zeros(cand.numel(), dtype=torch.float64, device=device).index_add_(0, seg, contrib)
        score_c = w_div * div_c + modular[cand]
        bound[cand] = score_c
        best = int(torch.argmax(score_c))
        j = int(cand[best])
        picks.append(j)
        gains.append(float(score_c[best]))
        div_gains.append(float(div_c[best]))
        selected[j] = True
        bound[j] = -math.inf
        _raise_cur(graph, cur, j)
        if cover is not None:
            pending.append(j)
            if len(pending) == cover_batch or step == k - 1:
                _raise_cur_dense(graph, cover, pending)
                pending = []
        touched += int(pos.numel())
        bar.update(1)
    details = {"epsilon": epsilon, "sample_size": sample, **_cover_info(cover)}
    return picks, gains, div_gains, float(cur.sum(dtype=torch.float64)), touched, details


def knn_greedy(
    x: torch.Tensor,
    k: int,
    bonus: np.ndarray | torch.Tensor | None = None,
    diversity_weight: float = 1.0,
    strategy: str = "sparse",
    n_neighbors: int = 32,
    knn: str = "auto",
    nprobe: int = 16,
    epsilon: float = 0.01,
    seed: int = 0,
    block_size: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = True,
    dense_cover: bool = True,
) -> tuple[GreedyResult, KnnGraph]:
    """kNN graph (cached) then greedy on it: `build_knn_graph` + `sparse_facility_location_greedy`.

    Args:
        x (`torch.Tensor` of shape `(N, d)`): L2-normalised embeddings; the work runs on their device.
        k (`int`): number of picks.
        bonus, diversity_weight: the score, see `sparse_facility_location_greedy`.
        strategy (`str`, defaults to `"sparse"`): `"sparse"` or `"stochastic"`.
        n_neighbors, knn, nprobe, block_size, cache, cache_dir: see `build_knn_graph`.
        epsilon, seed: see `sparse_facility_location_greedy` (seed also seeds the kNN index training).
        show_progress (`bool`, defaults to `True`): progress bars per stage.
        dense_cover (`bool`, defaults to `True`): keep the cover on the dense similarities of the picks (see the
            module docstring; the result's `coverage` is then the exact dense d(A)); `False`: on the graph's pairs
            only (then gains after a pick not among a row's neighbours are overestimated).

    Example:
    ```py
    >>> x = torch.nn.functional.normalize(torch.randn(5000, 64), dim=1)
    >>> res, graph = knn_greedy(x, k=50, n_neighbors=16, cache=False)
    >>> res.indices.shape, graph.n
    ((50,), 5000)
    ```
    """
    graph = build_knn_graph(
        x,
        n_neighbors,
        knn=knn,
        nprobe=nprobe,
        block_size=block_size,
        seed=seed,
        cache=cache,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )
    t0 = time.perf_counter()
    res = sparse_facility_location_greedy(
        graph,
        k,
        bonus=bonus,
        diversity_weight=diversity_weight,
        strategy=strategy,
        epsilon=epsilon,
        seed=seed,
        show_progress=show_progress,
        embeddings=x if dense_cover else None,
    )
    res.details["greedy_s"] = round(time.perf_counter() - t0, 3)
    return res, graph
