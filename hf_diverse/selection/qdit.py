"""`method="qdit"`: quality-diversity greedy facility location (QDIT, METHODS.md §1)."""

import numpy as np

from ..errors import InsufficientMemoryError, InvalidParameterError
from ..utils.logging import get_logger
from .base import SelectionContext, SelectionResult, minmax
from .facility import facility_location_greedy

logger = get_logger(__name__)

# strategies beyond the exact ones of `facility.STRATEGIES`: kNN graph (sparse.py) and GreeDi (distributed.py)
EXTRA_STRATEGIES = ("sparse", "stochastic", "greedi")
_DTYPES = ("float32", "float16", "bfloat16")
_STORES_MATRIX = ("dense", "lazy", "incremental")  # exact strategies that hold the N x N matrix
SCALING = "f(j|A) = (1 - alpha) * d(j|A) / N + alpha * q~(j) / k, q~ = min-max rescaled quality over the pool"


def quality_diversity_objective(coverage: float, n: int, q_scaled: np.ndarray | None, indices, alpha: float) -> dict:
    """Objective values reported for any selection: d(A), d(A)/N, mean quality and the Q-D score."""
    out = {"facility_location": coverage, "coverage": coverage / n}
    if q_scaled is not None:
        mean_q = float(np.mean(q_scaled[np.asarray(indices)]))
        out["quality_scaled_mean"] = mean_q
        out["qd_score"] = (1 - alpha) * coverage / n + alpha * mean_q
    return out


def select_qdit(
    ctx: SelectionContext,
    alpha: float = 0.7,
    strategy: str = "auto",
    block_size: int = 2048,
    memory_budget: int | None = None,
    n_neighbors: int = 32,
    knn: str = "auto",
    nprobe: int = 16,
    epsilon: float = 0.01,
    embedding_dtype: str = "float32",
    knn_cache: bool = True,
) -> SelectionResult:
    """QDIT greedy. `alpha` (paper default 0.7) weighs quality against facility-location diversity; without a
    quality column alpha is forced to 0 (pure diversity) with a logged notice.

    Args:
        strategy (`str`, defaults to `"auto"`): an exact strategy of `facility.STRATEGIES` (`"dense"`, `"lazy"`,
            `"incremental"`, `"blocked"`) or one of `EXTRA_STRATEGIES` for large pools: `"sparse"` (exact greedy on
            the symmetrised kNN graph, memory O(N m)) and `"stochastic"` (stochastic greedy on it, approximate), see
            `hf_diverse.selection.sparse`; `"greedi"` (GreeDi over `torch.distributed` ranks, see
            `hf_diverse.selection.distributed`). `"auto"`: the exact stored-matrix strategy of
            `facility.choose_strategy` when the N x N float32 matrix fits in `memory_budget` (default half the free
            memory of the device), else `"sparse"`.
        block_size (`int`, defaults to 2048): rows per similarity block.
        memory_budget (`int`, *optional*): bytes allowed for the N x N matrix.
        n_neighbors (`int`, defaults to 32): m, neighbours kept per row by the sparse strategies.
        knn (`str`, defaults to `"auto"`): kNN search, `"exact"`, `"ivf"`, `"faiss"` or `"auto"`.
        nprobe (`int`, defaults to 16): lists probed by `knn="ivf"` / `"faiss"`.
        epsilon (`float`, defaults to 0.01): stochastic greedy's epsilon.
        embedding_dtype (`str`, defaults to `"float32"`): `"float16"` / `"bfloat16"` halve the memory of the
            embeddings on GPU for the kNN graph and GreeDi; exact strategies compute in float32.
        knn_cache (`bool`, defaults to `True`): cache the kNN graph under `hf_diverse.models.cache_dir() / "knn"`.
    """
    import time

    import torch

    from .facility import STRATEGIES, choose_strategy, facility_location_objective

    valid = (*STRATEGIES, *EXTRA_STRATEGIES)
    if strategy not in valid:
        raise InvalidParameterError(f"Unknown strategy {strategy!r}. Valid strategies: {list(valid)}.")
    if embedding_dtype not in _DTYPES:
        raise InvalidParameterError(f"Unknown embedding_dtype {embedding_dtype!r}. Valid: {list(_DTYPES)}.")
    dtype = getattr(torch, embedding_dtype)
    q = ctx.quality()
    alpha_effective = alpha
    if q is None and alpha > 0:
        logger.warning(
            "No `quality_column` given: QDIT runs with alpha=0 (diversity only) instead of alpha=%s.", alpha
        )
        alpha_effective = 0.0
    q_scaled = minmax(q) if q is not None else None
    details = {"alpha_effective": alpha_effective, "scaling": SCALING}
    sparse_kwargs = dict(n_neighbors=n_neighbors, knn=knn, nprobe=nprobe)
    if strategy == "greedi":
        return _select_greedi(
            ctx,
            q,
            q_scaled,
            alpha_effective,
            dtype,
            details,
            block_size=block_size,
            memory_budget=memory_budget,
            knn_cache=knn_cache,
            **sparse_kwargs,
        )
    if strategy in _STORES_MATRIX:
        check_dense_fits(strategy, ctx.n, ctx.device, memory_budget)  # before reading or allocating anything
    if strategy == "auto":
        strategy = choose_strategy(ctx.n, ctx.device, memory_budget, fallback="sparse")
    if strategy in ("sparse", "stochastic"):
        from .sparse import sparse_qdit

        x = ctx.embeddings(dtype)
        res, graph = sparse_qdit(
            x,
            ctx.k,
            quality=q_scaled,
            alpha=alpha_effective,
            strategy=strategy,
            epsilon=epsilon,
            seed=ctx.seed,
            cache=knn_cache,
            show_progress=ctx.show_progress,
            **sparse_kwargs,
        )
        t0 = time.perf_counter()
        coverage = facility_location_objective(x, res.indices)  # the dense objective, measured exactly in blocks
        details["objective_s"] = round(time.perf_counter() - t0, 3)
        details.update(
            strategy=strategy,
            exact=False,
            gain_evaluations=res.evaluations,
            n_neighbors=graph.n_neighbors,
            knn=graph.knn,
            graph_nnz=graph.nnz,
            knn_cache=graph.info.get("cache"),
            embedding_dtype=embedding_dtype,
            objective_sparse=res.graph_coverage,
            approximation="stochastic greedy (Mirzasoleiman et al. 2015) on the kNN-sparsified objective"
            if strategy == "stochastic"
            else "exact greedy on the kNN-sparsified objective",
            **{k: v for k, v in graph.info.items() if k in ("build_s", "load_s", "nprobe", "nlist")},
            **res.details,
        )
    else:
        res = facility_location_greedy(
            ctx.embeddings(),
            ctx.k,
            quality=q_scaled,
            alpha=alpha_effective,
            strategy=strategy,
            block_size=block_size,
            memory_budget=memory_budget,
            show_progress=ctx.show_progress,
        )
        coverage = res.coverage
        details.update(strategy=res.strategy, gain_evaluations=res.evaluations, exact=True)
    return _result(ctx, res.indices, res.gains, coverage, q, q_scaled, alpha_effective, details)


