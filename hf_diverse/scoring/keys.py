"""The keys results are stored and found again under: a scorer's configuration, a row's content, a shard's rows.

- `scorer_key`: the scorer's class, its configuration (the public attributes `__init__` set, less
  `Scorer.reuse_ignores`), its model record (`model_info`: name, source package version, revision) and the
  hf_diverse version. Two scorers with the same key give the same results for the same row.
- `row_keys`: 16 bytes per row, a BLAKE2b digest of the row's values in the columns the scorer reads
  (`Scorer.input_columns`), with each column's name; the column order does not matter, the values' types do
  (`1`, `1.0` and `"1"` differ).
- `shard_key`: a digest of a shard's row keys, in order: the name of its finished file.
"""

import datetime
import decimal
import hashlib
import json
import pickle
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from datasets.fingerprint import Hasher

from ..provenance import jsonable
from ..scorers.base import Scorer

ROW_KEY_BYTES = 16


def scorer_key(scorer) -> tuple[str, dict]:
    """`(key, description)`: a 16-hex-digit key of what decides the scorer's results, and that description (JSON).

    Example:
    ```py
    >>> from hf_diverse import EmbeddingScorer
    >>> key, about = scorer_key(EmbeddingScorer(batch_size=32, device="cpu"))
    >>> key == scorer_key(EmbeddingScorer())[0]  # batch size and device do not change the embeddings
    True
    >>> key == scorer_key(EmbeddingScorer(what="response"))[0]
    False
    >>> about["class"], about["model"]["name"]
    ('hf_diverse.scorers.embedding.EmbeddingScorer', 'sentence-transformers/all-MiniLM-L6-v2')
    ```
    """
    cls = type(scorer)
    about = {"class": f"{cls.__module__}.{cls.__qualname__}", "hf_diverse": _package_version()}
    if isinstance(scorer, Scorer):
        state = scorer.__getstate__()
        about["config"] = jsonable({k: v for k, v in sorted(state.items()) if k not in scorer.reuse_ignores})
        about["model"] = jsonable(scorer.model_info)
    else:  # any other `map` callable: `datasets`' own hash of it
        about["hash"] = Hasher.hash(scorer)
    payload = json.dumps(about, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.blake2b(payload, digest_size=8).hexdigest(), about


def row_keys(batch: dict[str, list], columns: list[str]) -> list[bytes]:
    """One 16-byte content key per row of `batch` (a `map(batched=True)` batch), over `columns`.

    Example:
    ```py
    >>> keys = row_keys({"prompt": ["Hi", "Hi", "Yo"], "id": [1, 2, 3]}, ["prompt"])
    >>> keys[0] == keys[1], keys[0] == keys[2], len(keys[0])
    (True, False, 16)
    ```
    """
    columns = sorted(columns)
    n = len(batch[columns[0]]) if columns else len(next(iter(batch.values()), []))
    encoded = [[_encode(value) for value in batch[c]] for c in columns]
    out = []
    for i in range(n):
        h = hashlib.blake2b(digest_size=ROW_KEY_BYTES)
        for column, values in zip(columns, encoded, strict=True):
            h.update(b"%d:%s%d:" % (len(column), column.encode("utf-8"), len(values[i])))
            h.update(values[i])
        out.append(h.digest())
    return out


def shard_key(keys: list[bytes]) -> str:
    """A 32-hex-digit key of a shard: its row keys in order (and so its length)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(len(keys).to_bytes(8, "little"))
    for key in keys:
        h.update(key)
    return h.hexdigest()


def _encode(value) -> bytes:
    if isinstance(value, str):  # the common case, kept fast
        return b"s" + value.encode("utf-8")
    return b"j" + json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain).encode()


def _plain(value):
    """JSON stand-ins for the values `datasets` gives besides JSON types (a tagged form, so none equals a string)."""
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    if isinstance(value, np.ndarray | np.generic):
        return {"__numpy__": str(value.dtype), "value": value.tolist()}
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return {"__time__": type(value).__name__, "value": str(value)}
    if isinstance(value, decimal.Decimal):
        return {"__decimal__": str(value)}
    # anything else (a decoded image, ...): its pickled bytes
    return {"__pickle__": hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=16).hexdigest()}


def _package_version() -> str:
    try:
        return version("hf_diverse")
    except PackageNotFoundError:
        return "unknown"
