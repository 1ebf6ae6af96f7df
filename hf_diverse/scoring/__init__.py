"""Scoring at scale: `score` (resumable, re-usable, streamed or split by split) and `score_with_ray` (Ray Data).

`score(dataset, scorer, checkpoint_dir=...)` writes finished shards and batches atomically into a store keyed by
the scorer's configuration and each row's content, so a crash costs at most one batch per process, a second run
skips what is done, and any entry point (Python, CLI, Space) finds rows scored before. `score_with_ray` runs the same
scorers unchanged in `ray.data.Dataset.map_batches` across the machines of a Ray cluster.
"""

from .api import model_role, score
from .keys import row_keys, scorer_key, shard_key
from .ray_data import score_with_ray
from .store import ScoreStore, default_root, store_enabled

__all__ = [
    "ScoreStore",
    "default_root",
    "model_role",
    "row_keys",
    "score",
    "score_with_ray",
    "scorer_key",
    "shard_key",
    "store_enabled",
]
