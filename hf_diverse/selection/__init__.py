"""Selection: from scored columns to row indices. One module per method, each with its config; the registry maps
names to methods."""

from .adg import AdgConfig
from .api import build_config, resolve_k, select_diverse
from .base import Method, SelectionContext, SelectionResult
from .baselines import QualityConfig, RandomConfig
from .clusters import ClustersConfig
from .config import MethodConfig, Option, option
from .qdit import QditConfig
from .registry import METHODS, VALID_METHODS, get_method, method_parameters
from .series import diversity_series
from .tags import TagsConfig
from .tokens import TokensConfig
from .variants import ClusterConfig, ThresholdConfig

__all__ = [
    "METHODS",
    "VALID_METHODS",
    "AdgConfig",
    "ClusterConfig",
    "ClustersConfig",
    "Method",
    "MethodConfig",
    "Option",
    "QditConfig",
    "QualityConfig",
    "RandomConfig",
    "SelectionContext",
    "SelectionResult",
    "TagsConfig",
    "ThresholdConfig",
    "TokensConfig",
    "build_config",
    "diversity_series",
    "get_method",
    "method_parameters",
    "option",
    "resolve_k",
    "select_diverse",
]
