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


def test_clusters_dial_below_the_number_of_clusters_reaches_k_clusters():
    # the case: k = 15 below 21 clusters; 0.75 and 1.0 used to give the same subset (15 clusters each)
    pool = blobs([70] + [40] * 6 + [30] * 7 + [20] * 7, dim=21, spread=0.02)
    subsets = {
        d: select_diverse(pool, 15, method="clusters", diversity=d, n_clusters=21, show_progress=False)
        for d in (0.0, 0.25, 0.5, 0.75, 1.0)
    }
    used = {d: get_provenance(s)["objective"]["clusters_used"] for d, s in subsets.items()}
    # C_min = 1 (the largest cluster holds 70 >= 15), C_max = min(21, k) = 15: c = 1 + round(d * 14), half to even
    assert used == {0.0: 1, 0.25: 5, 0.5: 8, 0.75: 11, 1.0: 15}
    assert len(set(subsets[1.0]["blob"])) == 15 and set(subsets[0.75]["blob"]) < set(subsets[1.0]["blob"])
    assert get_provenance(subsets[1.0])["objective"]["clusters_max"] == 15


@pytest.mark.slow
def test_clusters_umap_hdbscan_paper_settings():
    pytest.importorskip("umap")
    pool = blobs([80, 60, 50, 30, 25])
    s = select_diverse(pool, 60, method="clusters", clustering="umap-hdbscan", diversity=1.0, show_progress=False)
    info = get_provenance(s)["details"]["clustering"]
    assert (info["n_neighbors"], info["n_components"], info["min_cluster_size"]) == (15, 5, 20)
    assert info["n_clusters"] == 5 and sorted(Counter(s["blob"]).values()) == [12] * 5
