"""`hf_diverse.selection.qdit`: QDIT's kNN-graph strategies and memory guard through `select_diverse`."""

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse import InvalidParameterError, get_provenance, select_diverse
from hf_diverse.errors import InsufficientMemoryError
from hf_diverse.facility import facility_location_greedy, stored
from hf_diverse.selection.base import SelectionContext
from tests.helpers import clustered

pytestmark = pytest.mark.usefixtures("one_thread", "knn_cache_dir")


def test_full_graph_equals_dense_through_select_diverse():
    x = clustered(250, d=16, n_clusters=8)
    ds = Dataset.from_dict({"embedding": x.numpy().tolist(), "q": np.linspace(0, 1, 250)})
    lazy = select_diverse(ds, 30, quality_column="q", strategy="lazy", show_progress=False)
    sparse = select_diverse(ds, 30, quality_column="q", strategy="sparse", n_neighbors=250, show_progress=False)
    assert sparse["selection_rank"] == lazy["selection_rank"]
    np.testing.assert_array_equal(sparse["q"], lazy["q"])
    np.testing.assert_array_equal(sparse["embedding"], lazy["embedding"])
    rec = get_provenance(sparse)
    assert rec["details"]["strategy"] == "sparse" and rec["details"]["exact"] is False
    assert rec["details"]["n_neighbors"] == 250
    dense_objective = get_provenance(lazy)["objective"]["facility_location"]
    assert rec["objective"]["facility_location"] == pytest.approx(dense_objective)


def test_stochastic_is_deterministic_and_labelled():
    x = clustered(2000, d=16)
    ds = Dataset.from_dict({"embedding": x.numpy().tolist()})
    kwargs = dict(strategy="stochastic", n_neighbors=16, knn_cache=False, show_progress=False)
    a = select_diverse(ds, 40, seed=1, **kwargs)
    b = select_diverse(ds, 40, seed=1, **kwargs)
    assert a["embedding"] == b["embedding"]
    details = get_provenance(a)["details"]
    assert details["strategy"] == "stochastic" and details["exact"] is False
    assert "stochastic greedy" in details["approximation"]
    assert details["sample_size"] == int(np.ceil(2000 / 40 * np.log(100)))


def test_dense_too_large_fails_before_allocating(monkeypatch):
    x = clustered(400, d=8)
    ds = Dataset.from_dict({"embedding": x.numpy().tolist()})

    def no_similarity(*args, **kwargs):
        raise AssertionError("the N x N matrix was allocated")

    def no_embeddings(*args, **kwargs):
        raise AssertionError("embeddings were read")

    monkeypatch.setattr(stored, "build_similarity", no_similarity)
    with monkeypatch.context() as patch:
        patch.setattr(SelectionContext, "embeddings", no_embeddings)
        for strategy in ("dense", "lazy", "incremental"):
            with pytest.raises(InsufficientMemoryError, match=r"strategy='sparse'") as err:
                select_diverse(ds, 10, strategy=strategy, memory_budget=400 * 400 * 4 - 1, show_progress=False)
            assert f"strategy={strategy!r}" in str(err.value) and "400x400" in str(err.value)
    with pytest.raises(InsufficientMemoryError, match=r"strategy='sparse'"):
        facility_location_greedy(x, 10, strategy="dense", memory_budget=1000, show_progress=False)
    # auto under the same budget switches to the kNN graph
    sub = select_diverse(ds, 10, memory_budget=1000, knn_cache=False, show_progress=False)
    assert get_provenance(sub)["details"]["strategy"] == "sparse"


def test_bad_parameters():
    ds = Dataset.from_dict({"embedding": clustered(50, d=4).numpy().tolist()})
    with pytest.raises(InvalidParameterError, match="Valid values of strategy.*sparse.*greedi"):
        select_diverse(ds, 5, strategy="spars", show_progress=False)
    with pytest.raises(InvalidParameterError, match="Unknown knn 'annoy'.*ivf"):
        select_diverse(ds, 5, strategy="sparse", knn="annoy", show_progress=False)
    with pytest.raises(InvalidParameterError, match="n_neighbors"):
        select_diverse(ds, 5, strategy="sparse", n_neighbors=0, show_progress=False)
    with pytest.raises(InvalidParameterError, match="embedding_dtype 'int8'"):
        select_diverse(ds, 5, strategy="sparse", embedding_dtype="int8", show_progress=False)
    with pytest.raises(InvalidParameterError, match="epsilon"):
        select_diverse(ds, 5, strategy="stochastic", epsilon=0.0, show_progress=False)
