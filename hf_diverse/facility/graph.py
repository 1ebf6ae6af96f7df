"""Greedy facility location on a kNN graph (`hf_diverse.facility.knn`): memory O(N m), never O(N^2).

Maximises f(j | A) = w * d(j | A) + b_j on the sparsified objective, where d only counts the graph's similarities:

- `"sparse"`: exact greedy. Gains are kept exact incrementally: when pick j raises cur[v] for its neighbours v, only
  the candidates adjacent to those v lose gain, by exactly what they lose. Same picks as plain (or lazy) greedy on the
  sparsified objective; total work ~ sum over v of (times cur[v] rose) x degree(v).
- `"stochastic"`: stochastic greedy (Mirzasoleiman et al. 2015): each step scores a uniform sample of
  ceil(N/k ln(1/epsilon)) rows (drawn with replacement from a seeded CPU generator, already-picked rows dropped)
  and takes the best. Approximate (expected (1 - 1/e - epsilon) of optimal).

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
from .knn import KnnGraph, build_knn_graph
from .objective import GreedyResult, check_score

SPARSE_STRATEGIES = ("sparse", "stochastic")


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
) -> GreedyResult:
    """Greedy maximisation of f(j|A) = diversity_weight * d(j|A) + bonus[j] on a `KnnGraph` (sparse objective).

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

    Returns:
        `GreedyResult` whose `coverage` is d(A) on the sparse objective (at most the dense d(A)).

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
    loop = _exact_greedy if strategy == "sparse" else _stochastic_greedy
    bar = tqdm(total=k, desc=f"Facility location ({strategy})", disable=not show_progress)
    with torch_threads(1 if device.type == "cpu" else None):  # k steps of small ops: extra threads only add latency
        picks, gains, div_gains, coverage, touched, details = loop(graph, k, diversity_weight, b, epsilon, seed, bar)
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


def _exact_greedy(graph: KnnGraph, k: int, w_div: float, modular: torch.Tensor, epsilon, seed, bar):
    n, device = graph.n, graph.values.device
    indptr, cols, vals = graph.indptr, graph.indices, graph.values
    cur = torch.zeros(n, dtype=torch.float32, device=device)
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    neg_inf = torch.tensor(-math.inf, dtype=torch.float64, device=device)
    div = _row_sums(graph)  # d(j | {}) for every j
    score = w_div * div + modular
    argmax = _HeapArgmax(score) if device.type == "cpu" else lambda: int(torch.argmax(score))
    picks, gains, div_gains, touched = [], [], [], graph.nnz
    for _ in range(k):
        j = argmax()
        picks.append(j)
        gains.append(float(score[j]))
        div_gains.append(float(div[j]))
        selected[j] = True
        score[j] = neg_inf
        v, old, new = _raise_cur(graph, cur, j)
        if v.numel():
            # every candidate c adjacent to a risen v loses max(0, s - old) - max(0, s - new) of gain
            seg, pos = _gather_rows(indptr, v)
            c = cols[pos].long()
            s_cv = vals[pos].double()  # float64 terms: exact differences of float32 values
            loss = (s_cv - old[seg].double()).clamp_(min=0) - (s_cv - new[seg].double()).clamp_(min=0)
            div.index_add_(0, c, -loss)
            score[c] = torch.where(selected[c], neg_inf, w_div * div[c] + modular[c])
            touched += int(pos.numel())
        bar.update(1)
    return picks, gains, div_gains, float(cur.sum(dtype=torch.float64)), touched, {}


def _stochastic_greedy(graph: KnnGraph, k: int, w_div: float, modular: torch.Tensor, epsilon, seed, bar):
    n, device = graph.n, graph.values.device
    indptr, cols, vals = graph.indptr, graph.indices, graph.values
    cur = torch.zeros(n, dtype=torch.float32, device=device)
    selected = torch.zeros(n, dtype=torch.bool, device=device)
    sample = min(n, math.ceil(n / k * math.log(1.0 / epsilon)))
    gen = torch.Generator().manual_seed(int(seed))  # CPU generator: the same draws on every device
    picks, gains, div_gains, touched = [], [], [], 0
    for _ in range(k):
        cand = torch.unique(torch.randint(0, n, (sample,), generator=gen)).to(device)  # sorted: ties to lower row
        cand = cand[~selected[cand]]
        if cand.numel() == 0:  # every draw was already picked (k close to N): draw from the rest directly
            rest = torch.nonzero(~selected).squeeze(1).cpu()
            cand = rest[torch.randperm(rest.numel(), generator=gen)[:sample]].sort().values.to(device)
        seg, pos = _gather_rows(indptr, cand)
        contrib = (vals[pos].double() - cur[cols[pos].long()].double()).clamp_(min=0)
        div_c = torch.zeros(cand.numel(), dtype=torch.float64, device=device).index_add_(0, seg, contrib)
        score_c = w_div * div_c + modular[cand]
        best = int(torch.argmax(score_c))
        j = int(cand[best])
        picks.append(j)
        gains.append(float(score_c[best]))
        div_gains.append(float(div_c[best]))
        selected[j] = True
        _raise_cur(graph, cur, j)
        touched += int(pos.numel())
        bar.update(1)
    details = {"epsilon": epsilon, "sample_size": sample}
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
    )
    res.details["greedy_s"] = round(time.perf_counter() - t0, 3)
    return res, graph
