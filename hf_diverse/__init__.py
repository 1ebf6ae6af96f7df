"""hf_diverse: pick the few thousand instruction-tuning examples worth training on.

Data flow: text views -> scorers (columns) -> selection (indices) -> report/card -> hub / train.
"""

__version__ = "0.1.0"

from .card import render_card
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
from .hub import push_curated
from .provenance import get_provenance
from .report import DiversityReport, diversity_report
from .scorers import AnswerDivergenceScorer, EmbeddingScorer, LMQualityScorer, RewardModelScorer
from .selection import VALID_METHODS, diversity_series, facility_location_greedy, select_diverse
from .textviews import TextView, detect_format
from .train import train_sft
from .utils.logging import set_verbosity
from .utils.progress import disable_progress_bars, enable_progress_bars

__all__ = [
    "VALID_METHODS",
    "AnswerDivergenceScorer",
    "ColumnNotFoundError",
    "DiversityReport",
    "EmbeddingError",
    "EmbeddingScorer",
    "EmptyDatasetError",
    "HfDiverseError",
    "InvalidParameterError",
    "LMQualityScorer",
    "QualityError",
    "RewardModelScorer",
    "TextFormatError",
    "TextView",
    "detect_format",
    "disable_progress_bars",
    "diversity_report",
    "diversity_series",
    "enable_progress_bars",
    "facility_location_greedy",
    "get_provenance",
    "load_pool",
    "push_curated",
    "render_card",
    "select_diverse",
    "set_verbosity",
    "train_sft",
]
