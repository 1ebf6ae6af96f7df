"""Blocked exact greedy: the similarity matrix is never stored.

Lazy greedy (`hf_diverse.facility.stored`) asks for the similarity rows of the candidates it re-scores; here they are
recomputed from the embeddings, `max(0, X[rows] X^T)`, a block at a time. Memory O(N d + B N) instead of 4 N^2 bytes,
at the cost of one matrix product per re-scored block. Same picks as the stored strategies.
"""

import torch


def similarity_rows(x: torch.Tensor):
    """A row provider for the greedy loops: `rows -> max(0, X[rows] X^T)` (float32, on `x.device`)."""

    def rows_of(rows: torch.Tensor) -> torch.Tensor:
        return (x[rows] @ x.T).clamp_(min=0)

    return rows_of
