"""`score`: add a scorer's columns to a dataset so that a crash costs at most one batch and no row is scored twice.

What it does, for a `Dataset` (an `IterableDataset` and the dicts of splits are below):

1. The key of every row: a digest of its content in the columns the scorer reads (`Scorer.input_columns`).
2. The rows are cut into shards of `shard_size` consecutive rows, each named by its rows' keys.
3. A shard whose finished file is in the store is skipped. An unfinished one resumes after its last finished batch;
   rows the store already holds for this scorer (same content, same configuration: computed by any earlier call,
   from Python, the CLI or the Space) are copied; the rest are scored, batch by batch, each batch written atomically.
4. With `num_proc`, shards go to worker processes; with `rank` / `world_size` (several processes or machines sharing
   the store's folder) each takes its share of the shards, then helps with the shards still unfinished.
5. The result is the dataset with the scorer's columns, read from the shard files (memory-mapped), equal to
   `dataset.map(scorer, batched=True, batch_size=batch_size)`.
"""

import os
import time

from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, concatenate_datasets

from ..errors import InvalidParameterError
from ..provenance import get_provenance, set_provenance
from ..scorers.adg import AnswerDivergenceScorer
from ..scorers.base import Scorer, columns_to_table
from ..scorers.embedding import EmbeddingScorer
from ..utils.logging import get_logger
from ..utils.progress import tqdm
from .keys import row_keys, shard_key
from .shards import Counts, Shard, ShardJob, run_in_workers
from .store import ScoreStore, inputs_path, write_table

logger = get_logger(__name__)

KEY_CHUNK_ROWS = 10_000
DEFAULT_SHARD_ROWS = 4096


