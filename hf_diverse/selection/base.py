"""What every selection method receives, returns and declares.

A method is one module with a config dataclass (`hf_diverse.selection.config.MethodConfig`), a function
`select_<name>(ctx: SelectionContext, config) -> SelectionResult` and a `Method` record naming both, with the text
the CLI, the Space and the card show. The context gives lazy access to what the method may need (embeddings on the
device, quality scores, the dataset, the text view, the seed); the result is a ranking (row indices in pick order)
plus per-pick gains and the objective reached.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset

from ..embeddings import read_embeddings_chunked
from ..errors import ColumnNotFoundError, QualityError


@dataclass
class SelectionResult:
    """Outcome of a selection method.

    Args:
        indices (`np.ndarray` of int64): selected row indices of the pool, in pick order (rank 0 first).
        gains (`np.ndarray` of float64): the score with which each row was picked (method-specific).
        objective (`dict`): objective values reached (e.g. `facility_location`, `coverage`, `quality_mean`).
        details (`dict`): anything else worth recording in the provenance (strategy that ran, bins, ...).
        columns (`dict[str, list]`): extra per-selected-row columns to add to the subset (aligned with `indices`).
        parameters (`dict`, *optional*): the parameters as the method ran with them, when they differ from its config
            (an option forced at run time, `"auto"` resolved, options of a strategy that did not run left out);
            the provenance, the card and the reproduce commands record these. `None`: the config as given.
    """

    indices: np.ndarray
    gains: np.ndarray
    objective: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)
    parameters: dict | None = None


@dataclass(frozen=True)
class Method:
    """A selection method as the registry (`hf_diverse.selection.registry.METHODS`) knows it.

    Args:
        name (`str`): the `method=` value.
        select (`Callable`): `select(ctx, config) -> SelectionResult`.
        config (`type`): its `MethodConfig` subclass (defaults, help, valid values of every option).
        label (`str`): one line for menus and `--help`.
        summary (`str`): what it does, for the dataset card.
        choices (`tuple[str, ...]`): hf_diverse's own decisions where the papers leave a choice open (card).
        needs_embeddings (`bool`): it reads the embedding column (computed by `select_diverse` when missing).
        default_what (`str`): the text view it reads when `what=` is not given.
    """

    name: str
    select: Callable
    config: type
    label: str
    summary: str
    choices: tuple = ()
    needs_embeddings: bool = False
    default_what: str = "instruction"


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
    # the text view the method reads: "instruction", "response" or "both"
    what: str = "instruction"
    # the store costly columns are computed into (`hf_diverse.scoring.score`); `None` is the shared default
    checkpoint_dir: object = None
    # which turns of multi-turn rows make the views (see `hf_diverse.textviews`)
    turns: str = "first"
    # the norms of the embedding column as read (`read_embeddings_chunked(stats=...)`), for the provenance
    embedding_stats: dict = field(default_factory=dict)
    _embeddings: torch.Tensor | None = None
    _quality: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.dataset)

    def embeddings(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The pool's unit-normalised embeddings as an `(N, d)` tensor on `self.device`, validated (finite, one
        dimension, no zero vector); the norms as stored go to `embedding_stats`.

        Read from Arrow in chunks straight into `dtype` on the device (`read_embeddings_chunked`), so a float16 /
        bfloat16 request never holds a float32 copy of the pool. A float32 copy already read is converted instead.
        """
        if self._embeddings is None or (self._embeddings.dtype not in (dtype, torch.float32)):
            self._embeddings = read_embeddings_chunked(
                self.dataset,
                self.embedding_column,
                device=self.device,
                dtype=dtype,
                show_progress=self.show_progress,
                stats=self.embedding_stats,
            )
        return self._embeddings if self._embeddings.dtype == dtype else self._embeddings.to(dtype)

    def quality(self) -> np.ndarray | None:
        """The quality column as float64 (validated finite), or `None` when no quality column was given."""
        if self.quality_column is None:
            return None
        if self._quality is None:
            self._quality = read_quality(self.dataset, self.quality_column)
        return self._quality


def read_quality(dataset: Dataset, column: str) -> np.ndarray:
    """Read a numeric column as float64, raising `QualityError` when missing, non-numeric or non-finite."""

    if column not in dataset.column_names:
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
