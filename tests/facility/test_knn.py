"""Sparse (kNN graph) and stochastic facility location, the chunked embedding reader, and the memory guard."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_diverse import EmbeddingError, InvalidParameterError, get_provenance, select_diverse
from hf_diverse.embeddings import read_embeddings, read_embeddings_chunked
from hf_diverse.errors import InsufficientMemoryError
from hf_diverse.facility import build_knn_graph, facility_location_greedy, facility_location_objective, stored
from hf_diverse.facility.graph import _HeapArgmax
from hf_diverse.facility.knn import knn_exact, knn_ivf, symmetrize
from hf_diverse.selection.base import SelectionContext
from tests.helpers import qdit_graph_greedy, qdit_greedy


def clustered(n, d=32, n_clusters=40, noise=0.5, seed=0):
    """Unit rows around `n_clusters` Gaussian centres with log-normal cluster sizes."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    sizes = rng.lognormal(0, 1, n_clusters)
    labels = rng.choice(n_clusters, n, p=sizes / sizes.sum())
    a = centers[labels] + noise * rng.standard_normal((n, d))
    return torch.from_numpy((a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def knn_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DIVERSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "knn"


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_full_graph_equals_dense(alpha):
    # m = N keeps every positive similarity: the sparse objective *is* the dense one, so the ranking must match
    x = clustered(300, d=24, n_clusters=12, noise=0.25)
    q = np.random.default_rng(3).random(300)
    dense = qdit_greedy(x, 40, quality=q, alpha=alpha, strategy="lazy", show_progress=False)
    graph = build_knn_graph(x, 300, knn="exact", cache=False, show_progress=False)
    assert graph.nnz == int((x @ x.T > 0).sum())
    res = qdit_graph_greedy(graph, 40, quality=q, alpha=alpha, show_progress=False)
    np.testing.assert_array_equal(res.indices, dense.indices)
    np.testing.assert_allclose(res.gains, dense.gains, rtol=1e-9)
    assert res.coverage == pytest.approx(dense.coverage, rel=1e-6)


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


def test_small_m_reaches_dense_objective_on_clustered_data():
    x = clustered(3000)
    k = 60
    dense = facility_location_greedy(x, k, strategy="lazy", show_progress=False)
    ratios = {}
    for m, knn in ((32, "exact"), (32, "ivf"), (1, "exact")):
        graph = build_knn_graph(x, m, knn=knn, cache=False, show_progress=False)
        assert graph.nnz <= 2 * 3000 * m  # O(N m), never N^2
        for strategy in ("sparse", "stochastic"):
            res = qdit_graph_greedy(graph, k, strategy=strategy, show_progress=False)
            assert len(np.unique(res.indices)) == k
            ratios[m, knn, strategy] = facility_location_objective(x, res.indices) / dense.coverage
    assert ratios[32, "exact", "sparse"] >= 0.99
    assert ratios[32, "ivf", "sparse"] >= 0.99
    assert ratios[32, "exact", "stochastic"] >= 0.97
    # the bound is not vacuous: a graph with only self-loops (m = 1) sees no diversity at all
    assert ratios[1, "exact", "sparse"] < 0.95


def test_knn_exact_and_ivf_neighbours():
    x = clustered(1500, d=16, n_clusters=20, noise=0.3)
    values, indices = knn_exact(x, 8, block_size=100)
    ref = torch.topk(x @ x.T, 8, dim=1)
    np.testing.assert_array_equal(indices.numpy(), ref.indices.numpy())
    np.testing.assert_allclose(values.numpy(), ref.values.numpy(), rtol=1e-5, atol=1e-6)
    ivf_values, ivf_indices = knn_ivf(x, 8, nlist=30, nprobe=4, seed=0)
    pairs = zip(ivf_indices.tolist(), ref.indices.tolist(), strict=True)
    recall = np.mean([len(set(a) & set(b)) / 8 for a, b in pairs])
    assert recall >= 0.9
    again = knn_ivf(x, 8, nlist=30, nprobe=4, seed=0)
    assert torch.equal(again[1], ivf_indices)  # deterministic for a seed


def test_faiss_neighbours():
    pytest.importorskip("faiss")
    from hf_diverse.facility.knn import knn_faiss

    x = clustered(800, d=16, n_clusters=10)
    values, indices, kind = knn_faiss(x, 6)
    assert kind == "faiss-flat"
    ref = torch.topk(x @ x.T, 6, dim=1)
    np.testing.assert_allclose(values.numpy(), ref.values.numpy(), rtol=1e-4, atol=1e-5)


def test_symmetrize_keeps_union_and_max():
    # rows: 0 -> [0, 1], 1 -> [1, 2], 2 -> [2, 0(negative, dropped)]
    values = torch.tensor([[1.0, 0.5], [1.0, 0.25], [1.0, -0.1]])
    indices = torch.tensor([[0, 1], [1, 2], [2, 0]])
    indptr, cols, vals = symmetrize(values, indices, 3)
    dense = torch.zeros(3, 3)
    for r in range(3):
        dense[r, cols[indptr[r] : indptr[r + 1]].long()] = vals[indptr[r] : indptr[r + 1]]
    expected = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 1.0]])
    assert torch.equal(dense, expected)
    # a pair found in both directions with slightly different values keeps the larger one on both sides
    values = torch.tensor([[1.0, 0.5], [1.0, 0.6]])
    indptr, cols, vals = symmetrize(values, torch.tensor([[0, 1], [1, 0]]), 2)
    assert torch.equal(vals, torch.tensor([1.0, 0.6, 0.6, 1.0])) and indptr.tolist() == [0, 2, 4]


