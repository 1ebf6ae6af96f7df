"""hf_diverse: pick the few thousand instruction-tuning examples worth training on.

Data flow: text views -> scorers (columns) -> selection (indices) -> report/card -> hub / train.
"""

__version__ = "0.1.0"

from .card import render_card
from .data import load_pool, load_source_pool
from .errors import (
    ColumnNotFoundError,
    EmbeddingError,
    EmptyDatasetError,
    HfDiverseError,
    HubError,
    InsufficientMemoryError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
    QualityError,
    TextFormatError,
)
from .facility import facility_location_greedy, facility_location_objective
from .hub import push_curated
from .lineage import trace_source
from .provenance import get_provenance
from .report import DiversityReport, diversity_report
from .scorers import AnswerDivergenceScorer, EmbeddingScorer, LMQualityScorer, RewardModelScorer, TokenStatsScorer
from .selection import (
    METHODS,
    VALID_METHODS,
    AdgConfig,
    ClusterConfig,
    ClustersConfig,
    MethodConfig,
    QditConfig,
    QualityConfig,
    RandomConfig,
    ThresholdConfig,
    TokensConfig,
    diversity_series,
    method_parameters,
    select_diverse,
)
from .textviews import TextView, detect_format
from .train import train_sft
from .utils.logging import set_verbosity
from .utils.progress import disable_progress_bars, enable_progress_bars

__all__ = [
    "METHODS",
    "VALID_METHODS",
    "AdgConfig",
    "AnswerDivergenceScorer",
    "ClusterConfig",
    "ClustersConfig",
    "ColumnNotFoundError",
    "DiversityReport",
    "EmbeddingError",
    "EmbeddingScorer",
    "EmptyDatasetError",
    "HfDiverseError",
    "HubError",
    "InsufficientMemoryError",
    "InvalidParameterError",
    "LMQualityScorer",
    "MethodConfig",
    "MissingDependencyError",
    "ModelLoadError",
    "QditConfig",
    "QualityConfig",
    "QualityError",
    "RandomConfig",
    "RewardModelScorer",
    "TextFormatError",
    "TextView",
    "ThresholdConfig",
    "TokenStatsScorer",
    "TokensConfig",
    "detect_format",
    "disable_progress_bars",
    "diversity_report",
    "diversity_series",
    "enable_progress_bars",
    "facility_location_greedy",
    "facility_location_objective",
    "get_provenance",
    "load_pool",
    "load_source_pool",
    "method_parameters",
    "push_curated",
    "render_card",
    "select_diverse",
    "set_verbosity",
    "trace_source",
    "train_sft",
]
