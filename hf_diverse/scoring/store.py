"""The on-disk store of scores: finished shards, the batches of unfinished ones, and the index that finds rows again.

Layout under the store's root (`checkpoint_dir`, default `hf_diverse.models.cache_dir() / "scores"`):

    <ScorerClass>-<scorer key>/
        scorer.json                                  what the key stands for (class, configuration, model)
        shards/<shard key>.arrow                     a finished shard: row keys + the scorer's columns
        partial/<shard key>/<start>-<stop>.arrow     the finished batches of an unfinished shard
    inputs/<key>.arrow                               the rows of a streamed (`IterableDataset`) shard

Every file is an Arrow stream written with `hf_diverse.io.atomic_file` (temporary name, then one rename): a file
with its final name is complete, whatever killed its writer, and nothing reads a temporary file. A shard is finished
when its file exists; its batch files are merged into it, then removed. Files keep the `datasets` features in their
schema metadata, so `Dataset.from_file` reads them (memory-mapped) with the scorer's types.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset

from ..errors import HfDiverseError
from ..io import atomic_file, stale_temporary_files
from ..models import cache_dir
from ..utils.logging import get_logger
from .keys import ROW_KEY_BYTES, scorer_key

logger = get_logger(__name__)

KEY_COLUMN = "__hf_diverse_row_key"


class StoreError(HfDiverseError, OSError):
    """The score store holds something it cannot use (e.g. batch files that do not cover a shard)."""


_OFF = ("0", "false", "off", "no")


def default_root() -> Path:
    """The shared store every entry point looks in: `$HF_DIVERSE_SCORE_CACHE` when it names a folder, else
    `cache_dir() / "scores"` (`$HF_DIVERSE_CACHE/scores`)."""
    value = os.environ.get("HF_DIVERSE_SCORE_CACHE", "")
    return Path(value) if value and value.lower() not in _OFF else cache_dir() / "scores"


def store_enabled() -> bool:
    """Whether computed columns go through the shared store by default (`HF_DIVERSE_SCORE_CACHE=0` turns it off:
    `select_diverse` and the report then compute with a plain `Dataset.map`, as `datasets` caches it)."""
    return os.environ.get("HF_DIVERSE_SCORE_CACHE", "").lower() not in _OFF


def write_table(table: pa.Table, path: Path) -> None:
    """Write `table` as an Arrow stream file at `path`, atomically."""
    with atomic_file(path) as tmp, pa.OSFile(str(tmp), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


def read_table(path: Path) -> pa.Table:
    """An Arrow stream file as a memory-mapped table."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


class ScoreStore:
    """The folder of one scorer configuration in a store root (see the module docstring).

    Args:
        root (`str` or `os.PathLike`, *optional*): the store's root; `None` is `default_root()`.
        scorer: the scorer whose results it holds (its `scorer_key` names the folder).
    """

    def __init__(self, root, scorer):
        self.root = Path(root) if root is not None else default_root()
        self.key, self.about = scorer_key(scorer)
        self.folder = self.root / f"{type(scorer).__name__}-{self.key}"
        self._index = None

    def prepare(self) -> "ScoreStore":
        """Create the folders, record `scorer.json`, and delete the temporary files of writers that died here."""
        (self.folder / "shards").mkdir(parents=True, exist_ok=True)
        (self.folder / "partial").mkdir(exist_ok=True)
        about = self.folder / "scorer.json"
        if not about.exists():
            with atomic_file(about) as tmp:
                tmp.write_text(json.dumps(self.about, indent=2, sort_keys=True) + "\n")
        folders = [self.folder / "shards", *(p for p in (self.folder / "partial").iterdir() if p.is_dir())]
        for folder in [*folders, self.root / "inputs"]:
            for path in stale_temporary_files(folder):
                path.unlink(missing_ok=True)
        return self

    # --- shards --------------------------------------------------------------------------------------------------
    def shard_path(self, key: str) -> Path:
        return self.folder / "shards" / f"{key}.arrow"

    def finished(self, key: str) -> bool:
        return self.shard_path(key).exists()

    def read_shard(self, key: str) -> Dataset:
        """A finished shard as a memory-mapped `Dataset` of the scorer's columns (row keys dropped)."""
        return Dataset.from_file(str(self.shard_path(key))).remove_columns(KEY_COLUMN)

    # --- batches of an unfinished shard --------------------------------------------------------------------------
    def _partial(self, key: str) -> Path:
        return self.folder / "partial" / key

    def done_batches(self, key: str) -> list[tuple[int, int, Path]]:
        """`(start, stop, path)` of the shard's finished batches that cover its rows from 0 without a gap."""
        found = {}
        folder = self._partial(key)
        if folder.is_dir():
            for path in folder.glob("[0-9]*-[0-9]*.arrow"):
                start, stop = (int(x) for x in path.stem.split("-"))
                found.setdefault(start, (start, stop, path))
        out, pos = [], 0
        while pos in found:
            out.append(found[pos])
            pos = found[pos][1]
        return out

    def write_batch(self, key: str, start: int, stop: int, table: pa.Table) -> None:
        """Record the results of rows `start:stop` of shard `key` (atomically). When another process sharing the
        store finishes the shard meanwhile, it removes the shard's batch folder, maybe under this write: the batch is
        then not needed and the error is dropped."""
        try:
            write_table(table, self._partial(key) / f"{start:09d}-{stop:09d}.arrow")
        except OSError:
            if not self.finished(key):
                raise

    def finish_shard(self, key: str, n_rows: int) -> None:
        """Merge the shard's batches into its finished file (atomically), then drop the batch files."""
        try:
            if not self.finished(key):
                batches = self.done_batches(key)
                covered = batches[-1][1] if batches else 0
                if covered != n_rows:
                    raise StoreError(
                        f"The batches of shard {key} in {self.folder} cover {covered} of its {n_rows} rows."
                    )
                tables = [read_table(path) for _, _, path in batches]
                write_table(pa.concat_tables(tables).combine_chunks(), self.shard_path(key))
        except (OSError, StoreError):
            if not self.finished(key):  # else another process sharing the store finished it meanwhile
                raise
        self.drop_partial(key)

    def drop_partial(self, key: str) -> None:
        shutil.rmtree(self._partial(key), ignore_errors=True)

    def rows_in_batches(self, key: str) -> int:
        batches = self.done_batches(key)
        return batches[-1][1] if batches else 0

    # --- finding rows again --------------------------------------------------------------------------------------
    def index(self) -> "RowIndex":
        """The index of every row in this scorer's finished shards (built on first use)."""
        if self._index is None:
            self._index = RowIndex(sorted(p for p in (self.folder / "shards").glob("*.arrow") if _is_key(p.stem)))
        return self._index


