"""`hf_diverse.selection.qdit`: QDIT's kNN-graph strategies, memory guard and scalings through `select_diverse`."""

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse import InvalidParameterError, QditConfig, get_provenance, select_diverse
from hf_diverse.errors import InsufficientMemoryError
from hf_diverse.facility import facility_location_greedy, stored
from hf_diverse.selection.base import SelectionContext
from hf_diverse.selection.qdit_scaling import SCALINGS, clear_ends_cache
from tests.golden_cases import golden_pool
from tests.helpers import clustered, plain_greedy_on

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


# --- scaling (`QditConfig.scaling`) ---------------------------------------------------------------------------------
def naive_greedy(x: np.ndarray, k: int, w: float, bonus: np.ndarray) -> tuple[list[int], float]:
    """Plain greedy on w * d(j|A) + bonus[j] written out in float64 numpy (ties to the lower row); `(picks, d(A))`."""
    return plain_greedy_on(np.maximum(x.astype(np.float64) @ x.astype(np.float64).T, 0.0), k, w, bonus)


def coverage_of(x: np.ndarray, rows) -> float:
    s = np.maximum(x.astype(np.float64) @ x.astype(np.float64)[np.asarray(rows)].T, 0.0)
    return float(s.max(axis=1).sum())


@pytest.fixture
def scored_pool():
    x = clustered(160, d=8, n_clusters=12, seed=3).numpy()
    rng = np.random.default_rng(5)
    reward = rng.normal(size=len(x)) * 2 - 1  # negative values too: "raw" must not care
    return x, Dataset.from_dict({"embedding": x.tolist(), "reward": reward.tolist(), "row": list(range(len(x)))})


@pytest.mark.parametrize("scaling", ["range", "mean", "raw"])
@pytest.mark.parametrize("alpha", [0.3, 0.7])
def test_scalings_pick_what_the_written_out_score_picks(scored_pool, scaling, alpha):
    clear_ends_cache()
    x, ds = scored_pool
    k, n = 15, len(x)
    q = np.array(ds["reward"])
    qs = (q - q.min()) / (q.max() - q.min())
    if scaling == "mean":
        w, b = (1 - alpha) / n, alpha * qs / k
    elif scaling == "raw":
        w, b = 1 - alpha, alpha * q  # the paper's formula, q as given (negative values included)
    else:
        a0, d0 = naive_greedy(x, k, 1.0, np.zeros(n))
        top = np.argsort(-qs, kind="stable")[:k]
        dq, m0, mq = coverage_of(x, top), qs[a0].mean(), qs[top].mean()
        w, b = (1 - alpha) / (d0 - dq), alpha * qs / (k * (mq - m0))
    expected, _ = naive_greedy(x, k, w, b)
    sub = select_diverse(
        ds, k, quality_column="reward", alpha=alpha, scaling=scaling, strategy="lazy", show_progress=False
    )
    assert sub["row"] == expected
    record = get_provenance(sub)
    assert record["parameters"]["scaling"] == scaling
    assert record["details"]["scaling"] == SCALINGS[scaling]
    if scaling == "range":
        ends = record["details"]["range_ends"]
        assert ends["diversity_coverage"] == pytest.approx(d0, rel=1e-5)
        assert ends["quality_coverage"] == pytest.approx(dq, rel=1e-5)
        assert ends["diversity_quality"] == pytest.approx(m0) and ends["quality_quality"] == pytest.approx(mq)
        rows = sub["row"]
        assert record["objective"]["coverage_position"] == pytest.approx((coverage_of(x, rows) - dq) / (d0 - dq))
        assert record["objective"]["quality_position"] == pytest.approx((qs[rows].mean() - m0) / (mq - m0))
    else:
        assert "range_ends" not in record["details"] and "coverage_position" not in record["objective"]


