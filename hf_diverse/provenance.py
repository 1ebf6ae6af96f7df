"""Selection provenance that travels with a dataset.

`select_diverse` records how a subset was made (method, every parameter, models and revisions, seed, source,
library versions, timings, objective). The record is stored as JSON in `Dataset.info.description` under the key
`"hf_diverse"`, so it survives `select`, `map`, `save_to_disk`/`load_from_disk`, and can be written into a dataset
card by `push_curated`. Any description the source had is kept under `"source_description"`.
"""

import json
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from datasets import Dataset

PROVENANCE_KEY = "hf_diverse"
# the libraries whose versions a selection records
SELECTION_LIBRARIES = ("hf_diverse", "datasets", "torch", "transformers", "sentence-transformers", "huggingface_hub")


def _parse(description: str | None) -> dict:
    if not description:
        return {}
    try:
        data = json.loads(description)
    except (TypeError, ValueError):
        return {"source_description": description}
    return data if isinstance(data, dict) and PROVENANCE_KEY in data else {"source_description": description}


def get_provenance(dataset: Dataset) -> dict | None:
    """The provenance record of a dataset made or loaded by hf_diverse, or `None`.

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10)
    >>> get_provenance(subset)["method"], get_provenance(subset)["k"]
    ('qdit', 10)
    >>> get_provenance(pool)["source"]["kind"]
    'embedded'
    ```
    """
    return _parse(dataset.info.description).get(PROVENANCE_KEY)


def set_provenance(dataset: Dataset, record: dict) -> Dataset:
    """Store `record` (JSON-serialisable) as the dataset's provenance, in place; returns the dataset."""
    data = _parse(dataset.info.description)
    data[PROVENANCE_KEY] = record
    dataset.info.description = json.dumps(data, default=_json_default, sort_keys=True)
    return dataset


def update_provenance(dataset: Dataset, **fields) -> Dataset:
    """Merge `fields` into the dataset's provenance record (creating it), in place."""
    record = dict(get_provenance(dataset) or {})
    record.update(fields)
    return set_provenance(dataset, record)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def library_versions(packages=SELECTION_LIBRARIES, missing: str | None = None) -> dict:
    """Installed versions of `packages`; a package that is not installed is left out, or given the value `missing`.

    Example:
    ```py
    >>> sorted(library_versions(("hf_diverse", "no-such-package"), missing="not installed").items())[-1]
    ('no-such-package', 'not installed')
    ```
    """
    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            if missing is not None:
                out[pkg] = missing
    return out


def root_source(record: dict | None) -> dict:
    """The original source of a (possibly re-selected) subset: follows `source.parent` down the chain of selections.

    Example:
    ```py
    >>> root_source({"source": {"kind": "hf_diverse subset", "parent": {"source": {"id": "a/b", "kind": "hub"}}}})
    {'id': 'a/b', 'kind': 'hub'}
    ```
    """
    source = (record or {}).get("source") or {}
    while source.get("kind") == "hf_diverse subset" and isinstance(source.get("parent"), dict):
        source = source["parent"].get("source") or {}
    return source


def jsonable(obj):
    """`obj` with numpy scalars made Python numbers, tuples made lists and anything else unknown made its `repr`."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)