def score(
    dataset,
    scorer,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    shard_size: int | None = None,
    batch_size: int = 256,
    num_proc: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    reuse: bool = True,
    show_progress: bool = True,
    desc: str | None = None,
):
    """Add `scorer`'s columns to `dataset`, resumably: finished shards and batches are kept on disk and skipped.

    Args:
        dataset (`Dataset`, `IterableDataset`, `DatasetDict` or `IterableDatasetDict`): the rows. A streamed dataset
            is scored shard by shard into an on-disk `Dataset` (its rows are kept in the store too); a dict of splits
            is scored split by split.
        scorer (`Scorer`): any scorer (or a `map(batched=True)` callable). Its results are keyed by its
            configuration and model, and by each row's content.
        checkpoint_dir (`str`, *optional*): the store's folder; default `$HF_DIVERSE_CACHE/scores`, the one every
            entry point (Python, CLI, Space) looks in. Use a shared folder for several machines.
        shard_size (`int`, *optional*): rows per finished file, a multiple of `batch_size` (rounded up, with a
            warning, when it is not); default the first multiple of `batch_size` from `DEFAULT_SHARD_ROWS` (4096).
        batch_size (`int`, defaults to 256): rows per scorer call; each batch is written before the next starts, so
            a crash loses at most one batch per process.
        num_proc (`int`, *optional*): worker processes (rank r runs on `cuda:{r % n_gpus}`, as `map(with_rank=True)`).
            Not for streamed datasets.
        rank (`int`, *optional*), world_size (`int`, *optional*): this process's share of the shards when several
            processes score the same dataset into one store (shard i goes to rank `i % world_size`); a rank done with
            its share scores the shards still unfinished (last first) and every rank returns the whole result.
            Defaults from `torch.distributed` when it is initialised.
        reuse (`bool`, defaults to `True`): copy the stored results of rows seen before (same content, same scorer
            configuration). `False` still resumes, but scores every row of an unfinished shard.
        show_progress (`bool`, defaults to `True`): a progress bar over rows, starting at the rows already done.
        desc (`str`, *optional*): the progress bar's label.

    Returns:
        `Dataset` (a `DatasetDict` for a dict of splits): the rows with the scorer's columns, memory-mapped from the
        store (`save_to_disk` it to keep it elsewhere). `get_provenance(result)["scoring"]` records the scorer, the
        store folder and how many rows were computed, re-used or resumed.

    Example:
    ```py
    >>> from hf_diverse import EmbeddingScorer, score
    >>> pool = Dataset.from_dict({"prompt": ["Name a prime", "Write a haiku", "Add 2+2."], "response": ["7", "", "4"]})
    >>> scored = score(pool, EmbeddingScorer(), checkpoint_dir="scores/", shard_size=2, batch_size=1)
    >>> scored.column_names, len(scored)
    (['prompt', 'response', 'embedding'], 3)
    >>> again = score(pool.select([2, 0]), EmbeddingScorer(), checkpoint_dir="scores/")  # found again, not computed
    >>> get_provenance(again)["scoring"]["EmbeddingScorer"]["rows"]
    {'computed': 0, 'finished': 0, 'resumed': 0, 'reused': 2}
    >>> scored = score(load_dataset("HuggingFaceH4/ultrachat_200k", split="train_sft", streaming=True),
    ...                EmbeddingScorer(), checkpoint_dir="scores/")  # doctest: +SKIP
    ```
    """
    if isinstance(dataset, DatasetDict | IterableDatasetDict):
        return DatasetDict(
            {
                name: score(
                    split, scorer, checkpoint_dir=checkpoint_dir, shard_size=shard_size, batch_size=batch_size,
                    num_proc=num_proc, rank=rank, world_size=world_size, reuse=reuse, show_progress=show_progress,
                    desc=f"{desc or _label(scorer)} [{name}]",
                )
                for name, split in dataset.items()
            }
        )  # fmt: skip
    _check_arguments(dataset, batch_size if shard_size is None else shard_size, batch_size, num_proc)
    rank, world_size = _ranks(rank, world_size)
    if shard_size is None:
        shard_size = -(-DEFAULT_SHARD_ROWS // batch_size) * batch_size
    elif shard_size % batch_size:
        rounded = -(-shard_size // batch_size) * batch_size
        logger.warning("shard_size=%d is not a multiple of batch_size=%d: using %d.", shard_size, batch_size, rounded)
        shard_size = rounded
    store = ScoreStore(checkpoint_dir, scorer).prepare()
    t0 = time.perf_counter()
    if isinstance(dataset, IterableDataset):
        if num_proc not in (None, 1) or world_size > 1:
            raise InvalidParameterError("A streamed (Iterable) dataset is scored in one process: drop num_proc/rank.")
        result, counts = _score_stream(dataset, scorer, store, shard_size, batch_size, reuse, show_progress, desc)
    else:
        args = (dataset, scorer, store, shard_size, batch_size, reuse, num_proc, rank, world_size)
        result, counts = _score_dataset(*args, show_progress=show_progress, desc=desc)
    record = {
        "store": str(store.folder),
        "scorer_key": store.key,
        "shard_size": shard_size,
        "batch_size": batch_size,
        "rows": vars(counts),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    logger.info("%s over %d rows: %s (store %s).", _label(scorer), len(result), vars(counts), store.folder)
    return _with_provenance(result, dataset, scorer, record)


def _check_arguments(dataset, shard_size, batch_size, num_proc) -> None:
    if not isinstance(dataset, Dataset | IterableDataset):
        raise InvalidParameterError(
            "`dataset` must be a datasets Dataset, IterableDataset, DatasetDict or IterableDatasetDict, "
            f"got {type(dataset).__name__}."
        )
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}.")
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise InvalidParameterError(f"num_proc must be a positive integer or None, got {num_proc!r}.")


def _ranks(rank, world_size) -> tuple[int, int]:
    """`(rank, world_size)`: as given, else `torch.distributed`'s when initialised, else `(0, 1)`."""
    if rank is None and world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise InvalidParameterError(f"Pass both rank and world_size (got rank={rank}, world_size={world_size}).")
    if not 0 <= rank < world_size:
        raise InvalidParameterError(f"rank must be in [0, world_size={world_size}), got {rank}.")
    return rank, world_size


def _label(scorer) -> str:
    return f"Scoring ({type(scorer).__name__})"


def _input_columns(scorer, column_names: list[str]) -> list[str]:
    return scorer.input_columns(column_names) if isinstance(scorer, Scorer) else list(column_names)


# --- a Dataset ---------------------------------------------------------------------------------------------------
def _dataset_shards(dataset: Dataset, scorer, shard_size: int) -> list[Shard]:
    """The shards of `dataset` with their row keys (computed from the columns the scorer reads, in chunks)."""
    source = dataset.with_format(None).select_columns(_input_columns(scorer, dataset.column_names))
    keys: list[bytes] = []
    for start in range(0, len(source), KEY_CHUNK_ROWS):
        keys.extend(row_keys(source[start : start + KEY_CHUNK_ROWS], source.column_names))
    shards = []
    for index, start in enumerate(range(0, len(dataset), shard_size)):
        stop = min(start + shard_size, len(dataset))
        shards.append(Shard(index, start, stop, shard_key(keys[start:stop]), keys[start:stop]))
    return shards


def _score_dataset(dataset, scorer, store, shard_size, batch_size, reuse, num_proc, rank, world_size, **bar_args):
    if len(dataset) == 0:  # nothing to store: `map` gives the empty columns with their types
        return dataset.map(scorer, batched=True, features=_features(scorer, dataset)), Counts()
    shards = _dataset_shards(dataset, scorer, shard_size)
    counts = Counts()
    todo = []
    for shard in shards:
        if store.finished(shard.key):
            store.drop_partial(shard.key)  # a run killed between merging the batches and removing them
            counts.finished += shard.n_rows
        elif shard.index % world_size == rank:
            todo.append(shard)
    started = sum(store.rows_in_batches(s.key) for s in shards if not store.finished(s.key))
    with _bar(len(dataset), counts.finished + started, scorer, **bar_args) as bar:
        job = ShardJob(scorer, store, dataset, batch_size, reuse)
        if num_proc is not None and num_proc > 1 and len(todo) > 1:
            counts.add(run_in_workers(job, todo, min(num_proc, len(todo)), rank * num_proc, bar))
        else:
            for shard in todo:
                counts.add(job.run_shard(shard, rank if world_size > 1 else None, report=bar.update))
        counts.add(_finish_the_rest(job, shards, rank if world_size > 1 else None, bar))
    outputs = concatenate_datasets([store.read_shard(s.key) for s in shards])
    return _join(dataset, outputs), counts


def _finish_the_rest(job: ShardJob, shards: list[Shard], rank, bar) -> Counts:
    """Score the shards no rank has finished yet, last first (each rank takes its own first to last): a rank that is
    done helps the others instead of waiting, and a rank that died or a store the ranks do not share costs time, not
    a hang. Two processes on one shard write the same batches; whichever finishes it first, the other stops."""
    counts = Counts()
    for shard in reversed(shards):
        if not job.store.finished(shard.key):
            counts.add(job.run_shard(shard, rank, report=bar.update))
    return counts


def _join(dataset: Dataset, outputs: Dataset) -> Dataset:
    """`dataset` with the columns of `outputs` (same rows), in `Dataset.map`'s column order and format."""
    base = dataset.with_format(None)
    base = base.remove_columns([c for c in outputs.column_names if c in base.column_names])
    if base._indices is not None:  # else `concatenate_datasets` flattens both, writing a copy of the scores
        base = base.flatten_indices()
    joined = concatenate_datasets([base, outputs], axis=1)
    order = dataset.column_names + [c for c in outputs.column_names if c not in dataset.column_names]
    joined = joined.select_columns(order)
    joined.info.description = dataset.info.description
    fmt = dataset.format
    if fmt["type"] is not None:
        joined = joined.with_format(fmt["type"], **fmt["format_kwargs"])
    return joined


# --- an IterableDataset ------------------------------------------------------------------------------------------
def _score_stream(stream, scorer, store, shard_size, batch_size, reuse, show_progress, desc):
    """Score a streamed dataset shard by shard; each shard's rows and results are kept in the store."""
    features, parts, counts = stream.features, [], Counts()
    total = _known_length(stream)
    with _bar(total, 0, scorer, show_progress=show_progress, desc=desc) as bar:
        start = 0
        for index, rows in enumerate(stream.with_format(None).iter(batch_size=shard_size)):
            n = len(next(iter(rows.values())))
            keys = row_keys(rows, _input_columns(scorer, list(rows)))
            shard = Shard(index, start, start + n, shard_key(keys), keys)
            table = columns_to_table(rows, features)
            features = features or Features.from_arrow_schema(table.schema)  # later shards keep the first's types
            where = inputs_path(store.root, shard_key(row_keys(rows, list(rows))))
            if not where.exists():
                write_table(table, where)
            if store.finished(shard.key):
                counts.finished += n
                bar.update(n)
            else:
                bar.update(store.rows_in_batches(shard.key))
                counts.add(ShardJob(scorer, store, rows, batch_size, reuse).run_shard(shard, None, bar.update))
            parts.append(_join(Dataset.from_file(str(where)), store.read_shard(shard.key)))
            start += n
    if not parts:
        raise InvalidParameterError("The streamed dataset has no rows: nothing to score.")
    return concatenate_datasets(parts), counts


def _known_length(stream: IterableDataset) -> int | None:
    splits = getattr(stream.info, "splits", None) or {}
    split = getattr(stream, "split", None)
    return splits[split].num_examples if split in splits and splits[split].num_examples else None


# --- shared ------------------------------------------------------------------------------------------------------
def _features(scorer, dataset: Dataset):
    return scorer.features(dataset) if isinstance(scorer, Scorer) and scorer.output_features() else None


def _bar(total, initial: int, scorer, show_progress: bool = True, desc: str | None = None):
    return tqdm(
        total=total, initial=initial, unit="rows", desc=desc or _label(scorer), disable=not show_progress, leave=False
    )


def model_role(scorer) -> str:
    """The key of the scorer's model in a provenance record's `models`: `embedding` and `lm` as `select_diverse`
    records them, else the scorer's class name."""
    if isinstance(scorer, EmbeddingScorer):
        return "embedding" if scorer.output_column == "embedding" else scorer.output_column
    if isinstance(scorer, AnswerDivergenceScorer):
        return "lm"
    return type(scorer).__name__


def _with_provenance(result: Dataset, source, scorer, scoring: dict) -> Dataset:
    """`result` with the scorer's model under `models` and this run under `scoring` in its provenance record."""
    record = dict(get_provenance(result) or get_provenance(source) or {})
    if isinstance(scorer, Scorer):
        record["models"] = {**(record.get("models") or {}), model_role(scorer): scorer.model_info}
    record["scoring"] = {**(record.get("scoring") or {}), type(scorer).__name__: scoring}
    return set_provenance(result, record)
