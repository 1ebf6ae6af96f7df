"""`hf_diverse.report.embedding_metrics`: where each set's embeddings come from and the embedding metrics."""

import pytest
import torch

from hf_diverse import metrics as M
from hf_diverse.report import ReportOptions
from hf_diverse.report.embedding_metrics import component_embeddings, embedding_metrics
from hf_diverse.report.sets import collect_sets
from hf_diverse.utils.device import resolve_device
from tests.report.common import K, _views


def test_embedding_stages(pool, subset):
    sets = collect_sets(pool, subset, *_views(pool, subset))
    options = ReportOptions(n_clusters=5)
    emb = component_embeddings(pool, subset, sets, "response", options, resolve_device("cpu"))
    assert emb.sources == {"pool": "column 'response_embedding'", "subset": "column 'response_embedding'"}
    assert emb.pool.shape == (len(pool), 16) and emb.subset.shape == (K, 16) and not emb.notes
    rows = embedding_metrics(emb, sets, n_clusters=5)
    assert rows["pool"]["embedding_distance"] == pytest.approx(M.mean_pairwise_cosine_distance(emb.pool))
    assert rows["pool"]["coverage"] == 1.0 and rows["pool"]["cluster_coverage"] == 1.0
    assert rows["subset"]["coverage"] == pytest.approx(M.facility_location_coverage(emb.pool, indices=sets.match_idx))
    # without columns and without computing: nothing, with a note, and every embedding metric is None
    bare, bare_sub = pool.remove_columns(["response_embedding"]), subset.remove_columns(["response_embedding"])
    none = component_embeddings(
        bare, bare_sub, sets, "response", ReportOptions(compute_embeddings=False), resolve_device("cpu")
    )
    assert none.pool is None and none.sources == {"pool": None} and "compute_embeddings=False" in none.notes[0]
    assert embedding_metrics(none, sets, n_clusters=5)["random"] == dict.fromkeys(
        ("embedding_distance", "coverage", "cluster_coverage")
    )
    # the pool column, the subset linked to pool rows by `source_index`
    matched = component_embeddings(pool, bare_sub, sets, "response", options, resolve_device("cpu"))
    assert matched.sources["subset"] == f"pool rows matched by source_index ({K} of {K})"
    assert torch.equal(matched.subset, emb.pool[torch.from_numpy(sets.match_idx)])
