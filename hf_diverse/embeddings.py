"""Embedding columns: read them (in chunks, validated, unit-normalised) and compute them when missing, in one place
for selection, the report, publishing and the Space.

- `read_embeddings_chunked` reads a list-of-floats column straight from Arrow into one preallocated `(N, d)` tensor on
  the device (no Python lists), validating every chunk: one dimension, no missing rows, finite values, no zero
  vector. Rows are L2-normalised where they are read: every method, the report and the plots compute cosines, and a
  column that is not unit length (`SentenceTransformer.encode` does not normalise by default) would otherwise weigh
  long vectors more. A row whose norm is within `NORM_TOLERANCE` of 1 is kept as it is (normalising a unit column is
  the identity, bit for bit); any other row is rescaled, with a warning naming the column and its norm spread, and
  the spread goes to `stats` (which `select_diverse` records in the provenance).
- `compute_embeddings` adds the column with `EmbeddingScorer`, counting the texts longer than the encoder's limit
  first, through `hf_diverse.scoring.score` (resumable, and rows embedded before by any entry point found again), and
  returns the model record for the provenance.
- `embedding_column_info` reads the model record `EmbeddingScorer.features` writes into the column's feature, so an
  embedding column made before `select_diverse` keeps its model in the lineage.
"""

import contextlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset
from datasets.utils import logging as ds_logging

from .errors import ColumnNotFoundError, EmbeddingError
from .facility.objective import NORM_TOLERANCE
from .scorers.embedding import EmbeddingScorer, feature_model_info
from .scoring import score, store_enabled
from .textviews import TextView
from .utils.logging import get_logger
from .utils.progress import are_progress_bars_enabled, tqdm

logger = get_logger(__name__)


def read_embeddings(dataset: Dataset, column: str) -> torch.Tensor:
    """Read a list-of-floats column into an `(N, d)` float32 tensor of unit rows straight from Arrow (no Python lists).

    Raises `EmbeddingError` on rows of different lengths, empty or zero vectors or non-finite values.
    """
    return read_embeddings_chunked(dataset, column)


def read_embeddings_chunked(
    dataset: Dataset,
    column: str,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    rows=None,
    chunk_rows: int = 65536,
    show_progress: bool = False,
    normalize: bool = True,
    stats: dict | None = None,
) -> torch.Tensor:
    """Read a list-of-floats column chunk by chunk into one preallocated `(N, d)` tensor of `dtype` on `device`.

    Each chunk is a zero-copy slice of the (memory-mapped) Arrow column, converted to float32, validated, normalised,
    then copied into the output; host memory beyond the output is one chunk. Raises the same `EmbeddingError`s as
    `read_embeddings` (global row numbers).

    Args:
        dataset (`datasets.Dataset`): the pool.
        column (`str`): the embedding column.
        device (`torch.device` or `str`, *optional*): where the tensor lives (default CPU).
        dtype (`torch.dtype`, defaults to `torch.float32`): e.g. `torch.float16` / `torch.bfloat16` on GPU.
        rows (array of int, *optional*): read only these rows, in this order (e.g. one GreeDi shard).
        chunk_rows (`int`, defaults to 65536): rows per chunk.
        show_progress (`bool`, defaults to `False`): progress bar over chunks.
        normalize (`bool`, defaults to `True`): L2-normalise the rows whose norm is off 1 by more than
            `NORM_TOLERANCE` (with a warning) and refuse zero vectors; `False` reads the values as stored.
        stats (`dict`, *optional*): filled with `column`, `rows`, `norm_min`, `norm_max`, `rescaled_rows` and
            `tolerance` (the norms before normalising).

    Example:
    ```py
    >>> x = read_embeddings_chunked(pool, "embedding", dtype=torch.float16)
    >>> x.shape, x.dtype
    (torch.Size([60, 384]), torch.float16)
    >>> x = read_embeddings_chunked(pool, "embedding", device="cuda", dtype=torch.float16)  # doctest: +SKIP
    ```
    """
    if column not in dataset.column_names:
        raise ColumnNotFoundError(
            f"Embedding column {column!r} not in the dataset. Current columns in the dataset: {dataset.column_names}."
        )
    source = dataset.select_columns([column])
    if rows is not None:
        source = source.select(np.asarray(rows, dtype=np.int64))
    n = len(source)
    out, dim = None, None
    norms = _NormStats(column, n)
    for start in tqdm(range(0, n, chunk_rows), desc="Reading embeddings", disable=not show_progress, leave=False):
        stop = min(start + chunk_rows, n)
        if source._indices is None:
            part = source.data.column(column).slice(start, stop - start)
        else:
            part = source.with_format("arrow")[start:stop][column]
        arr = part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
        mat = _embedding_chunk(arr, column, start, dim)
        if normalize:
            norms.normalise(mat, start)
        if out is None:
            dim = mat.shape[1]
            out = torch.empty((n, dim), dtype=dtype, device=device)
        out[start:stop].copy_(torch.from_numpy(mat))
    if out is None:
        raise EmbeddingError(f"Embedding column {column!r} has no rows to read.")
    if normalize:
        norms.report(stats)
    return out


