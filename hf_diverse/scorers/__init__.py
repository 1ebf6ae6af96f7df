"""Scorers: picklable callables for `Dataset.map(batched=True)` that add columns (embeddings, quality, ...)."""

from .embedding import EmbeddingScorer

__all__ = ["EmbeddingScorer"]
