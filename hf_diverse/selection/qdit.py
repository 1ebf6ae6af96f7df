"""`method="qdit"`: quality-diversity greedy facility location (QDIT paper).

QDIT decides the score; the engine (`hf_diverse.facility`) maximises it. The paper's marginal score is
`(1 - alpha) * d(j | A) + alpha * q(j)`, with d the facility-location coverage of max(cos, 0). The two terms live on
scales that differ from pool to pool, so what a given alpha does depends on the pool unless the terms are scaled.
`scaling` chooses how (hf_diverse's choice where the paper says nothing; q~ is the quality min-max rescaled to [0, 1]
over the pool, N the pool size, k the budget):

- `"range"` (default): each term is divided by the range it can take on this pool and this k,

      f(j | A) = (1 - alpha) * d(j | A) / (d(A_0) - d(A_q))  +  alpha * q~(j) / (k * (m(A_q) - m(A_0)))

  where A_0 is the alpha = 0 greedy (the most coverage greedy reaches), A_q the k rows of highest quality (the most
  mean quality), d the coverage and m the mean q~. Summed over the picks, both terms run from 0 at one end to 1 at
  the other, so alpha is the weight of "fraction of the achievable coverage" against "fraction of the achievable
  mean quality" on every pool. The two ends cost one more greedy run (alpha = 0, same strategy) and a top-k; they
  are recorded in the provenance (`details["range_ends"]`) and re-used within a process for the same pool, k and
  strategy. When a range is empty (the ends coincide), it falls back to `"mean"` and says so.
- `"mean"` (hf_diverse's earlier default): `f(j | A) = (1 - alpha) * d(j | A) / N + alpha * q~(j) / k`, both
  terms on the scale of a mean. On real pools the trade-off then happens at small alpha (below 0.3 on ShareGPT).
- `"raw"`: the paper's `(1 - alpha) * d(j | A) + alpha * q(j)` with q the quality column as given (run as
  `alpha * (q(j) - min q)`: a constant per pick changes no pick, and the engine needs a bonus >= 0).

At alpha = 0 and alpha = 1 the three give the same picks (no ends are computed). The engine gets the diversity
weight w and the per-row bonus b of the chosen scaling (`score_terms`).
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
from .qdit_scaling import SCALINGS, RangeEnds, range_ends, score_terms

logger = get_logger(__name__)

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
    scaling: str = option(
        "range",
        "How the two terms are put on one scale (the paper does not say): 'range' divides each by the range it can "
        "take on this pool (coverage between the top-quality and the alpha=0 subsets, mean quality between the "
        "alpha=0 subset and the top-k), so alpha means the same on every pool; 'mean' is d/N + q~/k (hf_diverse's "
        "earlier default); 'raw' is the paper's (1 - alpha) d + alpha q on the quality as given.",
        choices=tuple(SCALINGS),
    )
    strategy: str = option(
        "auto",
        "How the greedy runs. Exact: 'dense', 'lazy', 'incremental' (store the N x N similarity matrix), 'blocked' "
        "(keeps the largest similarities of each row within memory_budget, recomputes the rest). For large pools: "
        "'sparse' (exact greedy on a kNN graph, memory O(N m)), 'stochastic' (stochastic greedy on it, "
        "approximate), 'greedi' (GreeDi over torch.distributed ranks). 'auto': 'incremental' when the float32 "
        "matrix fits half the free memory of the device, else 'sparse'.",
        choices=(*STRATEGIES, *SPARSE_STRATEGIES, "greedi"),
    )
    block_size: int = option(2048, "Rows per similarity block.", bounds=(1, None))
    memory_budget: int | None = option(
        None,
        "Bytes allowed for the N x N matrix, or with strategy='blocked' for the similarities it keeps (default: the "
        "free memory of the device, half of it for 'auto' and 'blocked').",
        bounds=(1, None),
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
    >>> sorted(get_provenance(subset)["objective"])  # doctest: +NORMALIZE_WHITESPACE
    ['coverage', 'coverage_position', 'facility_location', 'qd_score', 'quality_mean', 'quality_position',
     'quality_scaled_mean']
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
    details = {"alpha_effective": alpha, "scaling": SCALINGS[config.scaling]}
    if alpha != config.alpha:
        details["alpha_requested"] = config.alpha
    strategy = config.strategy
    if strategy == "greedi":
        run = _run_greedi
    else:
        check_dense_fits(strategy, ctx.n, ctx.device, config.memory_budget)  # before reading or allocating anything
        if strategy == "auto":
            strategy = _resolve_auto(ctx, config, details)
        run = _run_knn if strategy in SPARSE_STRATEGIES else _run_exact
    scaling, ends = config.scaling, None
    if scaling == "range" and q is not None and 0.0 < alpha < 1.0:
        ends, scaling = _range_ends(ctx, config, strategy, run, q_scaled, details)
    w, bonus = score_terms(q, alpha, ctx.n, ctx.k, scaling, ends)
    res = run(ctx, config, strategy, w, bonus, details)
    objective = quality_diversity_objective(res.coverage, ctx.n, q_scaled, res.indices, alpha)
    if q is not None:
        objective["quality_mean"] = float(np.mean(q[res.indices]))
    if ends is not None:
        objective.update(ends.positions(res.coverage, objective["quality_scaled_mean"]))
    parameters = _parameters_as_run(config, alpha, strategy, scaling, details)
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
            "card and the provenance say so; strategy='blocked' runs exact greedy without the matrix (slower).",
            ctx.n,
            ctx.n,
            dense_matrix_bytes(ctx.n) / 2**30,
            ctx.device,
            config.n_neighbors,
        )
    return strategy


def _parameters_as_run(config: QditConfig, alpha: float, strategy: str, scaling: str, details: dict) -> dict:
    """The options as the run used them: alpha as run, `auto` resolved, the scaling that ran (`"range"` falls back to
    `"mean"` when a range is empty), and only the options of that strategy."""
    params = {**config.to_dict(), "alpha": alpha, "strategy": strategy, "scaling": scaling}
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


def _range_ends(ctx, config, strategy, run, q_scaled, details) -> tuple[RangeEnds | None, str]:
    """The ends of `scaling="range"` (one more greedy run at alpha = 0, same strategy) and the scaling to use:
    `"range"`, or `"mean"` when a range is empty (logged and recorded)."""
    t0 = time.perf_counter()

    scratch = {}

    def diversity_end():
        res = run(ctx, config, strategy, 1.0, None, scratch)
        return res.indices, res.coverage

    def quality_coverage(rows):
        if strategy == "greedi":  # the pool is sharded over the ranks: GreeDi with a bonus on `rows` only
            bonus = torch.zeros(ctx.n, dtype=torch.float64)
            bonus[torch.as_tensor(rows)] = 1.0
            return run(ctx, config, strategy, 0.0, bonus, {}).coverage
        dtype = getattr(torch, config.embedding_dtype) if strategy in SPARSE_STRATEGIES else torch.float32
        return facility_location_objective(ctx.embeddings(dtype), rows)

    options = tuple(v for f, v in config.to_dict().items() if f not in ("alpha", "scaling"))
    key = (ctx.dataset._fingerprint, ctx.embedding_column, ctx.quality_column, ctx.n, ctx.k, ctx.seed,
           str(ctx.device), strategy, options)  # fmt: skip
    ends = range_ends(q_scaled, ctx.k, diversity_end, quality_coverage, key=key)
    # no timing in the details: every GreeDi rank must record the same provenance
    details["range_ends"] = ends.to_dict()
    if "knn_cache" in scratch:  # the alpha=0 run built (or loaded) the kNN graph the main run then re-uses
        details["range_ends"]["knn_cache"] = scratch["knn_cache"]
    logger.info("QDIT scaling='range': ends %s in %.1fs.", ends.to_dict(), time.perf_counter() - t0)
    if ends.is_empty(ctx.n):
        note = (
            "scaling='range' fell back to 'mean': the alpha=0 subset and the top-quality subset do not differ in "
            f"coverage ({ends.diversity_coverage:.6g} vs {ends.quality_coverage:.6g}) or in mean quality "
            f"({ends.diversity_quality:.6g} vs {ends.quality_quality:.6g})."
        )
        logger.warning(note)
        details.update(scaling=SCALINGS["mean"], notes=[note])
        return None, "mean"
    return ends, "range"


def _run_exact(ctx, config, strategy, w, bonus, details):
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


def _run_knn(ctx, config, strategy, w, bonus, details):
    x = ctx.embeddings(getattr(torch, config.embedding_dtype))
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
    graph_coverage = None
    if res.details.get("cover") != "dense":  # with the dense cover, res.coverage already is the dense d(A)
        t0 = time.perf_counter()
        graph_coverage, res.coverage = res.coverage, facility_location_objective(x, res.indices)
        details["objective_s"] = round(time.perf_counter() - t0, 3)
    approximation = (
        "stochastic greedy (Mirzasoleiman et al. 2015), gains on the kNN graph's pairs, dense cover"
        if strategy == "stochastic"
        else "greedy with gains on the kNN graph's pairs and the cover on the dense similarities"
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
        approximation=approximation,
        **{k: v for k, v in graph.info.items() if k in ("build_s", "load_s", "nprobe", "nlist")},
        **res.details,
    )
    if graph_coverage is not None:
        details["objective_sparse"] = graph_coverage
    return res


def _run_greedi(ctx, config, strategy, w, bonus, details):
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
        "The paper's score `(1 - alpha) * d(j|A) + alpha * q(j)` does not say how its two terms are scaled. By "
        "default (`scaling='range'`) each is divided by the range it can take on this pool and k: coverage "
        "between the top-quality subset and the alpha=0 greedy, mean quality (rescaled to [0, 1] over the pool) "
        "between the alpha=0 greedy and the top-k, so `alpha` weighs the same fractions of what is reachable on "
        "every pool. The ends cost one more greedy run and are recorded in the method details (`range_ends`); "
        "`coverage_position` / `quality_position` say where the subset landed between them. `scaling='mean'` "
        "(`d/N` and `q~/k`, hf_diverse's earlier default) and `scaling='raw'` (the paper's formula on the quality "
        "as given) are options.",
        "Facility location counts similarities from 0 up (`max(cos, 0)`): negative similarities never add coverage.",
        "Lazy and blocked greedy return exactly the set plain greedy returns (the objective is monotone submodular).",
    ),
    needs_embeddings=True,
)