def test_knn_graph_cache(knn_cache_dir):
    x = clustered(500, d=16, n_clusters=10)
    first = build_knn_graph(x, 8, knn="exact", show_progress=False)
    assert first.info["cache"] == "miss"
    second = build_knn_graph(x, 8, knn="exact", show_progress=False)
    assert second.info["cache"] == "hit"
    assert torch.equal(first.indptr, second.indptr) and torch.equal(first.values, second.values)
    assert build_knn_graph(x, 6, knn="exact", show_progress=False).info["cache"] == "miss"  # other m
    y = x.clone()
    y[0] = y[1]
    assert build_knn_graph(y, 8, knn="exact", show_progress=False).info["cache"] == "miss"  # other content
    assert len(list(knn_cache_dir.iterdir())) == 3
    assert not [p for p in knn_cache_dir.parent.rglob("*") if ".tmp-" in p.name]  # atomic writes leave nothing

    # through select_diverse: the first run builds its graph (m=5 is new), another k or alpha re-uses it
    ds = Dataset.from_dict({"embedding": x.numpy().tolist(), "q": np.linspace(0, 1, 500)})
    runs = [
        get_provenance(
            select_diverse(ds, k, quality_column="q", alpha=a, strategy="sparse", n_neighbors=5, show_progress=False)
        )["details"]["knn_cache"]
        for k, a in ((20, 0.7), (40, 0.2))
    ]
    assert runs == ["miss", "hit"]


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


def test_heap_argmax_matches_torch_argmax():
    rng = np.random.default_rng(0)
    score = torch.from_numpy(np.round(rng.random(500), 2))  # many ties
    pick = _HeapArgmax(score)
    for _ in range(200):
        expected = int(torch.argmax(score))
        assert pick() == expected
        score[expected] = -np.inf
        hit = torch.from_numpy(rng.choice(500, 50, replace=False))
        score[hit] = torch.minimum(score[hit], torch.from_numpy(np.round(rng.random(50), 2)))


def test_chunked_reader_matches_whole_read():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((23, 5)).astype(np.float32)
    ds = Dataset.from_dict({"embedding": emb.tolist(), "i": list(range(23))})
    whole = read_embeddings(ds, "embedding")
    assert torch.equal(read_embeddings_chunked(ds, "embedding", chunk_rows=4), whole)
    rows = np.array([22, 3, 7, 0])
    assert torch.equal(read_embeddings_chunked(ds, "embedding", rows=rows, chunk_rows=3), whole[rows])
    shuffled = ds.shuffle(seed=0)  # an indices mapping
    assert torch.equal(
        read_embeddings_chunked(shuffled, "embedding", chunk_rows=5), whole[torch.as_tensor(shuffled["i"])]
    )
    half = read_embeddings_chunked(ds, "embedding", dtype=torch.float16, chunk_rows=6)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), whole, atol=1e-2)
    ragged = Dataset.from_dict({"embedding": [[1.0, 0.0]] * 9 + [[1.0, 0.0, 0.0]]})
    with pytest.raises(EmbeddingError, match="row 0 has 2, row 9 has 3"):
        read_embeddings_chunked(ragged, "embedding", chunk_rows=4)
    nan = Dataset.from_dict({"embedding": [[1.0, 0.0]] * 6 + [[float("nan"), 1.0]]})
    with pytest.raises(EmbeddingError, match="Row 6 .*NaN"):
        read_embeddings_chunked(nan, "embedding", chunk_rows=4)
