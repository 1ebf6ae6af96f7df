"""`hf_diverse.selection.clusters`: the macro-diversity `method="clusters"` and its dial."""

from collections import Counter

import pytest

from hf_diverse import InvalidParameterError, diversity_series, get_provenance, select_diverse
from tests.helpers import blobs


def test_clusters_dial_sets_number_of_clusters_uniformly():
    pool = blobs([80, 60, 50, 10, 3])
    used = []
    for d in (0.0, 0.25, 0.5, 0.75, 1.0):
        s = select_diverse(pool, 60, method="clusters", diversity=d, n_clusters=5, show_progress=False)
        assert len(s) == 60
        counts = Counter(s["blob"])
        assert sorted(Counter(s["selection_cluster"]).values()) == sorted(counts.values())  # k-means found blobs
        used.append(len(counts))
        sizes = {0: 80, 1: 60, 2: 50, 3: 10, 4: 3}
        level = max(counts.values())
        big = [v for b, v in counts.items() if sizes[b] >= level]
        assert max(big) - min(big) <= 1  # uniform where clusters are large enough
        assert all(v == sizes[b] for b, v in counts.items() if sizes[b] < level - 1)  # small ones give everything
    assert used == [1, 2, 3, 4, 5]  # C_min = 1 (the largest blob holds 60), C = 5
    series = diversity_series(pool, 60, n_points=3, method="clusters", n_clusters=5, show_progress=False)
    assert [get_provenance(s)["objective"]["clusters_used"] for s in series] == [1, 3, 5]
    with pytest.raises(InvalidParameterError, match="diversity"):
        select_diverse(pool, 10, method="clusters", diversity=-0.1)
    with pytest.raises(InvalidParameterError, match="clustering"):
        select_diverse(pool, 10, method="clusters", clustering="dbscan")


@pytest.mark.slow
def test_clusters_umap_hdbscan_paper_settings():
    pytest.importorskip("umap")
    pool = blobs([80, 60, 50, 30, 25])
    s = select_diverse(pool, 60, method="clusters", clustering="umap-hdbscan", diversity=1.0, show_progress=False)
    info = get_provenance(s)["details"]["clustering"]
    assert (info["n_neighbors"], info["n_components"], info["min_cluster_size"]) == (15, 5, 20)
    assert info["n_clusters"] == 5 and sorted(Counter(s["blob"]).values()) == [12] * 5
