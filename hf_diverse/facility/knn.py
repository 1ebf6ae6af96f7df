"""The kNN similarity graph: facility location at millions of rows without the N x N similarity matrix.

The dense objective d(A) = sum_v max_{a in A} max(0, sim(a, v)) needs every similarity. Here each row keeps only its
`n_neighbors` (m) most similar rows, itself included, and the graph is symmetrised: the similarity of i and j is kept
when j is among i's m nearest *or* i among j's (hf_diverse's choice; it keeps the hubs that many rows point at, and
with m = N it is the full matrix, so the result equals dense greedy). Memory is O(N m), never O(N^2).

Stages, each with a progress bar:

1. kNN: top-m of `X_block @ X.T` block by block with torch on the embeddings' device (`knn="exact"`); an inverted
   file in torch (`knn="ivf"`: spherical k-means lists, each list searched exactly against its `nprobe` nearest
   lists, approximate); or FAISS (`knn="faiss"`, IVF-flat inner product above 50k rows; the optional extra
   `hf_diverse[faiss]`). `knn="auto"`: exact up to 50k rows on CPU (2M on GPU), else `"ivf"`. On this project's
   2-core CPU the torch IVF built a 100k graph several times faster than FAISS IVF-flat at the same recall
   (benchmarks/RESULTS.md), hence the default.
2. Symmetrise into a CSR graph (indptr, indices, values); cached on disk under `cache_dir() / "knn"`, keyed by a
   content hash of the embeddings + m + kNN method, so a re-run with another k or alpha skips stages 1-2.
The greedy loops on the graph are in `hf_diverse.facility.graph`.
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import xxhash

from ..errors import InvalidParameterError, MissingDependencyError
from ..models import cache_dir as default_cache_dir
from ..utils.logging import get_logger
from ..utils.progress import tqdm
from .objective import check_embeddings

logger = get_logger(__name__)

KNN_METHODS = ("auto", "exact", "ivf", "faiss")
# `knn="auto"`: exact top-m (O(N^2 d)) up to these pool sizes, the torch IVF above
EXACT_KNN_MAX_ROWS = {"cpu": 50_000, "cuda": 2_000_000}
_GRAPH_FORMAT = 1


@dataclass
class KnnGraph:
    """Symmetrised kNN similarity graph in CSR form: row j lists the rows v it covers and max(0, sim(j, v)) > 0."""

    indptr: torch.Tensor  # (N + 1,) int64
    indices: torch.Tensor  # (nnz,) int32
    values: torch.Tensor  # (nnz,) float32, symmetric: value(i, j) == value(j, i)
    n_neighbors: int
    knn: str  # how the neighbours were found: "exact", "ivf", "faiss-flat", "faiss-ivf"
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.indptr.numel() - 1

    @property
    def nnz(self) -> int:
        return self.indices.numel()

    def to(self, device) -> "KnnGraph":
        return KnnGraph(
            self.indptr.to(device),
            self.indices.to(device),
            self.values.to(device),
            self.n_neighbors,
            self.knn,
            dict(self.info),
        )


# --------------------------------------------------------------------------------------------------------------
# kNN
# --------------------------------------------------------------------------------------------------------------
def _knn_block_rows(n: int, device: torch.device, block_size: int | None) -> int:
    """Rows per `X_block @ X.T` block: at most `block_size`, and the block of similarities within ~256 MiB on CPU
    (~2 GiB, or 1/8 of free memory, on GPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cap = min(2 * 2**30, free // 8)
    else:
        cap = 256 * 2**20
    rows = max(1, cap // (4 * max(n, 1)))
    return int(min(rows, block_size or 4096))


def _top_m(q: torch.Tensor, c: torch.Tensor, m: int, c_bf16: torch.Tensor | None = None, margin: int = 16):
    """Top-m inner products of the rows of `q` among the rows of `c`: `(values float32, indices into c)`.

    With `c_bf16` (c in bfloat16) the m + `margin` best candidates come from a bfloat16 product (relative error
    ~2^-8) and their float32 products, recomputed exactly, decide the top m and give the values."""
    if c_bf16 is None:
        top = torch.topk(q @ c.T, m, dim=1)
        return top.values.float(), top.indices
    extra = min(c.shape[0], m + margin)
    cand = torch.topk(q.to(torch.bfloat16) @ c_bf16.T, extra, dim=1).indices
    exact = torch.bmm(c[cand].float(), q.float().unsqueeze(2)).squeeze(2)
    top = torch.topk(exact, m, dim=1)
    return top.values, cand.gather(1, top.indices)


def knn_exact(
    x: torch.Tensor,
    n_neighbors: int,
    block_size: int | None = None,
    show_progress: bool = False,
    search_dtype: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-m neighbours by inner product against every row, block by block on `x.device`: `(values (N, m) float32,
    indices (N, m) int64)`, each row sorted by decreasing similarity (itself first up to ties). `search_dtype=
    "bfloat16"`: candidates from bfloat16 products, the top m decided on exact float32 ones (see `_top_m`)."""
    n = x.shape[0]
    m = min(n_neighbors, n)
    rows = _knn_block_rows(n, x.device, block_size)
    if search_dtype == "bfloat16":
        rows = min(rows, 1024)  # the refinement gathers rows x (m + 16) x d
    values = torch.empty((n, m), dtype=torch.float32, device=x.device)
    indices = torch.empty((n, m), dtype=torch.int64, device=x.device)
    x_bf16 = x.to(torch.bfloat16) if search_dtype == "bfloat16" else None
    for start in tqdm(range(0, n, rows), desc="kNN graph (exact)", disable=not show_progress, leave=False):
        top_values, top_indices = _top_m(x[start : start + rows], x, m, x_bf16)
        values[start : start + rows] = top_values
        indices[start : start + rows] = top_indices
    return values, indices


def knn_faiss(
    x: torch.Tensor,
    n_neighbors: int,
    nlist: int | None = None,
    nprobe: int = 16,
    seed: int = 0,
    show_progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Top-m neighbours with FAISS (inner product). IVF-flat with `nlist` lists (default 2 sqrt(N)) searched with
    `nprobe` probes when N > 50k, else exact flat search. GPU FAISS is used when `x` is on CUDA and it is installed.
    Returns `(values, indices, kind)` with `kind` in {"faiss-flat", "faiss-ivf"}; results are on `x.device`."""
    try:
        import faiss
    except ImportError as e:
        raise MissingDependencyError(
            "knn='faiss' needs FAISS. Install it with `pip install 'hf_diverse[faiss]'` (or faiss-gpu), "
            "or use knn='exact'."
        ) from e
    n, d = x.shape
    m = min(n_neighbors, n)
    xn = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
    if n <= 50_000:
        index, kind = faiss.IndexFlatIP(d), "faiss-flat"
    else:
        nlist = int(nlist or default_nlist(n))
        index, kind = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT), "faiss-ivf"
        index.cp.seed = seed
        index.cp.niter = 10  # the lists only need to be roughly balanced, not converged
        if x.device.type == "cuda" and hasattr(faiss, "StandardGpuResources"):
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), x.device.index or 0, index)
        sample = np.random.default_rng(seed).choice(n, min(n, 40 * nlist), replace=False)
        index.train(xn[np.sort(sample)])
        index.nprobe = nprobe
    index.add(xn)
    values = np.empty((n, m), dtype=np.float32)
    indices = np.empty((n, m), dtype=np.int64)
    step = 16384
    for start in tqdm(range(0, n, step), desc=f"kNN graph ({kind})", disable=not show_progress, leave=False):
        v, i = index.search(xn[start : start + step], m)
        values[start : start + step], indices[start : start + step] = v, i
    del index
    return torch.from_numpy(values).to(x.device), torch.from_numpy(indices).to(x.device), kind


def _nearest_centroid(x: torch.Tensor, centroids: torch.Tensor, rows: int) -> torch.Tensor:
    out = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    ct = centroids.T.to(x.dtype)
    for start in range(0, x.shape[0], rows):
        out[start : start + rows] = torch.argmax(x[start : start + rows] @ ct, dim=1)
    return out


def spherical_kmeans(x: torch.Tensor, n_clusters: int, n_iter: int = 8, seed: int = 0) -> torch.Tensor:
    """`(n_clusters, d)` float32 unit centroids of the rows of `x` (spherical k-means, random-row init, empty
    clusters re-seeded with random rows). Deterministic for a seed (CPU generator)."""
    n, d = x.shape
    gen = torch.Generator().manual_seed(int(seed))
    rows = max(1, (64 * 2**20) // (4 * n_clusters))
    centroids = x[torch.randperm(n, generator=gen)[:n_clusters].to(x.device)].float()
    for _ in range(n_iter):
        labels = _nearest_centroid(x, centroids, rows)
        sums = torch.zeros((n_clusters, d), dtype=torch.float32, device=x.device).index_add_(0, labels, x.float())
        empty = torch.bincount(labels, minlength=n_clusters) == 0
        if empty.any():
            refill = torch.randint(0, n, (int(empty.sum()),), generator=gen).to(x.device)
            sums[empty] = x[refill].float()
        centroids = torch.nn.functional.normalize(sums, dim=1)
    return centroids


def knn_ivf(
    x: torch.Tensor,
    n_neighbors: int,
    nlist: int | None = None,
    nprobe: int = 16,
    seed: int = 0,
    show_progress: bool = False,
    search_dtype: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate top-m neighbours in torch, on `x.device`: an inverted file with list-level probing.

    Rows are split into `nlist` lists by spherical k-means (trained on 20 rows per list); the rows of list c are
    searched exactly, as one matrix product, against the rows of the `nprobe` lists whose centroids are nearest to
    c's centroid (c included). Cost ~ N (nlist + nprobe N / nlist) d instead of N^2 d. Rows with fewer than m
    candidates get index -1 (dropped by `symmetrize`). Same `(values, indices)` layout as `knn_exact`, and the same
    `search_dtype`.
    """
    n, d = x.shape
    m = min(n_neighbors, n)
    nlist = int(min(n, nlist or default_nlist(n)))
    nprobe = int(min(nprobe, nlist))
    gen = torch.Generator().manual_seed(int(seed))
    sample = torch.randperm(n, generator=gen)[: min(n, 20 * nlist)].sort().values.to(x.device)
    centroids = spherical_kmeans(x[sample], nlist, seed=seed)
    labels = _nearest_centroid(x, centroids, max(1, (64 * 2**20) // (4 * nlist)))
    order = torch.argsort(labels, stable=True)
    ptr = torch.zeros(nlist + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(labels, minlength=nlist).cpu(), 0, out=ptr[1:])
    # each list probes itself first, then its nearest lists: with equal centroids (duplicate rows) the top of the
    # similarities is a tie, and a list that lost it would not search its own rows
    near = centroids @ centroids.T
    near.fill_diagonal_(math.inf)
    probes = torch.topk(near, nprobe, dim=1).indices.cpu()
    values = torch.zeros((n, m), dtype=torch.float32, device=x.device)
    indices = torch.full((n, m), -1, dtype=torch.int64, device=x.device)
    ptr_list = ptr.tolist()
    for c in tqdm(range(nlist), desc="kNN graph (ivf)", disable=not show_progress, leave=False):
        members = order[ptr_list[c] : ptr_list[c + 1]]
        if members.numel() == 0:
            continue
        cand = torch.cat([order[ptr_list[p] : ptr_list[p + 1]] for p in probes[c].tolist()])
        xc = x[cand]
        xc_bf16 = xc.to(torch.bfloat16) if search_dtype == "bfloat16" else None
        mc = min(m, cand.numel())
        rows = max(1, min(1024, (128 * 2**20) // (4 * cand.numel())))
        for start in range(0, members.numel(), rows):
            q = members[start : start + rows]
            top_values, top_indices = _top_m(x[q], xc, mc, xc_bf16)
            if mc < m:
                values[q, :mc], indices[q, :mc] = top_values, cand[top_indices]
            else:
                values.index_copy_(0, q, top_values)
                indices.index_copy_(0, q, cand[top_indices])
    return values, indices


def default_nlist(n: int) -> int:
    """Inverted-file lists for N rows (torch `knn_ivf` and FAISS): 2 sqrt(N), clamped to [64, 65536]."""
    return min(65536, max(64, 2 * math.isqrt(n)))


def symmetrize(values: torch.Tensor, indices: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CSR `(indptr, indices int32, values float32)` of the union of the kNN lists and their transpose.

    Entries with similarity <= 0 are dropped (they never add coverage), as are missing neighbours (index -1, FAISS).
    A pair present in both directions keeps the larger of its two float32 values, so the graph is exactly symmetric.
    """
    device = values.device
    m = indices.shape[1]
    rows = torch.arange(n, device=device).repeat_interleave(m)
    cols = indices.reshape(-1)
    vals = values.reshape(-1)
    keep = (vals > 0) & (cols >= 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    keys = torch.cat([rows * n + cols, cols * n + rows])
    del rows, cols, keep
    vals = torch.cat([vals, vals])
    keys, order = torch.sort(keys)
    vals = vals[order]
    del order
    dup = torch.zeros(keys.numel(), dtype=torch.bool, device=device)
    dup[1:] = keys[1:] == keys[:-1]
    at = torch.nonzero(dup).squeeze(1)  # a key occurs at most twice (once per direction)
    vals[at - 1] = torch.maximum(vals[at - 1], vals[at])
    first = ~dup
    keys, vals = keys[first], vals[first]
    del dup, first, at
    counts = torch.bincount(keys // n, minlength=n)
    indptr = torch.zeros(n + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=indptr[1:])
    return indptr, (keys % n).to(torch.int32), vals.contiguous()


def embeddings_fingerprint(x: torch.Tensor, chunk_rows: int = 65536) -> str:
    """Content hash of an embedding tensor (values, shape, dtype), read in row chunks (xxh3-128, as `datasets`)."""
    h = xxhash.xxh3_128()
    h.update(f"{tuple(x.shape)}|{x.dtype}".encode())
    for start in range(0, x.shape[0], chunk_rows):
        part = x[start : start + chunk_rows].detach().contiguous().cpu()
        if part.dtype == torch.bfloat16:
            part = part.view(torch.int16)
        h.update(memoryview(part.numpy()).cast("B"))
    return h.hexdigest()


def _graph_cache_path(
    cache_dir, fingerprint: str, n_neighbors: int, knn: str, nprobe: int, nlist, seed: int, search_dtype: str
):
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "knn"
    tag = f"{knn}-np{nprobe}-nl{nlist}-s{seed}" if knn in ("ivf", "faiss") else knn
    if knn == "ivf":  # v2: every list searches its own rows (graphs of pools with tied centroids differ)
        tag = "v2-" + tag
    if search_dtype == "bfloat16" and knn != "faiss":
        tag += "-bf16"
    return root / f"{fingerprint}-m{n_neighbors}-ip-{tag}"


def _load_graph(path, device) -> KnnGraph | None:
    try:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format") != _GRAPH_FORMAT:
            return None
        arrays = [np.load(path / f"{name}.npy") for name in ("indptr", "indices", "values")]
    except (OSError, ValueError) as e:
        logger.warning("Ignoring unreadable kNN cache %s (%s).", path, e)
        return None
    indptr, indices, values = (torch.from_numpy(a).to(device) for a in arrays)
    return KnnGraph(indptr, indices, values, meta["n_neighbors"], meta["knn"], meta.get("info", {}))


def _save_graph(graph: KnnGraph, path) -> None:
    # imported here: `hf_diverse.io` brings in `datasets`, and the engine must import without it (GPU check script)
    from ..io import atomic_directory

    try:
        with atomic_directory(path, overwrite=True) as tmp:
            np.save(tmp / "indptr.npy", graph.indptr.cpu().numpy())
            np.save(tmp / "indices.npy", graph.indices.cpu().numpy())
            np.save(tmp / "values.npy", graph.values.cpu().numpy())
            meta = {
                "format": _GRAPH_FORMAT,
                "n": graph.n,
                "nnz": graph.nnz,
                "n_neighbors": graph.n_neighbors,
                "knn": graph.knn,
                "info": graph.info,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    except OSError as e:  # a read-only cache must not fail the selection
        logger.warning("Could not write the kNN cache %s (%s).", path, e)


def resolve_knn(knn: str, n: int, device: torch.device) -> str:
    """The documented `knn="auto"` rule: `"exact"` up to 50k rows on CPU (2M on GPU), else `"ivf"` (torch, no extra
    dependency; on clustered data its neighbours match the exact ones, see tests). FAISS only when asked for."""
    if knn not in KNN_METHODS:
        raise InvalidParameterError(f"Unknown knn method {knn!r}. Valid methods: {list(KNN_METHODS)}.")
    if knn != "auto":
        return knn
    return "exact" if n <= EXACT_KNN_MAX_ROWS.get(device.type, EXACT_KNN_MAX_ROWS["cpu"]) else "ivf"


def build_knn_graph(
    x: torch.Tensor,
    n_neighbors: int = 32,
    knn: str = "auto",
    nprobe: int = 16,
    nlist: int | None = None,
    block_size: int | None = None,
    seed: int = 0,
    cache: bool = True,
    cache_dir=None,
    show_progress: bool = True,
    search_dtype: str = "auto",
) -> KnnGraph:
    """Build (or load from the cache) the symmetrised kNN similarity graph of L2-normalised embeddings.

    Args:
        x (`torch.Tensor` of shape `(N, d)`): L2-normalised rows (float32, or float16/bfloat16 on GPU).
        n_neighbors (`int`, defaults to 32): m, the neighbours each row keeps (itself included); m >= N keeps all.
        knn (`str`, defaults to `"auto"`): `"exact"`, `"ivf"`, `"faiss"` or `"auto"` (see `resolve_knn`).
        nprobe (`int`, defaults to 16): inverted-file lists searched per list (`"ivf"`) or per query (`"faiss"`).
        nlist (`int`, *optional*): inverted-file lists (default 2 sqrt(N), see `default_nlist`).
        block_size (`int`, *optional*): cap on rows per exact block (the block is also capped by memory).
        seed (`int`, defaults to 0): k-means sample and initialisation of `"ivf"` / `"faiss"`.
        cache (`bool`, defaults to `True`): read/write the graph under `cache_dir`.
        cache_dir (`str`, *optional*): defaults to `hf_diverse.models.cache_dir() / "knn"`.
        show_progress (`bool`, defaults to `True`): progress bars.
        search_dtype (`str`, defaults to `"auto"`): `"float32"`, or `"bfloat16"`: the candidate neighbours come from
            bfloat16 products (tensor cores on GPU) and the top m among m + 16 candidates are decided on exact float32
            products, which are the graph's values. `"auto"`: bfloat16 on GPU, float32 on CPU (where the refinement
            cost more than bfloat16 saved: 38 s against 23.5 s of CPU time for the 100k IVF graph, AMX CPU).

    `graph.info` records `cache` ("hit", "miss" or "off"), `fingerprint` and `build_s`.

    Example:
    ```py
    >>> x = torch.nn.functional.normalize(torch.randn(5000, 64), dim=1)
    >>> graph = build_knn_graph(x, n_neighbors=16, cache=False)
    >>> graph.n, graph.nnz >= 5000
    (5000, True)
    ```
    """
    if not isinstance(n_neighbors, (int, np.integer)) or isinstance(n_neighbors, bool) or n_neighbors < 1:
        raise InvalidParameterError(f"n_neighbors must be a positive integer, got {n_neighbors!r}.")
    check_embeddings(x)
    n = x.shape[0]
    m = int(min(n_neighbors, n))
    method = resolve_knn(knn, n, x.device)
    if search_dtype not in ("auto", "float32", "bfloat16"):
        raise InvalidParameterError(f"search_dtype must be 'auto', 'float32' or 'bfloat16', got {search_dtype!r}.")
    if search_dtype == "auto":  # on CPU the refinement costs more than bfloat16 saves (measured at 100k, AMX CPU)
        search_dtype = "bfloat16" if x.device.type == "cuda" else "float32"
    path = None
    if cache:
        fingerprint = embeddings_fingerprint(x)
        path = _graph_cache_path(cache_dir, fingerprint, m, method, nprobe, nlist, seed, search_dtype)
        if (path / "meta.json").exists():
            t0 = time.perf_counter()
            graph = _load_graph(path, x.device)
            if graph is not None and graph.n == n:
                graph.info.pop("build_s", None)  # the build time of an earlier run
                graph.info.update(cache="hit", cache_path=str(path), load_s=round(time.perf_counter() - t0, 3))
                logger.info("kNN graph loaded from %s", path)
                return graph
    t0 = time.perf_counter()
    if method == "exact":
        values, indices = knn_exact(x, m, block_size, show_progress, search_dtype)
        kind = "exact"
    elif method == "ivf":
        values, indices = knn_ivf(
            x, m, nlist=nlist, nprobe=nprobe, seed=seed, show_progress=show_progress, search_dtype=search_dtype
        )
        kind = "ivf"
    else:
        values, indices, kind = knn_faiss(x, m, nlist=nlist, nprobe=nprobe, seed=seed, show_progress=show_progress)
    indptr, cols, vals = symmetrize(values, indices, n)
    del values, indices
    info = {"build_s": round(time.perf_counter() - t0, 3), "cache": "miss" if cache else "off"}
    if method != "faiss":
        info["search_dtype"] = search_dtype
    if kind in ("ivf", "faiss-ivf"):
        info.update(nprobe=nprobe, nlist=nlist or default_nlist(n))
    graph = KnnGraph(indptr, cols, vals, m, kind, info)
    if cache:
        graph.info.update(fingerprint=fingerprint, cache_path=str(path))
        _save_graph(graph, path)
    return graph
