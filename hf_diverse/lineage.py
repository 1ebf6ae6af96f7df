"""Where a pool can be loaded from again: its source, followed as far as the files allow.

A card's Reproduce block and `hf-diverse report --subset X` need the pool a subset was selected from. `trace_source`
answers from three places, in order:

1. the provenance `load_pool` wrote (Hub id + config + split + revision, a local file with its SHA-256, a
   `save_to_disk` folder, the bundled sample, a row `limit`), trusted only while the dataset's fingerprint is still
   the one recorded at load time: any `map`, `filter`, `select`, `remove_columns` ... changes it;
2. the dataset's own files: a dataset whose Arrow files are a `save_to_disk` folder and whose fingerprint is the one
   `load_from_disk` gives (whatever function loaded it), or a `datasets` builder cache of a Hub dataset (repo id,
   config and revision read from the cache path, checked against the builder's fingerprint);
3. otherwise the pool cannot be loaded again (built in memory, changed after loading, or loaded by
   `datasets.load_dataset` from local files whose paths `datasets` does not keep), and the record says what is missing
   and how to fix it.

Every source gets `reloadable` (`True` only when `reload_arguments` gives `load_pool` arguments that return the same
rows), and otherwise `missing` and `fix`.
"""

import hashlib
import re
from pathlib import Path

from datasets import Dataset
from datasets.fingerprint import Hasher

from .provenance import get_provenance

# kinds `load_pool` can load again from their record
RELOADABLE_KINDS = ("embedded", "file", "save_to_disk", "hub")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_SAVE_FIX = (
    "save the pool with `pool.save_to_disk('pool/')` and select from `load_pool('pool/')` "
    "(CLI: `--dataset pool/`), or load it with `load_pool(<file or Hub id>)` and select from it unchanged"
)


