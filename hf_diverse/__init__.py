"""hf_diverse: pick the few thousand instruction-tuning examples worth training on.

Data flow: text views -> scorers (columns) -> selection (indices) -> report/card -> hub / train.
"""

__version__ = "0.1.0"

from .data import load_pool
from .errors import (
    ColumnNotFoundError,
    EmbeddingError,
    EmptyDatasetError,
    HfDiverseError,
    InvalidParameterError,
    QualityError,
    TextFormatError,
)
from .provenance import get_provenance
from .scorers import EmbeddingScorer
from .selection import VALID_METHODS, facility_location_greedy, select_diverse
from .textviews import TextView, detect_format
from .utils.logging import set_verbosity
from .utils.progress import disable_progress_bars, enable_progress_bars

__all__ = [
    "VALID_METHODS",
    "ColumnNotFoundError",
    "EmbeddingError",
    "EmbeddingScorer",
    "EmptyDatasetError",
    "HfDiverseError",
    "InvalidParameterError",
    "QualityError",
    "TextFormatError",
    "TextView",
    "detect_format",
    "disable_progress_bars",
    "enable_progress_bars",
    "facility_location_greedy",
    "get_provenance",
    "load_pool",
    "select_diverse",
    "set_verbosity",
]
