"""Scorers: picklable callables for `Dataset.map(batched=True)` that add columns (embeddings, quality, ...)."""

from .adg import AnswerDivergenceScorer
from .embedding import EmbeddingScorer
from .quality import LMQualityScorer, RewardModelScorer
from .tokens import TokenStatsScorer

__all__ = ["AnswerDivergenceScorer", "EmbeddingScorer", "LMQualityScorer", "RewardModelScorer", "TokenStatsScorer"]