def file_sha256(path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trace_source(dataset: Dataset) -> dict:
    """Where `dataset` comes from and whether `load_pool` can load exactly these rows again.

    Example:
    ```py
    >>> from hf_diverse import load_pool
    >>> trace_source(load_pool())["reloadable"]  # the bundled sample, as loaded
    True
    >>> source = trace_source(load_pool().select(range(10)))  # changed after loading
    >>> source["reloadable"], source["missing"].split(" (")[0]
    (False, 'the pool was changed after it was loaded')
    ```
    """
    record = get_provenance(dataset) or {}
    fingerprint = dataset._fingerprint
    if record.get("method"):
        return _subset_source(dataset, record)
    recorded = record.get("source")
    if recorded and recorded.get("fingerprint") == fingerprint:
        kind = recorded.get("kind")
        if kind in RELOADABLE_KINDS:
            return {**recorded, "reloadable": True}
        return {**recorded, "reloadable": False, **_not_reloadable(recorded)}
    from_files = source_from_files(dataset)
    if from_files is not None and (from_files["reloadable"] or not recorded):
        return {**from_files, "derived_from": recorded} if recorded else from_files
    if recorded:
        return {
            **recorded,
            "loaded_fingerprint": recorded.get("fingerprint"),
            "fingerprint": fingerprint,
            "reloadable": False,
            "missing": "the pool was changed after it was loaded (a `map`, `filter`, `select`, new or removed "
            "columns): loading the source again gives other rows or columns",
            "fix": _SAVE_FIX,
        }
    return {
        "kind": "in-memory",
        "fingerprint": fingerprint,
        "reloadable": False,
        "missing": "the pool was built in memory (`Dataset.from_dict`, `from_pandas`, a list of rows, ...): there is "
        "nothing to load it from",
        "fix": _SAVE_FIX,
    }


def _subset_source(dataset: Dataset, record: dict) -> dict:
    """A subset made by `select_diverse`, selected from again: its lineage, and where it can be loaded from."""
    parent = {key: value for key, value in record.items() if key != "location"}
    source = {"kind": "hf_diverse subset", "fingerprint": dataset._fingerprint, "parent": parent}
    location = record.get("location") or {}
    if location.get("fingerprint") == dataset._fingerprint and location.get("id"):
        return {**source, "id": location["id"], "split": location.get("split"), "reloadable": True}
    files = source_from_files(dataset)
    if files is not None and files["reloadable"]:
        return {**source, "id": files["id"], "split": files.get("split"), "reloadable": True}
    return {
        **source,
        "reloadable": False,
        "missing": "the subset this selection started from was not loaded from a folder (or was changed after it)",
        "fix": "save the subset with `save_subset(subset, 'curated/')` and select from `load_pool('curated/')`",
    }


def _not_reloadable(source: dict) -> dict:
    return {"missing": f"a {source.get('kind')} source cannot be loaded again by hf_diverse", "fix": _SAVE_FIX}


def source_from_files(dataset: Dataset) -> dict | None:
    """The source as the dataset's Arrow files show it (a `save_to_disk` folder, a builder cache), or `None`."""
    files = [Path(f["filename"]) for f in dataset.cache_files]
    if not files:
        return None
    folder = files[0].parent
    if (folder / "state.json").exists():
        return _save_to_disk_source(dataset, folder)
    builder = _builder_fingerprint(folder, dataset)
    hub = hub_cache_location(files[0])
    if hub is not None:
        same = builder == dataset._fingerprint
        source = {"kind": "hub", **hub, "split": str(dataset.split) if dataset.split else None}
        source.update(fingerprint=dataset._fingerprint, reloadable=same)
        if not same:
            source.update(
                missing="the Hub dataset was changed after it was loaded with `datasets.load_dataset`", fix=_SAVE_FIX
            )
        return source
    name = dataset.info.builder_name
    if name and builder == dataset._fingerprint:
        return {
            "kind": f"{name} files",
            "fingerprint": dataset._fingerprint,
            "reloadable": False,
            "missing": f"the pool was loaded with `datasets.load_dataset({name!r}, data_files=...)`, which does not "
            "record the paths of the files",
            "fix": "load the file with `load_pool('path/to/file')` (it records the path and a SHA-256 of the content)"
            " and select from it unchanged",
        }
    return None


def _save_to_disk_source(dataset: Dataset, folder: Path) -> dict:
    import datasets

    root, split = folder, None
    if (folder.parent / "dataset_dict.json").exists():
        root, split = folder.parent, folder.name
    try:
        loaded = datasets.load_from_disk(str(root))
        loaded = loaded[split] if split is not None else loaded
        same = loaded._fingerprint == dataset._fingerprint
    except Exception:  # a folder that no longer loads: not reloadable
        same = False
    source = {"kind": "save_to_disk", "id": str(root), "split": split, "fingerprint": dataset._fingerprint}
    if same:
        return {**source, "reloadable": True}
    return {
        **source,
        "reloadable": False,
        "missing": f"the pool was changed after it was loaded from the folder {str(root)!r}",
        "fix": _SAVE_FIX,
    }


def _builder_fingerprint(folder: Path, dataset: Dataset) -> str | None:
    """The fingerprint `datasets` gives a split it builds into `folder` (`builder/config/version/hash`)."""
    if len(folder.parts) < 4 or dataset.split is None:
        return None
    hasher = Hasher()
    hasher.update("/".join(folder.parts[-4:]))
    hasher.update(str(dataset.split))
    return hasher.hexdigest()


def hub_cache_location(path) -> dict | None:
    """`{"id", "config", "revision"}` of a Hub dataset from the path of its `datasets` cache file, else `None`.

    The cache layout is `<cache>/<namespace>___<name>/<config>/<version>/<revision hash>/<file>.arrow`; local files
    built by `json`, `csv`, `parquet` ... have no namespace.

    Example:
    ```py
    >>> hub_cache_location("/cache/tatsu-lab___alpaca/default/0.0.0/" + "a" * 40 + "/alpaca-train.arrow")["id"]
    'tatsu-lab/alpaca'
    ```
    """
    parts = Path(path).parts
    if len(parts) < 5 or "___" not in parts[-5]:
        return None
    namespace, _, name = parts[-5].partition("___")
    revision = parts[-2]
    return {"id": f"{namespace}/{name}", "config": parts[-4], "revision": revision if _HEX40.match(revision) else None}


def reload_arguments(source: dict) -> dict | None:
    """The `load_pool` arguments that give back the rows of a reloadable `source`, else `None`.

    Example:
    ```py
    >>> reload_arguments({"kind": "hub", "id": "tatsu-lab/alpaca", "split": "train", "reloadable": True})
    {'source': 'tatsu-lab/alpaca'}
    ```
    """
    reloadable = source.get("reloadable")
    if reloadable is None:  # a record written before `reloadable` existed
        reloadable = source.get("kind") in RELOADABLE_KINDS
    if not reloadable:
        return None
    kind = source.get("kind")
    args = {} if kind == "embedded" else {"source": source.get("id")}
    if kind != "embedded" and not args["source"]:
        return None
    if source.get("split") not in (None, "train"):
        args["split"] = source["split"]
    if kind == "hub":
        args.update({key: source[key] for key in ("config", "revision") if source.get(key)})
    if source.get("streaming"):
        args["streaming"] = True
    if source.get("limit") is not None:
        args["limit"] = source["limit"]
    return args


# select_diverse arguments written into the reproduce call only when they differ from these defaults
_CALL_DEFAULTS = {
    "embedding_column": "embedding",
    "what": "instruction",
    "turns": "first",
    "keep_empty": False,
    "long_text": "truncate",
}


def reproduce_commands(record: dict) -> dict:
    """The `select_diverse` call of a selection and, when its pool can be loaded again, the Python code and the CLI
    command that reproduce it.

    Returns:
        `dict` with `call` (always: `select_diverse(pool, ...)` with every recorded parameter that is set),
        `reloadable`, and either `python` and `cli` (`cli` is `None` when a parameter has no flag form, e.g. a dict
        of `text_columns`) or `missing` and `fix` (why the pool cannot be loaded again, and how to make it so).

    Example:
    ```py
    >>> rec = {"method": "random", "k": 5, "seed": 0, "parameters": {}, "source": {"kind": "embedded"}}
    >>> reproduce_commands(rec)["cli"]
    'hf-diverse select --k 5 --method random --seed 0'
    ```
    """
    source = record.get("source") or {}
    method, k, seed = record["method"], record["k"], record["seed"]
    py_args, flags, cli_ok = [f"k={k}", f"method={method!r}"], [], True
    for key, value in (record.get("parameters") or {}).items():
        if value is None or _CALL_DEFAULTS.get(key, object()) == value:
            continue
        py_args.append(f"{key}={value!r}")
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, ",".join(map(str, value))]
        elif isinstance(value, dict):
            cli_ok = False
        else:
            flags += [flag, str(value)]
    py_args.append(f"seed={seed}")
    call = f"select_diverse(pool, {', '.join(py_args)})"
    load = reload_arguments(source)
    if load is None:
        return {
            "reloadable": False,
            "call": call,
            "python": None,
            "cli": None,
            "missing": source.get("missing") or f"a {source.get('kind', 'unknown')} source cannot be loaded again",
            "fix": source.get("fix") or _SAVE_FIX,
        }
    load_args = ", ".join(repr(value) if key == "source" else f"{key}={value!r}" for key, value in load.items())
    python = f"from hf_diverse import load_pool, select_diverse\n\npool = load_pool({load_args})\nsubset = {call}"
    cli = ["hf-diverse", "select"] + _load_flags(load) + ["--k", str(k), "--method", method, "--seed", str(seed)]
    return {
        "reloadable": True,
        "call": call,
        "python": python,
        "cli": " ".join(_quote(part) for part in cli + flags) if cli_ok else None,
    }


def _load_flags(load: dict) -> list[str]:
    flags = []
    for key, flag in (("source", "--dataset"), ("split", "--split"), ("config", "--dataset-config")):
        if load.get(key) is not None:
            flags += [flag, str(load[key])]
    for key in ("revision", "limit"):
        if load.get(key) is not None:
            flags += [f"--{key}", str(load[key])]
    if load.get("streaming"):
        flags.append("--streaming")
    return flags


def _quote(part: str) -> str:
    import shlex

    return shlex.quote(part)
