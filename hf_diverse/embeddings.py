"""Embedding columns: read them (in chunks, validated) and compute them when missing, in one place for selection,
the report, publishing and the Space.

- `read_embeddings_chunked` reads a list-of-floats column straight from Arrow into one preallocated `(N, d)` tensor on
  the device (no Python lists), validating every chunk: one dimension, no missing rows, finite values.
- `compute_embeddings` adds the column with `EmbeddingScorer` through `hf_diverse.scoring.score` (resumable, rows
  embedded before by any entry point found again) and returns the model record for the provenance.
"""

import contextlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset
from datasets.utils import logging as ds_logging

from .errors import ColumnNotFoundError, EmbeddingError
from .scorers.embedding import EmbeddingScorer
from .scoring import score, store_enabled
from .textviews import TextView
from .utils.progress import are_progress_bars_enabled, tqdm


def read_embeddings(dataset: Dataset, column: str) -> torch.Tensor:
    """Read a list-of-floats column into an `(N, d)` float32 tensor straight from Arrow (no Python lists).

    Raises `EmbeddingError` on rows of different lengths, empty vectors or non-finite values.
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
) -> torch.Tensor:
    """Read a list-of-floats column chunk by chunk into one preallocated `(N, d)` tensor of `dtype` on `device`.

    Each chunk is a zero-copy slice of the (memory-mapped) Arrow column, converted to float32, validated, then copied
    into the output; host memory beyond the output is one chunk. Raises the same `EmbeddingError`s as
    `read_embeddings` (global row numbers).

    Args:
        dataset (`datasets.Dataset`): the pool.
        column (`str`): the embedding column.
        device (`torch.device` or `str`, *optional*): where the tensor lives (default CPU).
        dtype (`torch.dtype`, defaults to `torch.float32`): e.g. `torch.float16` / `torch.bfloat16` on GPU.
        rows (array of int, *optional*): read only these rows, in this order (e.g. one GreeDi shard).
        chunk_rows (`int`, defaults to 65536): rows per chunk.
        show_progress (`bool`, defaults to `False`): progress bar over chunks.

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
    for start in tqdm(range(0, n, chunk_rows), desc="Reading embeddings", disable=not show_progress, leave=False):
        stop = min(start + chunk_rows, n)
        if source._indices is None:
            part = source.data.column(column).slice(start, stop - start)
        else:
            part = source.with_format("arrow")[start:stop][column]
        arr = part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
        mat = _embedding_chunk(arr, column, start, dim)
        if out is None:
            dim = mat.shape[1]
            out = torch.empty((n, dim), dtype=dtype, device=device)
        out[start:stop].copy_(torch.from_numpy(mat))
    if out is None:
        raise EmbeddingError(f"Embedding column {column!r} has no rows to read.")
    return out


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
    dataset, column, model, text_columns, what, device, batch_size, num_proc, show_progress, checkpoint_dir=None
):
    """`(dataset with the embedding column, model record)`, computed with `EmbeddingScorer`.

    Through `hf_diverse.scoring.score` (resumable, and rows embedded before with the same model and text view, by any
    entry point, are found again in the store at `checkpoint_dir`, default `$HF_DIVERSE_CACHE/scores`); with
    `HF_DIVERSE_SCORE_CACHE=0` and no `checkpoint_dir`, a plain `Dataset.map` (cached by `datasets`).
    """
    TextView.for_columns(dataset.column_names, text_columns=text_columns)  # fail before loading the model
    scorer = EmbeddingScorer(
        model=model, what=what, text_columns=text_columns, output_column=column, device=device, batch_size=batch_size
    )
    if checkpoint_dir is not None or store_enabled():
        shown = show_progress and are_progress_bars_enabled()
        embedded = score(
            dataset,
            scorer,
            checkpoint_dir=checkpoint_dir,
            batch_size=max(batch_size, 256),
            num_proc=num_proc,
            show_progress=shown,
            desc="Embedding",
        )
        return embedded, scorer.model_info
    kwargs = dict(
        batched=True,
        batch_size=max(batch_size, 256),
        with_indices=True,
        features=scorer.features(dataset),
        num_proc=num_proc,
        desc="Embedding",
    )
    with datasets_progress(show_progress):
        return dataset.map(scorer, **kwargs), scorer.model_info


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