class RowIndex:
    """Row keys of a set of finished shard files, sorted, to find the stored result of a row by its content.

    Args:
        files (`list[Path]`): finished shard files (each with the row-key column).
    """

    def __init__(self, files: list[Path]):
        self.files = files
        self._tables: dict[int, pa.Table] = {}
        parts, owners = [], []
        for file_id, path in enumerate(files):
            try:
                keys = read_table(path).column(KEY_COLUMN).to_pylist()
            except (OSError, KeyError, pa.ArrowInvalid) as e:  # not ours, or unreadable: skip it, say so
                logger.warning("Skipping %s in the score store: %s", path, e)
                continue
            parts.append(np.frombuffer(b"".join(keys), dtype=f"S{ROW_KEY_BYTES}"))
            owners.append(np.stack([np.full(len(keys), file_id), np.arange(len(keys))], axis=1))
        keys = np.concatenate(parts) if parts else np.array([], dtype=f"S{ROW_KEY_BYTES}")
        where = np.concatenate(owners) if owners else np.zeros((0, 2), dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        self._keys, self._where = keys[order], where[order]

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, keys: list[bytes]) -> list[tuple[int, int] | None]:
        """`(file id, row)` of the stored result of each key, or `None` when it is not stored."""
        if not len(self._keys) or not keys:
            return [None] * len(keys)
        wanted = np.frombuffer(b"".join(keys), dtype=f"S{ROW_KEY_BYTES}")
        pos = np.minimum(np.searchsorted(self._keys, wanted), len(self._keys) - 1)
        hit = self._keys[pos] == wanted
        return [tuple(int(x) for x in self._where[p]) if h else None for p, h in zip(pos, hit, strict=True)]

    def take(self, places: list[tuple[int, int]]) -> pa.Table:
        """The stored rows at `places` (from `lookup`), in that order, without the row-key column."""
        parts, order = [], []
        for file_id in sorted({f for f, _ in places}):
            if file_id not in self._tables:
                self._tables[file_id] = read_table(self.files[file_id])
            mine = [i for i, (f, _) in enumerate(places) if f == file_id]
            rows = pa.array([places[i][1] for i in mine], type=pa.int64())
            parts.append(self._tables[file_id].take(rows))
            order.extend(mine)
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        back = np.empty(len(order), dtype=np.int64)
        back[np.asarray(order)] = np.arange(len(order))
        return table.take(pa.array(back)).drop_columns([KEY_COLUMN])


def _is_key(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def inputs_path(root, key: str) -> Path:
    """Where the rows of a streamed shard with content key `key` are kept."""
    return (Path(root) if root is not None else default_root()) / "inputs" / f"{key}.arrow"
