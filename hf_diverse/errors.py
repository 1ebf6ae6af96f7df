"""Exceptions raised by hf_diverse.

Every error derives from `HfDiverseError` and from the builtin that describes it best, so callers can catch
either `HfDiverseError` or e.g. `ValueError` (same pattern as `datasets.exceptions`).
"""

import importlib


class HfDiverseError(Exception):
    """Base class of every error raised by hf_diverse."""


class InvalidParameterError(HfDiverseError, ValueError):
    """A parameter has a value outside its valid range or set (k, alpha, method, strategy, ...)."""


class ColumnNotFoundError(HfDiverseError, KeyError):
    """A named column is not in the dataset."""

    def __str__(self):  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class TextFormatError(HfDiverseError, ValueError):
    """No text view could be built from the dataset's columns, or a row has unusable text."""


class EmbeddingError(HfDiverseError, ValueError):
    """An embedding column has the wrong shape or non-finite values."""


class QualityError(HfDiverseError, ValueError):
    """A quality column is missing, non-numeric or holds NaN/inf."""


class EmptyDatasetError(HfDiverseError, ValueError):
    """The pool has no rows."""


class ModelLoadError(HfDiverseError, OSError):
    """A model or tokenizer could not be loaded."""


class MissingDependencyError(HfDiverseError, ImportError):
    """An optional dependency is needed; the message says which extra installs it."""


class HubError(HfDiverseError, RuntimeError):
    """Publishing to the Hugging Face Hub failed; nothing was committed."""


class InsufficientMemoryError(HfDiverseError, MemoryError):
    """The requested strategy would not fit in memory; the message names the alternative."""


def require(module: str, extra: str):
    """Import `module` or raise `MissingDependencyError` telling how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"`{module}` is required for this feature. Install it with `pip install 'hf_diverse[{extra}]'`."
        ) from e
