"""hf_diverse: pick the few thousand instruction-tuning examples worth training on.

Data flow: text views -> scorers (columns) -> selection (indices) -> report/card -> hub / train.
"""

import importlib

__version__ = "0.1.0"

# light modules (no Hugging Face stack) are imported at once; the rest on first use, so that the engine,
# `hf_diverse.facility`, imports with torch and numpy alone (a GPU box without `datasets`, benchmarks/gpu_check.sh)
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
from .utils.logging import set_verbosity
from .utils.progress import disable_progress_bars, enable_progress_bars

# public name -> the module that defines it, imported when the name is first read
_LAZY = {
    "render_card": ".card",
    "ComparisonResult": ".compare",
    "score": ".scoring",
    "score_with_ray": ".scoring",
    "compare_methods": ".compare",
    "load_pool": ".data",
    "load_source_pool": ".data",
    "facility_location_greedy": ".facility",
    "facility_location_objective": ".facility",
    "push_curated": ".hub",
    "trace_source": ".lineage",
    "get_provenance": ".provenance",
    "DiversityReport": ".report",
    "diversity_report": ".report",
    "AnswerDivergenceScorer": ".scorers",
    "EmbeddingScorer": ".scorers",
    "LMQualityScorer": ".scorers",
    "RewardModelScorer": ".scorers",
    "TagScorer": ".scorers",
    "normalize_tags": ".scorers",
    "TokenStatsScorer": ".scorers",
    "METHODS": ".selection",
    "VALID_METHODS": ".selection",
    "AdgConfig": ".selection",
    "ClusterConfig": ".selection",
    "ClustersConfig": ".selection",
    "MethodConfig": ".selection",
    "QditConfig": ".selection",
    "QualityConfig": ".selection",
    "RandomConfig": ".selection",
    "TagsConfig": ".selection",
    "ThresholdConfig": ".selection",
    "TokensConfig": ".selection",
    "diversity_series": ".selection",
    "method_parameters": ".selection",
    "select_diverse": ".selection",
    "TextView": ".textviews",
    "detect_format": ".textviews",
    "train_sft": ".train",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# the eager names above, then every lazy one
__all__ = [
    "ColumnNotFoundError",
    "EmbeddingError",
    "EmptyDatasetError",
    "HfDiverseError",
    "HubError",
    "InsufficientMemoryError",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelLoadError",
    "QualityError",
    "TextFormatError",
    "disable_progress_bars",
    "enable_progress_bars",
    "set_verbosity",
    *_LAZY,
]
