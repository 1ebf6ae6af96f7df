"""Selection: from scored columns to row indices."""

from .api import VALID_METHODS, method_parameters, resolve_k, select_diverse
from .base import SelectionContext, SelectionResult
from .facility import facility_location_greedy, facility_location_objective

__all__ = [
    "VALID_METHODS",
    "SelectionContext",
    "SelectionResult",
    "facility_location_greedy",
    "facility_location_objective",
    "method_parameters",
    "resolve_k",
    "select_diverse",
]
