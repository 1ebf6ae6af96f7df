"""Scorers: picklable callables for `Dataset.map(batched=True)` that add columns (embeddings, quality, ...).

Every scorer is a `Scorer` (`hf_diverse.scorers.base`): plain constructor arguments, the model loaded on the first
call, a `datasets` fingerprint that ignores the loaded model. A new scorer implements `score_batch` (and usually
`load_model` and `output_features`).
"""

from .adg import AnswerDivergenceScorer
from .base import Scorer
from .embedding import EmbeddingScorer
from .quality import LMQualityScorer, RewardModelScorer
from .tag_categories import TagCategories, fit_tag_categories, normalize_tags
from .tags import TagScorer
from .tokens import TokenStatsScorer

__all__ = [
    "AnswerDivergenceScorer",
    "EmbeddingScorer",
    "LMQualityScorer",
    "RewardModelScorer",
    "Scorer",
    "TagCategories",
    "TagScorer",
    "TokenStatsScorer",
    "fit_tag_categories",
    "normalize_tags",
]
