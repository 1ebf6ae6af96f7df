"""Small helpers shared by test modules (import them as `from tests.helpers import ...`)."""

import numpy as np
import torch

from hf_diverse.facility import facility_location_greedy, sparse_facility_location_greedy


def qdit_terms(quality, alpha: float, n: int, k: int):
    """QDIT's score as the engine takes it, written out here: w = (1 - alpha) / N, bonus = alpha * q / k."""
    bonus = None if quality is None else alpha * torch.as_tensor(np.asarray(quality), dtype=torch.float64) / k
    return {"bonus": bonus, "diversity_weight": (1.0 - alpha) / n}


def qdit_greedy(x, k, quality=None, alpha=0.0, **kwargs):
    """`facility_location_greedy` with QDIT's score f = (1 - alpha) d(j|A) / N + alpha q(j) / k."""
    return facility_location_greedy(x, k, **qdit_terms(quality, alpha, x.shape[0], k), **kwargs)


def qdit_graph_greedy(graph, k, quality=None, alpha=0.0, **kwargs):
    """`sparse_facility_location_greedy` with QDIT's score."""
    return sparse_facility_location_greedy(graph, k, **qdit_terms(quality, alpha, graph.n, k), **kwargs)