def _result(ctx, indices, gains, coverage, q, q_scaled, alpha, details) -> SelectionResult:
    objective = quality_diversity_objective(coverage, ctx.n, q_scaled, indices, alpha)
    if q is not None:
        objective["quality_mean"] = float(np.mean(q[indices]))
    return SelectionResult(indices=indices, gains=gains, objective=objective, details=details)


def check_dense_fits(strategy: str, n: int, device, memory_budget: int | None = None) -> None:
    """Raise `InsufficientMemoryError` naming strategy='sparse' when the N x N float32 matrix of `strategy` (one
    that stores it: "dense", "lazy", "incremental") does not fit `memory_budget` (default: the device's free
    memory)."""
    from ..utils.device import available_memory_bytes
    from .facility import dense_matrix_bytes

    budget = memory_budget if memory_budget is not None else available_memory_bytes(device)
    need = dense_matrix_bytes(n)
    if need > budget:
        raise InsufficientMemoryError(
            f"strategy={strategy!r} needs a {n}x{n} float32 similarity matrix ({need / 2**30:.1f} GiB) but only "
            f"{budget / 2**30:.1f} GiB are available on {device}. Use strategy='sparse' (kNN graph, memory O(N m)) "
            "or strategy='blocked' (exact, recomputes similarity rows; slow at this size)."
        )


def _select_greedi(ctx, q, q_scaled, alpha, dtype, details, **kwargs) -> SelectionResult:
    from ..embeddings import read_embeddings_chunked
    from .distributed import dist_info, greedi, rank_device, shard_rows

    rank, world = dist_info()
    if world == 1:
        logger.warning("strategy='greedi' without an initialised torch.distributed process group: one rank only.")
    rows = shard_rows(ctx.n, rank, world, ctx.seed)
    device = rank_device(ctx.device)
    x = read_embeddings_chunked(
        ctx.dataset,
        ctx.embedding_column,
        device=device,
        dtype=dtype,
        rows=rows,
        show_progress=ctx.show_progress and rank == 0,
    )
    res = greedi(
        x,
        ctx.k,
        quality=None if q_scaled is None else q_scaled[rows],
        alpha=alpha,
        seed=ctx.seed,
        rows=rows,
        n_total=ctx.n,
        show_progress=ctx.show_progress,
        **kwargs,
    )
    details.update(
        strategy="greedi",
        exact=False,
        world_size=res.world_size,
        candidates=res.candidates,
        local_strategy=res.local_strategy,
        embedding_dtype=str(dtype).replace("torch.", ""),
        approximation="GreeDi (Mirzasoleiman et al. 2013): local greedy per rank, final greedy over the "
        "union with the global objective",
        **res.details,
    )
    return _result(ctx, res.indices, res.gains, res.coverage, q, q_scaled, alpha, details)