class _NormStats:
    """Row norms seen while reading a column: normalises each chunk in place, then warns and reports once."""

    def __init__(self, column: str, rows: int):
        self.column, self.rows = column, rows
        self.low, self.high, self.rescaled = np.inf, -np.inf, 0

    def normalise(self, mat: np.ndarray, offset: int) -> None:
        norms = np.empty(len(mat), dtype=np.float64)
        for i in range(0, len(mat), 4096):  # float64 norms in slices: no overflow, little extra memory
            block = mat[i : i + 4096].astype(np.float64)
            norms[i : i + 4096] = np.sqrt(np.einsum("ij,ij->i", block, block))
        zero = norms <= 1e-12
        if zero.any():
            row = offset + int(np.flatnonzero(zero)[0])
            raise EmbeddingError(
                f"Row {row} of embedding column {self.column!r} is a zero vector: it has no direction, so no cosine "
                "similarity. Drop the row or embed its text again (an empty text can embed to zero)."
            )
        self.low, self.high = min(self.low, float(norms.min())), max(self.high, float(norms.max()))
        off = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if off.size:
            mat[off] = (mat[off].astype(np.float64) / norms[off, None]).astype(np.float32)
            self.rescaled += int(off.size)

    def report(self, stats: dict | None) -> None:
        if self.rescaled:
            logger.warning(
                "Embedding column %r is not unit-normalised (row norms %.4g to %.4g; %d of %d rows off 1 by more "
                "than %g): those rows were L2-normalised on read, so similarities are cosines.",
                self.column,
                self.low,
                self.high,
                self.rescaled,
                self.rows,
                NORM_TOLERANCE,
            )
        if stats is not None:
            stats.update(
                column=self.column,
                rows=self.rows,
                norm_min=self.low,
                norm_max=self.high,
                rescaled_rows=self.rescaled,
                tolerance=NORM_TOLERANCE,
            )


def embedding_column_info(dataset: Dataset, column: str) -> dict | None:
    """The model record an `EmbeddingScorer` wrote into the feature of `column` (`None` when there is none).

    It travels with the column through `map`, `select`, `save_to_disk` / `load_from_disk` and Parquet files.

    Example:
    ```py
    >>> embedding_column_info(pool, "embedding")["name"]  # `pool` was embedded with `EmbeddingScorer`
    'sentence-transformers/all-MiniLM-L6-v2'
    ```
    """
    if column not in dataset.column_names:
        return None
    return feature_model_info(dataset.features[column])


