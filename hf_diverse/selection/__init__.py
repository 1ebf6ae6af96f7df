"""Selection: from scored columns to row indices."""

from .api import VALID_METHODS, method_parameters, resolve_k, select_diverse
from .base import SelectionContext, SelectionResult
from .distributed import greedi
from .facility import facility_location_greedy, facility_location_objective
from .series import diversity_series
from .sparse import build_knn_graph, sparse_qdit

__all__ = [
    "VALID_METHODS",
    "SelectionContext",
    "SelectionResult",
    "diversity_series",
    "facility_location_greedy",
    "facility_location_objective",
    "build_knn_graph",
    "greedi",
    "sparse_qdit",
    "method_parameters",
    "resolve_k",
    "select_diverse",
]
