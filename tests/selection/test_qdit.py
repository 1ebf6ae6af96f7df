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
    c = select_diverse(ds, 40, seed=2, **kwargs)
    assert a["embedding"] == b["embedding"]
    assert a["embedding"] != c["embedding"]
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


# --- issue 12 -----------------------------------------------------------------------------------------------------
def test_rescaled_rows_give_the_cosine_picks_and_a_coverage_at_most_one(caplog):
    # the issue: rows of a clustered unit-vector pool rescaled by random factors in [0.5, 3] gave 4 of 30 cosine
    # picks and a "coverage" d(A)/N of 1.98
    x = clustered(400, d=16, n_clusters=12, seed=3).numpy()
    scale = np.random.default_rng(0).uniform(0.5, 3.0, size=len(x)).astype(np.float32)
    unit = Dataset.from_dict({"embedding": x.tolist(), "row": list(range(len(x)))})
    scaled = Dataset.from_dict({"embedding": (x * scale[:, None]).tolist(), "row": list(range(len(x)))})
    want = select_diverse(unit, 30, strategy="lazy", show_progress=False)
    got = select_diverse(scaled, 30, strategy="lazy", show_progress=False)
    assert got["row"] == want["row"]
    rec = get_provenance(got)
    assert 0 < rec["objective"]["coverage"] <= 1
    assert rec["objective"]["coverage"] == pytest.approx(get_provenance(want)["objective"]["coverage"], rel=1e-5)
    norms = rec["inputs"]["embeddings"]
    assert norms["norm_min"] == pytest.approx(scale.min(), rel=1e-4)
    assert norms["norm_max"] == pytest.approx(scale.max(), rel=1e-4)
    assert norms["rescaled_rows"] > 350
    assert "not unit-normalised" in caplog.text


def test_exact_strategy_records_only_its_own_parameters():
    ds = Dataset.from_dict({"embedding": clustered(60, d=4).numpy().tolist()})
    params = get_provenance(select_diverse(ds, 5, strategy="lazy", show_progress=False))["parameters"]
    assert params["strategy"] == "lazy"
    for sparse_only in ("n_neighbors", "knn", "nprobe", "epsilon", "embedding_dtype", "knn_cache"):
        assert sparse_only not in params, sparse_only
    sparse = select_diverse(ds, 5, strategy="sparse", knn="exact", knn_cache=False, show_progress=False)
    params = get_provenance(sparse)["parameters"]
    assert params["n_neighbors"] == 32 and params["knn"] == "exact" and "epsilon" not in params
    assert "nprobe" not in params  # only the inverted-file searches probe lists


def test_auto_records_and_logs_the_strategy_that_ran(caplog):
    ds = Dataset.from_dict({"embedding": clustered(400, d=8).numpy().tolist()})
    sub = select_diverse(ds, 10, memory_budget=1000, knn_cache=False, show_progress=False)
    rec = get_provenance(sub)
    assert rec["parameters"]["strategy"] == "sparse"
    assert rec["details"]["strategy_requested"] == "auto" and rec["details"]["exact"] is False
    assert "strategy='auto'" in caplog.text and "'sparse'" in caplog.text and "approximat" in caplog.text
    exact = get_provenance(select_diverse(ds, 10, knn_cache=False, show_progress=False))
    assert exact["parameters"]["strategy"] == exact["details"]["strategy"] != "auto"
    assert "n_neighbors" not in exact["parameters"]


def test_alpha_as_run_is_recorded_without_a_quality_column():
    ds = Dataset.from_dict({"embedding": clustered(60, d=4).numpy().tolist()})
    rec = get_provenance(select_diverse(ds, 5, alpha=0.7, show_progress=False))
    assert rec["parameters"]["alpha"] == 0.0
    assert rec["details"]["alpha_requested"] == 0.7
    assert "alpha=0.0" in rec["reproduce"]["call"] and "alpha=0.7" not in rec["reproduce"]["call"]
