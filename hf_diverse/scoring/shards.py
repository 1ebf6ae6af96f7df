"""Scoring shards: batch by batch into the store, resuming at the last finished batch, re-using stored rows, in this
process or in `num_proc` worker processes.

A shard is a run of consecutive rows with its content key (`keys.shard_key`). `ShardJob.run_shard` scores the rows
its finished batches do not cover yet, one batch at a time: rows whose result the store already holds (same content,
same scorer configuration) are copied, the others go through the scorer, and the batch is written (atomically)
before the next starts. When every batch is written they are merged into the shard's finished file.
"""

import pickle
import queue as queue_module
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import HfDiverseError
from ..scorers.base import Scorer, columns_to_table
from ..utils.logging import get_logger
from .store import KEY_COLUMN, ScoreStore

logger = get_logger(__name__)


class ScoringError(HfDiverseError, RuntimeError):
    """Scoring stopped: a scorer returned a malformed batch, or a worker process died."""


@dataclass
class Shard:
    """Rows `start:stop` of the input, their content keys (`row_keys`) and the shard's key (`shard_key`)."""

    index: int
    start: int
    stop: int
    key: str
    row_keys: list

    @property
    def n_rows(self) -> int:
        return self.stop - self.start


@dataclass
class Counts:
    """Rows of one run: `computed` by the scorer, `reused` from stored shards, `resumed` from finished batches of an
    unfinished shard, `finished` in shards already complete before the run."""

    computed: int = 0
    reused: int = 0
    resumed: int = 0
    finished: int = 0

    def add(self, other: "Counts") -> None:
        for name in ("computed", "reused", "resumed", "finished"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ShardJob:
    """What scoring one shard needs: the scorer, the store, the rows, the batch size, whether to re-use rows.

    Args:
        scorer (`Scorer` or callable): called as `scorer(batch, indices, rank)` (a `Scorer`) or `scorer(batch)`.
        store (`ScoreStore`): where batches and shards go.
        source: a `datasets.Dataset` (rows by index) or a `dict[str, list]` batch (a streamed shard's rows).
        batch_size (`int`): rows per scorer call and per batch file.
        reuse (`bool`): copy the stored result of rows seen before instead of scoring them again.
    """

    def __init__(self, scorer, store: ScoreStore, source, batch_size: int, reuse: bool):
        self.scorer = scorer
        self.store = store
        self.source = source
        self.batch_size = batch_size
        self.reuse = reuse
        self._features = None

    def fresh_copy(self) -> "ShardJob":
        """A copy whose scorer has no loaded model (for a worker process: it loads its own, on its own device)."""
        scorer = pickle.loads(pickle.dumps(self.scorer)) if isinstance(self.scorer, Scorer) else self.scorer
        return ShardJob(scorer, self.store, self.source, self.batch_size, self.reuse)

    def run_shard(self, shard: Shard, rank: int | None = None, report: Callable[[int], None] | None = None) -> Counts:
        """Score the rows of `shard` that its finished batches do not cover, then finish it; returns the counts."""
        counts = Counts()
        pos = self.store.rows_in_batches(shard.key)
        counts.resumed = pos
        while pos < shard.n_rows and not self.store.finished(shard.key):  # (or another process finished it)
            stop = min(pos + self.batch_size, shard.n_rows)
            table, reused = self._score_rows(shard, pos, stop, rank)
            keys = pa.array(shard.row_keys[pos:stop], type=pa.binary())
            table = table.add_column(0, pa.field(KEY_COLUMN, pa.binary()), keys)
            self.store.write_batch(shard.key, pos, stop, table)
            counts.reused += reused
            counts.computed += stop - pos - reused
            if report is not None:
                report(stop - pos)
            pos = stop
        self.store.finish_shard(shard.key, shard.n_rows)
        return counts

    def _score_rows(self, shard: Shard, lo: int, hi: int, rank) -> tuple[pa.Table, int]:
        """The results of rows `lo:hi` of the shard as a table, and how many were copied from the store."""
        keys = shard.row_keys[lo:hi]
        places = self.store.index().lookup(keys) if self.reuse else [None] * len(keys)
        miss = [i for i, p in enumerate(places) if p is None]
        hits = [i for i, p in enumerate(places) if p is not None]
        computed = self._compute(shard, lo, hi, None if len(miss) == len(keys) else miss, rank) if miss else None
        if not hits:
            return computed, 0
        stored = self.store.index().take([places[i] for i in hits])
        if computed is None:
            return stored, len(hits)
        if computed.schema != stored.schema:
            computed = computed.cast(stored.schema)
        where = np.empty(len(keys), dtype=np.int64)
        where[miss] = np.arange(len(miss))
        where[hits] = len(miss) + np.arange(len(hits))
        return pa.concat_tables([computed, stored]).take(pa.array(where)), len(hits)

    def _compute(self, shard: Shard, lo: int, hi: int, subset: list[int] | None, rank) -> pa.Table:
        """Run the scorer on rows `lo:hi` of the shard (only the positions in `subset` when given)."""
        if isinstance(self.source, dict):  # a streamed shard's rows
            picks = range(lo, hi) if subset is None else [lo + i for i in subset]
            batch = {name: [values[i] for i in picks] for name, values in self.source.items()}
            indices = [shard.start + i for i in picks]
        elif subset is None:
            batch, indices = (
                self.source[shard.start + lo : shard.start + hi],
                list(range(shard.start + lo, shard.start + hi)),
            )
        else:
            indices = [shard.start + lo + i for i in subset]
            batch = self.source[indices]
        out = self.scorer(batch, indices, rank) if isinstance(self.scorer, Scorer) else self.scorer(batch)
        n = len(indices)
        if not isinstance(out, dict) or not out:
            raise ScoringError(f"{self.scorer!r} returned {type(out).__name__}, not a dict of columns.")
        bad = {name: len(values) for name, values in out.items() if len(values) != n}
        if bad:
            raise ScoringError(f"{self.scorer!r} returned columns of lengths {bad} for a batch of {n} rows.")
        if self._features is None:
            self._features = self.scorer.output_features() if isinstance(self.scorer, Scorer) else {}
        return columns_to_table(out, self._features)


# --- worker processes ------------------------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(job: ShardJob, progress, counter, first_rank: int) -> None:
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _WORKER.update(job=job.fresh_copy(), progress=progress, rank=first_rank + index)


def _worker_run(shard: Shard) -> Counts:
    return _WORKER["job"].run_shard(shard, _WORKER["rank"], report=_WORKER["progress"].put)


def run_in_workers(job: ShardJob, shards: list[Shard], num_proc: int, first_rank: int, bar) -> Counts:
    """Score `shards` in `num_proc` processes (ranks `first_rank + i`), each taking the next unfinished shard.

    Progress comes back batch by batch. A worker that dies (killed, out of memory) stops the run with a
    `ScoringError`: what it finished is kept, and a new run resumes from there.
    """
    import multiprocess
    import torch

    # a forked child cannot use CUDA once the parent has: start fresh interpreters then (as `datasets` advises)
    ctx = multiprocess.get_context("spawn" if torch.cuda.is_initialized() else None)
    progress, counter = ctx.Queue(), ctx.Value("i", 0)
    counts = Counts()
    with ctx.Pool(num_proc, initializer=_init_worker, initargs=(job, progress, counter, first_rank)) as pool:
        workers = list(pool._pool)
        pending = [pool.apply_async(_worker_run, (shard,)) for shard in shards]
        while pending:
            _drain(progress, bar, timeout=0.2)
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise ScoringError(
                    f"A scoring worker (pid {dead[0].pid}) died with exit code {dead[0].exitcode}. The finished "
                    "batches are kept: run the same call again to resume."
                )
            for result in [r for r in pending if r.ready()]:
                counts.add(result.get())
                pending.remove(result)
        _drain(progress, bar, timeout=0)
    return counts


def _drain(progress, bar, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = progress.get(timeout=max(0.0, deadline - time.monotonic())) if timeout else progress.get_nowait()
        except queue_module.Empty:
            return
        bar.update(rows)
        timeout = 0