def test_range_sweep_is_monotone_and_the_default_lands_halfway():
    """On the bundled pool (stored MiniLM embeddings, quality = response length): over alpha in {0, 0.1, ..., 1}
    mean quality never falls and coverage never rises by more than greedy's own slack, intermediate alphas lie
    strictly between the ends, and the default alpha = 0.7 lands at least halfway between them on both axes."""
    clear_ends_cache()
    pool = golden_pool().add_column("row", list(range(294)))
    x = np.asarray(pool["embedding"], dtype=np.float64)
    q = np.array(pool["quality"])
    qs = (q - q.min()) / (q.max() - q.min())
    alphas = np.round(np.linspace(0, 1, 11), 1)
    for k in (30, 40):
        covers, means = [], []
        for alpha in alphas:
            sub = select_diverse(pool, k=k, alpha=float(alpha), quality_column="quality", show_progress=False)
            covers.append(coverage_of(x, sub["row"]) / len(x))
            means.append(qs[sub["row"]].mean())
        covers, means = np.array(covers), np.array(means)
        assert np.all(np.diff(means) >= -1e-12), means
        # greedy is not an exact optimiser, so a larger alpha can regain a little coverage (k=30: 1.9% of the range
        # between alpha 0.4 and 0.5); exact maximisers of the weighted sum would be monotone
        span = covers[0] - covers[-1]
        assert np.all(np.diff(covers) <= 0.02 * span), covers
        assert covers[0] > covers[3:8].max() and covers[3:8].min() > covers[-1]
        assert means[0] < means[3:8].min() and means[3:8].max() < means[-1]
        assert len(set(np.round(means, 9))) >= 8
        default = int(np.flatnonzero(alphas == QditConfig().alpha)[0])
        assert (covers[default] - covers[-1]) / span >= 0.5
        assert (means[default] - means[0]) / (means[-1] - means[0]) >= 0.5


def test_mean_scaling_puts_the_default_near_the_quality_end():
    # what the issue measured: with d/N + q~/k the default alpha is nearly quality-only on a real pool
    pool = golden_pool().add_column("row", list(range(294)))
    x = np.asarray(pool["embedding"], dtype=np.float64)
    ends = [select_diverse(pool, k=30, alpha=a, quality_column="quality", show_progress=False)["row"] for a in (0, 1)]
    sub = select_diverse(pool, k=30, alpha=0.7, quality_column="quality", scaling="mean", show_progress=False)
    c0, c1, c = (coverage_of(x, rows) for rows in (*ends, sub["row"]))
    assert (c - c1) / (c0 - c1) < 0.25


def test_range_ends_are_reused_for_the_same_pool_and_k(scored_pool, caplog):
    clear_ends_cache()
    _, ds = scored_pool
    kwargs = dict(quality_column="reward", strategy="lazy", show_progress=False)
    first = get_provenance(select_diverse(ds, 15, alpha=0.5, **kwargs))["details"]["range_ends"]
    with caplog.at_level("INFO", logger="hf_diverse"):
        second = get_provenance(select_diverse(ds, 15, alpha=0.2, **kwargs))["details"]["range_ends"]
    assert first["cached"] is False and second["cached"] is True and "re-using the ends" in caplog.text
    assert {k: v for k, v in first.items() if k != "cached"} == {k: v for k, v in second.items() if k != "cached"}
    other_k = get_provenance(select_diverse(ds, 16, alpha=0.2, **kwargs))["details"]["range_ends"]
    assert other_k["cached"] is False
    # alpha 0 and 1 need no ends
    assert "range_ends" not in get_provenance(select_diverse(ds, 15, alpha=1.0, **kwargs))["details"]


def test_range_falls_back_to_mean_when_a_range_is_empty(caplog):
    x = clustered(60, d=4, seed=1).numpy()
    ds = Dataset.from_dict({"embedding": x.tolist(), "q": [1.0] * 60})  # constant quality: no quality range
    sub = select_diverse(ds, 5, quality_column="q", alpha=0.5, show_progress=False)
    details = get_provenance(sub)["details"]
    assert details["scaling"] == SCALINGS["mean"] and "fell back to 'mean'" in details["notes"][0]
    assert "fell back to 'mean'" in caplog.text


def test_range_with_the_full_knn_graph_and_greedi_equals_lazy(scored_pool):
    clear_ends_cache()
    x, ds = scored_pool
    kwargs = dict(quality_column="reward", alpha=0.6, show_progress=False)
    lazy = select_diverse(ds, 15, strategy="lazy", **kwargs)
    sparse = select_diverse(ds, 15, strategy="sparse", n_neighbors=len(x), knn_cache=False, **kwargs)
    assert sparse["row"] == lazy["row"]
    ends = get_provenance(sparse)["details"]["range_ends"]
    assert ends.pop("knn_cache") == "off"  # knn_cache=False: the graph is built, not stored
    assert ends == get_provenance(lazy)["details"]["range_ends"]
    greedi_ends = get_provenance(select_diverse(ds, 15, strategy="greedi", **kwargs))["details"]["range_ends"]
    q = np.array(ds["reward"])
    top = np.argsort(-q, kind="stable")[:15]
    assert greedi_ends["quality_coverage"] == pytest.approx(coverage_of(x, top), rel=1e-5)


def test_unknown_scaling():
    with pytest.raises(InvalidParameterError, match=r"Unknown scaling 'log'.*\['range', 'mean', 'raw'\]"):
        QditConfig(scaling="log")


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