def _embedding_chunk(arr, column: str, offset: int, dim: int | None) -> np.ndarray:
    """Validate one Arrow chunk of list-of-floats rows and return it as a writable float32 `(rows, d)` array."""
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type)):
        raise EmbeddingError(f"Column {column!r} has type {arr.type}, expected a list of floats per row.")
    if arr.null_count:
        bad = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise EmbeddingError(f"Row {offset + bad} of embedding column {column!r} is None.")
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        lengths = np.full(n, arr.type.list_size)
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    ref = int(lengths[0]) if dim is None else dim
    if (lengths != ref).any():
        bad = int(np.flatnonzero(lengths != ref)[0])
        raise EmbeddingError(
            f"Embedding column {column!r} has vectors of different lengths: row 0 has {ref}, "
            f"row {offset + bad} has {int(lengths[bad])}."
        )
    if ref == 0:
        raise EmbeddingError(f"Embedding column {column!r} holds empty vectors.")
    values = arr.flatten().to_numpy(zero_copy_only=False)  # flatten honours slice offsets
    mat = np.require(values.reshape(n, ref), dtype=np.float32, requirements=["C", "W"])
    finite = np.isfinite(mat).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise EmbeddingError(f"Row {offset + bad} of embedding column {column!r} has NaN or inf values.")
    return mat


def compute_embeddings(
    dataset,
    column,
    model,
    text_columns,
    what,
    device,
    batch_size,
    num_proc,
    show_progress,
    turns: str = "first",
    max_seq_length: int | None = None,
    long_text: str = "truncate",
    checkpoint_dir=None,
):
    """Add `column` to `dataset` with `EmbeddingScorer`.

    The texts longer than the encoder's limit are counted first, over the whole dataset, and logged with their count
    and fraction (`long_text="truncate"` cuts them, `"chunks"` embeds them whole). The rows are embedded through
    `hf_diverse.scoring.score` (resumable, and rows embedded before with the same model and settings, by any entry
    point, are found again in the store at `checkpoint_dir`, default `$HF_DIVERSE_CACHE/scores`); with
    `HF_DIVERSE_SCORE_CACHE=0` and no `checkpoint_dir`, one plain `Dataset.map` (cached by `datasets`).

    Returns:
        `(dataset, model_info)`: `model_info` is the scorer's model record plus `long_texts`, the count.
    """
    TextView.for_columns(dataset.column_names, text_columns=text_columns, turns=turns)  # fail before the model
    scorer = EmbeddingScorer(
        model=model,
        what=what,
        text_columns=text_columns,
        output_column=column,
        device=device,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        long_text=long_text,
        turns=turns,
    )
    long_texts = scorer.long_text_stats(dataset, show_progress=show_progress)
    if long_texts["count"]:
        logger.warning(
            "%d of %d texts (%.1f%%) are longer than the encoder's %d-token limit (longest: %d tokens); %s",
            long_texts["count"],
            long_texts["rows"],
            100 * long_texts["fraction"],
            long_texts["limit"],
            long_texts["longest_tokens"],
            "each is embedded whole, as the mean of its windows (long_text='chunks')."
            if long_text == "chunks"
            else "only their beginning is embedded. Pass long_text='chunks' to embed them whole, or a larger "
            "max_seq_length if the model allows it.",
        )
    scorer.quiet_long_texts()  # counted over the whole pool just above: no per-batch warning
    if checkpoint_dir is not None or store_enabled():
        embedded = score(
            dataset,
            scorer,
            checkpoint_dir=checkpoint_dir,
            batch_size=max(batch_size, 256),
            num_proc=num_proc,
            show_progress=show_progress and are_progress_bars_enabled(),
            desc="Embedding",
        )
        return embedded, {**scorer.model_info, "long_texts": long_texts}
    kwargs = dict(
        batched=True,
        batch_size=max(batch_size, 256),
        with_indices=True,
        features=scorer.features(dataset),
        num_proc=num_proc,
        desc="Embedding",
    )
    with datasets_progress(show_progress):
        embedded = dataset.map(scorer, **kwargs)
    return embedded, {**scorer.model_info, "long_texts": long_texts}


@contextlib.contextmanager
def datasets_progress(enabled: bool):
    """Show or hide `datasets`' own progress bars (map, flatten) for the duration of the block."""
    was_enabled = ds_logging.is_progress_bar_enabled()
    if not (enabled and are_progress_bars_enabled()):
        ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()
