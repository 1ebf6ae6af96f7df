"""`score_with_ray`: the same scorers, unchanged, across the machines of a Ray cluster with Ray Data.

A `Scorer` called with a `pyarrow.Table` returns the table with its columns added (`hf_diverse.scorers.base`), so it
is a Ray Data callable class as it is: `ray.data.read_parquet(...).map_batches(RayScorer, fn_constructor_args=
(scorer,), batch_format="pyarrow", concurrency=n, num_gpus=1)`. Each actor unpickles the scorer's configuration
and loads its model once, on the GPU Ray gave it. `score_with_ray` does that round trip from a `datasets.Dataset` (or
Parquet files any node can read) to Parquet and back to a `datasets.Dataset`.
"""

import glob
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset

from ..errors import InvalidParameterError, MissingDependencyError
from ..scorers.base import Scorer
from ..utils.logging import get_logger

logger = get_logger(__name__)

ROW_COLUMN = "__hf_diverse_row"
ROWS_PER_FILE = 100_000


class RayScorer:
    """A Ray Data callable class around a scorer: `map_batches(RayScorer, fn_constructor_args=(scorer,),
    batch_format="pyarrow")`. The scorer travels pickled (its configuration only) and loads its model on the
    actor's first batch."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.scorer(batch)


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            "Scoring on Ray needs Ray Data. Install it with `pip install 'hf_diverse[ray]'`."
        ) from e
    return ray


def score_with_ray(
    dataset,
    scorer: Scorer,
    output_dir: str | os.PathLike,
    *,
    batch_size: int = 256,
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    num_blocks: int | None = None,
) -> Dataset:
    """Score `dataset` with `scorer` in a Ray Data pipeline (Parquet in, `map_batches`, Parquet out).

    Ray runs on the cluster `ray.init()` joined (a local one when none was started). For several machines, give
    Parquet files they can all read (a shared folder or object store) and an `output_dir` they can all write.

    Args:
        dataset (`Dataset`, `str` or `list[str]`): the rows, or Parquet file(s) / a folder of them. A `Dataset` is
            written to `output_dir/input/` first, with a row number so the result keeps its order.
        scorer (`Scorer`): any scorer; each actor gets a pickled copy (configuration only) and loads its model once.
        output_dir (`str`): where the scored Parquet files go (`output_dir/scored/`).
        batch_size (`int`, defaults to 256): rows per `map_batches` call.
        concurrency (`int` or `(min, max)`, defaults to 1): scorer actors (one model each).
        num_gpus (`float`, *optional*): GPUs per actor (e.g. 1: Ray pins each actor to its own GPU).
        num_cpus (`float`, *optional*): CPUs per actor (Ray's default: 1). Leave some CPUs free for reading and
            writing: on a 2-CPU machine two actors of 1 CPU each leave none and the pipeline stalls.
        num_blocks (`int`, *optional*): blocks the input is read into (Ray's `override_num_blocks`); for a `Dataset`
            the default gives every actor work (up to 4 blocks per actor, at least one batch each), for Parquet paths
            Ray's own default (one block per file or row group).

    Returns:
        `datasets.Dataset`: the rows with the scorer's columns (typed as `Dataset.map` types them), in input order.

    Example:
    ```py
    >>> import ray
    >>> from hf_diverse import EmbeddingScorer
    >>> ray.init(address="auto")  # a running cluster  # doctest: +SKIP
    >>> scored = score_with_ray(pool, EmbeddingScorer(), "/shared/run1", concurrency=8, num_gpus=1)  # doctest: +SKIP
    ```
    """
    ray = _import_ray()
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
    output_dir = Path(output_dir)
    features = None
    if isinstance(dataset, Dataset):
        features = scorer.features(dataset) if isinstance(scorer, Scorer) else None
        paths = _write_input(dataset, output_dir / "input")
        actors = concurrency if isinstance(concurrency, int) else concurrency[1]
        num_blocks = num_blocks or max(1, min(-(-len(dataset) // batch_size), 4 * actors))
    elif isinstance(dataset, str | os.PathLike | list | tuple):
        paths = [str(p) for p in dataset] if isinstance(dataset, list | tuple) else str(dataset)
    else:
        raise InvalidParameterError(
            f"`dataset` must be a datasets Dataset or Parquet path(s), got {type(dataset).__name__}."
        )
    context = ray.data.DataContext.get_current()
    saved_order = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # the result comes back in input order
    try:
        options = {"num_gpus": num_gpus, "num_cpus": num_cpus}
        source = ray.data.read_parquet(paths, **({"override_num_blocks": num_blocks} if num_blocks else {}))
        scored = source.map_batches(
            RayScorer,
            fn_constructor_args=(scorer,),
            batch_format="pyarrow",
            batch_size=batch_size,
            concurrency=concurrency,
            **{name: value for name, value in options.items() if value is not None},
        )
        scored.write_parquet(str(output_dir / "scored"))
    finally:
        context.execution_options.preserve_order = saved_order
    return _read_output(output_dir / "scored", features)


def _write_input(dataset: Dataset, folder: Path) -> list[str]:
    """`dataset` with a row-number column as Parquet files of at most `ROWS_PER_FILE` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    numbered = dataset.with_format(None).add_column(ROW_COLUMN, np.arange(len(dataset), dtype=np.int64))
    paths = []
    for i, start in enumerate(range(0, len(numbered), ROWS_PER_FILE)):
        path = folder / f"part-{i:05d}.parquet"
        numbered.select(range(start, min(start + ROWS_PER_FILE, len(numbered)))).to_parquet(str(path))
        paths.append(str(path))
    return paths


def _read_output(folder: Path, features) -> Dataset:
    """The scored Parquet files as a `Dataset` in input order, without the row number, typed by `features`."""
    files = sorted(glob.glob(str(folder / "*.parquet")))
    if not files:
        raise InvalidParameterError(f"Ray wrote no Parquet files to {folder}: was the input empty?")
    result = Dataset.from_parquet(files)
    if ROW_COLUMN in result.column_names:
        rows = np.asarray(result.with_format("numpy")[ROW_COLUMN])
        if (np.diff(rows) < 0).any():
            logger.info("Ray returned the rows out of order: sorting them back.")
            result = result.sort(ROW_COLUMN).flatten_indices()
        result = result.remove_columns(ROW_COLUMN)
    if features is not None:
        result = result.cast(features)
    return result
