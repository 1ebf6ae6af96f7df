"""What every selection method receives and returns.

A method is a plain function `select_<name>(ctx: SelectionContext, **params) -> SelectionResult`. The context
gives lazy access to what the method may need (embeddings on the device, quality scores, the dataset, seed);
the result is a ranking (row indices in pick order) plus per-pick gains and the objective reached.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import Dataset

from ..errors import EmbeddingError, QualityError


@dataclass
class SelectionResult:
    """Outcome of a selection method.

    Args:
        indices (`np.ndarray` of int64): selected row indices of the pool, in pick order (rank 0 first).
        gains (`np.ndarray` of float64): the score with which each row was picked (method-specific).
        objective (`dict`): objective values reached (e.g. `facility_location`, `coverage`, `quality_mean`).
        details (`dict`): anything else worth recording in the provenance (strategy that ran, bins, ...).
        columns (`dict[str, list]`): extra per-selected-row columns to add to the subset (aligned with `indices`).
    """

    indices: np.ndarray
    gains: np.ndarray
    objective: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)


@dataclass
class SelectionContext:
    """Lazy access to the inputs of a selection (built by `select_diverse`)."""

    dataset: Dataset
    k: int
    seed: int = 0
    device: torch.device = torch.device("cpu")
    embedding_column: str = "embedding"
    quality_column: str | None = None
    show_progress: bool = True
    # `text_columns` of `select_diverse`, for methods that read text (e.g. `tokens`); `None` = detected format
    text_columns: object = None
    _embeddings: torch.Tensor | None = None
    _quality: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.dataset)

    def embeddings(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The pool's embeddings as an `(N, d)` tensor on `self.device`, validated (finite, one dimension).

        Read from Arrow in chunks straight into `dtype` on the device (`read_embeddings_chunked`), so a float16 /
        bfloat16 request never holds a float32 copy of the pool. A float32 copy already read is converted instead.
        """
        if self._embeddings is None or (self._embeddings.dtype not in (dtype, torch.float32)):
            self._embeddings = read_embeddings_chunked(
                self.dataset, self.embedding_column, device=self.device, dtype=dtype, show_progress=self.show_progress
            )
        return self._embeddings if self._embeddings.dtype == dtype else self._embeddings.to(dtype)

    def quality(self) -> np.ndarray | None:
        """The quality column as float64 (validated finite), or `None` when no quality column was given."""
        if self.quality_column is None:
            return None
        if self._quality is None:
            self._quality = read_quality(self.dataset, self.quality_column)
        return self._quality


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
    >>> x = read_embeddings_chunked(ds, "embedding", device="cuda", dtype=torch.float16)
    ```
    """
    import pyarrow as pa

    from ..utils.progress import tqdm

    if column not in dataset.column_names:
        from ..errors import ColumnNotFoundError

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
    import pyarrow as pa
    import pyarrow.compute as pc

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


def read_quality(dataset: Dataset, column: str) -> np.ndarray:
    """Read a numeric column as float64, raising `QualityError` when missing, non-numeric or non-finite."""
    import pyarrow as pa

    if column not in dataset.column_names:
        from ..errors import ColumnNotFoundError

        numeric = [
            c
            for c, t in zip(dataset.column_names, dataset.data.schema.types, strict=False)
            if pa.types.is_integer(t) or pa.types.is_floating(t)
        ]
        raise ColumnNotFoundError(
            f"Quality column {column!r} not in the dataset. Current columns in the dataset: {dataset.column_names}"
            f" (numeric: {numeric})."
        )
    col = dataset.with_format("arrow")[:][column] if dataset._indices is not None else dataset.data.column(column)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
        raise QualityError(f"Quality column {column!r} has type {col.type}; a numeric column is needed.")
    if col.null_count:
        raise QualityError(f"Quality column {column!r} has {col.null_count} missing (None) values.")
    q = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~np.isfinite(q)
    if bad.any():
        raise QualityError(
            f"Quality column {column!r} has {int(bad.sum())} NaN/inf value(s), "
            f"first at row {int(np.flatnonzero(bad)[0])}."
        )
    return q


def minmax(q: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] over the pool (a constant column becomes all zeros)."""
    lo, hi = float(q.min()), float(q.max())
    return np.zeros_like(q) if hi == lo else (q - lo) / (hi - lo)
