"""`method="qdit"`: quality-diversity greedy facility location (QDIT paper).

QDIT decides the score; the engine (`hf_diverse.facility`) maximises it. Each pick maximises

    f(j | A) = (1 - alpha) * d(j | A) / N  +  alpha * q~(j) / k

with d the facility-location coverage of max(cos, 0), q~ the quality min-max rescaled to [0, 1] over the pool, N the
pool size and k the budget. Both terms are on the scale of a mean (hf_diverse's reading of the paper, which does not
spell out its scaling): without the 1/k the quality term swamps late diversity gains (~1e-4) and alpha = 0.7 silently
becomes top-quality selection. The engine gets w = (1 - alpha) / N and the bonus b = alpha * q~ / k.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..embeddings import read_embeddings_chunked
from ..errors import InvalidParameterError
from ..facility import (
    KNN_METHODS,
    SPARSE_STRATEGIES,
    STRATEGIES,
    check_dense_fits,
    choose_strategy,
    dense_matrix_bytes,
    dist_info,
    facility_location_greedy,
    facility_location_objective,
    greedi,
    knn_greedy,
    rank_device,
    shard_rows,
)
from ..utils.logging import get_logger
from .base import Method, SelectionContext, SelectionResult, minmax
from .config import MethodConfig, option

logger = get_logger(__name__)

SCALING = "f(j|A) = (1 - alpha) * d(j|A) / N + alpha * q~(j) / k, q~ = min-max rescaled quality over the pool"
DTYPES = ("float32", "float16", "bfloat16")
# options that only the kNN-graph strategies (and GreeDi's local ones) read; left out of an exact run's parameters
GRAPH_OPTIONS = ("n_neighbors", "knn", "nprobe", "epsilon", "embedding_dtype", "knn_cache")
# options that only the exact strategies read; left out of a kNN-graph run's parameters
EXACT_OPTIONS = ("block_size", "memory_budget")


@dataclass
class QditConfig(MethodConfig):
    """Options of `method="qdit"`."""

    alpha: float = option(
        0.7,
        "Weight of quality against diversity, in [0, 1]: 0 is diversity only (classical facility location), 1 is top "
        "quality. The paper's best values were 0.5-0.9 (0.7 for Alpaca). Needs a quality column; without one QDIT "
        "runs with alpha = 0.",
        bounds=(0, 1),
        space={"minimum": 0, "maximum": 1, "step": 0.05},
    )
    strategy: str = option(
        "auto",
        "How the greedy runs. Exact: 'dense', 'lazy', 'incremental' (store the N x N similarity matrix), 'blocked' "
        "(recompute similarity rows). For large pools: 'sparse' (exact greedy on a kNN graph, memory O(N m)), "
        "'stochastic' (stochastic greedy on it, approximate), 'greedi' (GreeDi over torch.distributed ranks). "
        "'auto': 'incremental' when the float32 matrix fits half the free memory of the device, else 'sparse'.",
        choices=(*STRATEGIES, *SPARSE_STRATEGIES, "greedi"),
    )
    block_size: int = option(2048, "Rows per similarity block.", bounds=(1, None))
    memory_budget: int | None = option(
        None, "Bytes allowed for the N x N matrix (default: the free memory of the device).", bounds=(1, None)
    )
    n_neighbors: int = option(
        32, "m, the neighbours each row keeps in the kNN graph ('sparse', 'stochastic').", bounds=(1, None)
    )
    knn: str = option(
        "auto",
        "kNN search for the graph: 'exact', 'ivf' (torch inverted file), 'faiss', or 'auto' (exact up to 50k rows on "
        "CPU, else 'ivf').",
        choices=KNN_METHODS,
    )
    nprobe: int = option(16, "Inverted-file lists probed by knn='ivf' / 'faiss'.", bounds=(1, None))
    epsilon: float = option(
        0.01, "Stochastic greedy's epsilon, in (0, 1): samples ceil(N/k ln(1/epsilon)) rows per pick.", bounds=(0, 1)
    )
    embedding_dtype: str = option(
        "float32",
        "Dtype of the embeddings for the kNN graph and GreeDi ('float16' / 'bfloat16' halve GPU memory); exact "
        "strategies compute in float32.",
        choices=DTYPES,
    )
    knn_cache: bool = option(
        True, "Cache the kNN graph on disk (keyed by the embeddings' content), so a re-run skips it."
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.epsilon < 1.0:
            raise InvalidParameterError(f"epsilon must be in (0, 1), got {self.epsilon!r}.")


def score_terms(q_scaled: np.ndarray | None, alpha: float, n: int, k: int) -> tuple[float, torch.Tensor | None]:
    """QDIT's score for the engine: `(diversity weight (1 - alpha) / N, bonus alpha * q~ / k)` (bonus `None` without
    quality)."""
    if q_scaled is None:
        return (1.0 - alpha) / n, None
    return (1.0 - alpha) / n, alpha * torch.as_tensor(np.asarray(q_scaled), dtype=torch.float64) / k


def quality_diversity_objective(coverage: float, n: int, q_scaled: np.ndarray | None, indices, alpha: float) -> dict:
    """Objective values reported for any selection: d(A), d(A)/N, mean quality and the Q-D score."""
    out = {"facility_location": coverage, "coverage": coverage / n}
    if q_scaled is not None:
        mean_q = float(np.mean(q_scaled[np.asarray(indices)]))
        out["quality_scaled_mean"] = mean_q
        out["qd_score"] = (1 - alpha) * coverage / n + alpha * mean_q
    return out


def select_qdit(ctx: SelectionContext, config: QditConfig) -> SelectionResult:
    """QDIT greedy: facility-location diversity of the embeddings plus `alpha` times quality (see `QditConfig`).

    Example:
    ```py
    >>> from hf_diverse import get_provenance, select_diverse
    >>> subset = select_diverse(pool, k=10, method="qdit", quality_column="reward", alpha=0.7)
    >>> sorted(get_provenance(subset)["objective"])
    ['coverage', 'facility_location', 'qd_score', 'quality_mean', 'quality_scaled_mean']
    ```
    """
    q = ctx.quality()
    alpha = config.alpha
    if q is None and alpha > 0:
        logger.warning(
            "No `quality_column` given: QDIT runs with alpha=0 (diversity only) instead of alpha=%s.", alpha
        )
        alpha = 0.0
    q_scaled = minmax(q) if q is not None else None
    details = {"alpha_effective": alpha, "scaling": SCALING}
    if alpha != config.alpha:
        details["alpha_requested"] = config.alpha
    strategy = config.strategy
    if strategy == "greedi":
        res = _run_greedi(ctx, config, q_scaled, alpha, details)
    else:
        check_dense_fits(strategy, ctx.n, ctx.device, config.memory_budget)  # before reading or allocating anything
        if strategy == "auto":
            strategy = _resolve_auto(ctx, config, details)
        run = _run_knn if strategy in SPARSE_STRATEGIES else _run_exact
        res = run(ctx, config, strategy, q_scaled, alpha, details)
    objective = quality_diversity_objective(res.coverage, ctx.n, q_scaled, res.indices, alpha)
    if q is not None:
        objective["quality_mean"] = float(np.mean(q[res.indices]))
    parameters = _parameters_as_run(config, alpha, strategy, details)
    return SelectionResult(
        indices=res.indices, gains=res.gains, objective=objective, details=details, parameters=parameters
    )


def _resolve_auto(ctx, config, details) -> str:
    """The strategy `auto` runs; a fall-back to the approximate `sparse` is logged (and recorded by the caller)."""
    strategy = choose_strategy(ctx.n, ctx.device, config.memory_budget, fallback="sparse")
    details["strategy_requested"] = "auto"
    if strategy in SPARSE_STRATEGIES:
        logger.warning(
            "strategy='auto': the %dx%d float32 similarity matrix (%.2f GiB) does not fit the memory budget on %s, so "
            "'sparse' runs: an approximation (exact greedy on the kNN-sparsified objective, n_neighbors=%d). The "
            "card and the provenance say so; strategy='blocked' runs exact greedy in O(N d) memory (slower).",
            ctx.n,
            ctx.n,
            dense_matrix_bytes(ctx.n) / 2**30,
            ctx.device,
            config.n_neighbors,
        )
    return strategy


def _parameters_as_run(config: QditConfig, alpha: float, strategy: str, details: dict) -> dict:
    """The options as the run used them: alpha as run, `auto` resolved, and only the options of that strategy."""
    params = {**config.to_dict(), "alpha": alpha, "strategy": strategy}
    if strategy in SPARSE_STRATEGIES:
        drop = set(EXACT_OPTIONS) | ({"epsilon"} if strategy == "sparse" else set())
        ran = str(details.get("knn", params["knn"]))  # "auto" resolved to the search that ran
        params["knn"] = "faiss" if ran.startswith("faiss") else ran
        if ran not in ("ivf", "faiss-ivf"):
            drop.add("nprobe")
    elif strategy == "greedi":
        drop = {"epsilon"}
    else:
        drop = set(GRAPH_OPTIONS)
    return {name: value for name, value in params.items() if name not in drop}


def _run_exact(ctx, config, strategy, q_scaled, alpha, details):
    w, bonus = score_terms(q_scaled, alpha, ctx.n, ctx.k)
    res = facility_location_greedy(
        ctx.embeddings(),
        ctx.k,
        bonus=bonus,
        diversity_weight=w,
        strategy=strategy,
        block_size=config.block_size,
        memory_budget=config.memory_budget,
        show_progress=ctx.show_progress,
    )
    ran = "quality-only" if res.strategy == "top-bonus" else res.strategy
    details.update(strategy=ran, gain_evaluations=res.evaluations, exact=True)
    return res


def _run_knn(ctx, config, strategy, q_scaled, alpha, details):
    x = ctx.embeddings(getattr(torch, config.embedding_dtype))
    w, bonus = score_terms(q_scaled, alpha, ctx.n, ctx.k)
    res, graph = knn_greedy(
        x,
        ctx.k,
        bonus=bonus,
        diversity_weight=w,
        strategy=strategy,
        n_neighbors=config.n_neighbors,
        knn=config.knn,
        nprobe=config.nprobe,
        epsilon=config.epsilon,
        seed=ctx.seed,
        cache=config.knn_cache,
        show_progress=ctx.show_progress,
    )
    t0 = time.perf_counter()
    graph_coverage, res.coverage = res.coverage, facility_location_objective(x, res.indices)  # the dense objective
    details["objective_s"] = round(time.perf_counter() - t0, 3)
    approximation = (
        "stochastic greedy (Mirzasoleiman et al. 2015) on the kNN-sparsified objective"
        if strategy == "stochastic"
        else "exact greedy on the kNN-sparsified objective"
    )
    details.update(
        strategy=strategy,
        exact=False,
        gain_evaluations=res.evaluations,
        n_neighbors=graph.n_neighbors,
        knn=graph.knn,
        graph_nnz=graph.nnz,
        knn_cache=graph.info.get("cache"),
        embedding_dtype=config.embedding_dtype,
        objective_sparse=graph_coverage,
        approximation=approximation,
        **{k: v for k, v in graph.info.items() if k in ("build_s", "load_s", "nprobe", "nlist")},
        **res.details,
    )
    return res


def _run_greedi(ctx, config, q_scaled, alpha, details):
    rank, world = dist_info()
    if world == 1:
        logger.warning("strategy='greedi' without an initialised torch.distributed process group: one rank only.")
    rows = shard_rows(ctx.n, rank, world, ctx.seed)
    device = rank_device(ctx.device)
    dtype = getattr(torch, config.embedding_dtype)
    x = read_embeddings_chunked(
        ctx.dataset,
        ctx.embedding_column,
        device=device,
        dtype=dtype,
        rows=rows,
        show_progress=ctx.show_progress and rank == 0,
        stats=ctx.embedding_stats,  # this rank's shard
    )
    w, bonus = score_terms(q_scaled, alpha, ctx.n, ctx.k)
    res = greedi(
        x,
        ctx.k,
        bonus=None if bonus is None else bonus.numpy()[rows],
        diversity_weight=w,
        seed=ctx.seed,
        rows=rows,
        n_total=ctx.n,
        block_size=config.block_size,
        memory_budget=config.memory_budget,
        knn_cache=config.knn_cache,
        n_neighbors=config.n_neighbors,
        knn=config.knn,
        nprobe=config.nprobe,
        show_progress=ctx.show_progress,
    )
    details.update(
        strategy="greedi",
        exact=False,
        world_size=res.world_size,
        candidates=res.candidates,
        local_strategy=res.local_strategy,
        embedding_dtype=config.embedding_dtype,
        approximation="GreeDi (Mirzasoleiman et al. 2013): local greedy per rank, final greedy over the union with "
        "the global objective",
        **res.details,
    )
    return res


METHOD = Method(
    name="qdit",
    select=select_qdit,
    config=QditConfig,
    label="QDIT: quality-diversity greedy (facility location + quality, alpha)",
    summary="Quality-diversity greedy (QDIT): facility-location diversity of the embeddings over max(cos, 0) plus a "
    "quality term, maximised greedily.",
    choices=(
        "Marginal score `f(j|A) = (1 - alpha) * d(j|A) / N + alpha * q~(j) / k`, with `q~` the quality rescaled to "
        "[0, 1] over the pool (min-max). The `1/N` and `1/k` put both terms on the scale of a mean, so `alpha` trades "
        "them off smoothly. The paper does not spell out its scaling: this is hf_diverse's reading of it.",
        "Facility location counts similarities from 0 up (`max(cos, 0)`): negative similarities never add coverage.",
        "Lazy and blocked greedy return exactly the set plain greedy returns (the objective is monotone submodular).",
    ),
    needs_embeddings=True,
)
