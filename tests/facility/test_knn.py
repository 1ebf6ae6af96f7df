"""`hf_diverse.facility.knn`: exact, IVF and FAISS neighbours, symmetrisation and the on-disk kNN graph cache."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_diverse import get_provenance, select_diverse
from hf_diverse.facility import build_knn_graph
from hf_diverse.facility.knn import knn_exact, knn_faiss, knn_ivf, symmetrize
from tests.helpers import clustered

pytestmark = pytest.mark.usefixtures("one_thread", "knn_cache_dir")


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


def test_ivf_lists_search_their_own_rows_when_centroids_tie():
    # duplicate rows make equal centroids, whose similarities tie at the top: every list must still search itself
    # (it once probed other, empty lists and divided by zero, or missed its own rows)
    g = torch.Generator().manual_seed(0)
    protos = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=1)
    for x in (protos[:1].repeat(100, 1), protos[torch.arange(120) % 3]):
        values, indices = knn_ivf(x, 5, nlist=8, nprobe=2, seed=0)
        assert bool((indices >= 0).all())  # every row found 5 neighbours
        twins = (x[indices] == x[:, None]).all(dim=2)  # its own duplicates: similarity 1, the nearest there are
        assert bool(twins.all()), int((~twins).sum())


def test_faiss_neighbours():
    pytest.importorskip("faiss")

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
            select_diverse(
                ds, k, quality_column="q", alpha=a, strategy="sparse", n_neighbors=5, scaling="mean",
                show_progress=False,
            )
        )["details"]["knn_cache"]
        for k, a in ((20, 0.7), (40, 0.2))
    ]  # fmt: skip
    assert runs == ["miss", "hit"]
    # scaling="range": the alpha=0 run of the ends builds the graph (m=4 is new), the main run re-uses it
    sub = select_diverse(ds, 20, quality_column="q", alpha=0.5, strategy="sparse", n_neighbors=4, show_progress=False)
    details = get_provenance(sub)["details"]
    assert details["range_ends"]["knn_cache"] == "miss" and details["knn_cache"] == "hit"


def test_bfloat16_search_keeps_exact_values():
    # candidates from bfloat16 products, the top m decided and valued in float32: same neighbours on clustered data
    x = clustered(1200, d=32, n_clusters=20, noise=0.3)
    values, indices = knn_exact(x, 8, block_size=100)
    bf_values, bf_indices = knn_exact(x, 8, block_size=100, search_dtype="bfloat16")
    recall = np.mean([len(set(a) & set(b)) / 8 for a, b in zip(bf_indices.tolist(), indices.tolist(), strict=True)])
    assert recall >= 0.99
    exact = (x[:, None, :] * x[bf_indices]).sum(-1)  # the float32 products of the pairs found
    np.testing.assert_allclose(bf_values.numpy(), exact.numpy(), rtol=1e-5, atol=1e-6)
    # without the float32 refinement the values would carry bfloat16's error
    assert (x.bfloat16() @ x.bfloat16().T).float().sub(x @ x.T).abs().max() > 1e-4
    ivf_values, ivf_indices = knn_ivf(x, 8, nlist=30, nprobe=4, seed=0, search_dtype="bfloat16")
    ref = knn_ivf(x, 8, nlist=30, nprobe=4, seed=0)[1]
    assert np.mean([len(set(a) & set(b)) / 8 for a, b in zip(ivf_indices.tolist(), ref.tolist(), strict=True)]) > 0.99
