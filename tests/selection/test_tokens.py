"""Macro/micro diversity strategies (`tokens`, `clusters`), the series helper and the QDIT variants."""

import json
from collections import Counter

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from hf_diverse import InvalidParameterError, diversity_series, get_provenance, select_diverse
from hf_diverse.cli import main
from hf_diverse.errors import ModelLoadError
from hf_diverse.metrics import token_entropy
from hf_diverse.quota import equal_quota
from hf_diverse.selection.tokens import band_thresholds
from hf_diverse.tokens import tokenize_texts

K = 40


# --- independent measurement of what the `tokens` method controls ------------------------------------------------
@pytest.fixture(scope="module")
def response_tokens(ifbench):
    """Token ids of every IFBench response (SmolLM2 tokenizer), keyed by response text."""
    responses = list(ifbench["response"])
    ids = tokenize_texts(responses)
    counts = np.bincount(np.concatenate(ids))
    low, high = band_thresholds(int(counts.sum()))
    mid = set(np.flatnonzero((counts >= low) & (counts <= high)).tolist())
    return {"by_text": dict(zip(responses, ids, strict=True)), "mid": mid, "vocab": len(counts)}


def measure(subset, response_tokens):
    """(mid-band coverage, token entropy in bits) of a subset's responses, computed from scratch."""
    ids = [response_tokens["by_text"][r] for r in subset["response"]]
    flat = np.concatenate(ids)
    covered = set(flat.tolist()) & response_tokens["mid"]
    return len(covered) / len(response_tokens["mid"]), token_entropy(np.bincount(flat))


# --- micro (tokens) ------------------------------------------------------------------------------------------------
def test_band_thresholds_rule():
    assert band_thresholds(58_500_000) == (10, 500)  # the paper's pool
    assert band_thresholds(117_000_000) == (20, 1000)
    assert band_thresholds(100_000) == (2, 100)  # floors on a small pool
    assert band_thresholds(100_000, low_threshold=5) == (5, 250)
    with pytest.raises(InvalidParameterError, match="mid band"):
        band_thresholds(100_000, low_threshold=50, high_threshold=10)


def test_tokens_series_sizes_monotone_coverage_and_entropy_above_baselines(ifbench, ifbench_embedded, response_tokens):
    series = diversity_series(ifbench, k=K, n_points=7, show_progress=False)
    assert [len(s) for s in series] == [K] * 7
    assert all(len(set(zip(s["prompt"], s["response"], strict=True))) == K for s in series)  # k distinct rows
    measured = [measure(s, response_tokens) for s in series]
    coverage = [c for c, _ in measured]
    reported = [get_provenance(s)["objective"]["mid_band_coverage"] for s in series]
    np.testing.assert_allclose(coverage, reported)  # the method's own figure matches an independent count
    assert all(a <= b for a, b in zip(coverage, coverage[1:], strict=False)), coverage
    assert coverage[-1] > 2 * coverage[0]  # the dial really moves
    assert [get_provenance(s)["details"]["series"]["diversity"] for s in series] == pytest.approx(np.linspace(0, 1, 7))

    # (c) at diversity=1: coverage and entropy at least those of random subsets and of QDIT at the same k
    top_cov, top_ent = measured[-1]
    for seed in range(3):
        rand_cov, rand_ent = measure(
            select_diverse(ifbench, K, method="random", seed=seed, show_progress=False), response_tokens
        )
        assert top_cov >= rand_cov and top_ent >= rand_ent
    qdit_cov, qdit_ent = measure(
        select_diverse(ifbench_embedded, K, method="qdit", show_progress=False), response_tokens
    )
    assert top_cov >= qdit_cov and top_ent >= qdit_ent


def test_tokens_deterministic_and_exact_k_at_any_diversity(ifbench):
    a = select_diverse(ifbench, 25, method="tokens", diversity=0.3, seed=3, show_progress=False)
    b = select_diverse(ifbench, 25, method="tokens", diversity=0.3, seed=3, show_progress=False)
    assert a["response"] == b["response"] and a["selection_gain"] == b["selection_gain"]
    for d in (0.0, 0.55, 1.0):
        s = select_diverse(ifbench, 25, method="tokens", diversity=d, show_progress=False)
        assert len(s) == 25 and len(set(zip(s["prompt"], s["response"], strict=True))) == 25
    rec = get_provenance(a)
    assert rec["parameters"]["diversity"] == 0.3 and rec["details"]["bands"]["low_threshold"] == 2
    assert rec["models"]["tokenizer"]["name"]
    instr = select_diverse(ifbench, 25, method="tokens", what="instruction", show_progress=False)
    assert get_provenance(instr)["details"]["what"] == "instruction"


def test_tokens_bad_input_clear_errors(ifbench, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"diversity must be in \[0, 1\]"):
        select_diverse(ifbench, 10, method="tokens", diversity=1.5)
    with pytest.raises(InvalidParameterError, match="what"):
        select_diverse(ifbench, 10, method="tokens", what="answer")
    with pytest.raises(ModelLoadError, match="no/such/tokenizer"):
        select_diverse(ifbench, 10, method="tokens", tokenizer=str(tmp_path / "no/such/tokenizer"))
    # every response token occurs once in the pool: no mid band
    tiny = Dataset.from_dict(
        {"prompt": [f"q{i}" for i in range(6)], "response": ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]}
    )
    with pytest.raises(InvalidParameterError, match="no mid-band token types"):
        select_diverse(tiny, 3, method="tokens")
    # the same through the CLI: one-line error, exit 1, nothing written
    tiny.save_to_disk(str(tmp_path / "tiny"))
    for extra in (["--diversity", "2"], ["--tokenizer", str(tmp_path / "missing")], []):
        out = tmp_path / "out"
        code = main(
            [
                "select",
                "--dataset",
                str(tmp_path / "tiny"),
                "--k",
                "3",
                "--method",
                "tokens",
                "--output",
                str(out),
                "--no-progress",
                *extra,
            ]
        )
        assert code == 1 and not out.exists()


# --- clusters (macro) ---------------------------------------------------------------------------------------------
def blobs(sizes, dim=8, seed=0, spread=0.05):
    """Unit vectors in well-separated blobs (one axis each) with a random quality column."""
    rng = np.random.default_rng(seed)
    rows, label = [], []
    for c, size in enumerate(sizes):
        centre = np.zeros(dim)
        centre[c] = 1.0
        pts = centre + spread * rng.standard_normal((size, dim))
        rows.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        label += [c] * size
    emb = np.concatenate(rows).astype(np.float32)
    return Dataset.from_dict({"embedding": emb.tolist(), "blob": label, "quality": rng.random(len(label)).tolist()})


def test_equal_quota_water_filling():
    assert equal_quota(np.array([1, 10, 10]), 8).tolist() == [1, 4, 3]
    assert equal_quota(np.array([1, 10, 10]), 8, tie_scores=np.array([0, 0, 1.0])).tolist() == [1, 3, 4]
    assert equal_quota(np.array([5, 5]), 10).tolist() == [5, 5]
    with pytest.raises(InvalidParameterError):
        equal_quota(np.array([2, 2]), 5)


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


# --- QDIT variants --------------------------------------------------------------------------------------------------
def naive_threshold(emb, quality, k, tau):
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    kept = []
    for i in np.lexsort((np.arange(len(quality)), -quality)):
        if all(emb[i] @ emb[j] <= tau for j in kept):
            kept.append(int(i))
        if len(kept) == k:
            break
    return kept


def test_qdit_threshold_keeps_no_pair_above_tau_and_matches_naive():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.random(300)
    pool = Dataset.from_dict({"embedding": emb.tolist(), "quality": q.tolist(), "row": list(range(300))})
    for block_size in (7, 1024):
        s = select_diverse(
            pool,
            25,
            method="qdit-threshold",
            quality_column="quality",
            tau=0.5,
            block_size=block_size,
            show_progress=False,
        )
        assert s["row"] == naive_threshold(emb, q, 25, 0.5)
        kept = np.array(s["embedding"])
        kept /= np.linalg.norm(kept, axis=1, keepdims=True)
        sim = kept @ kept.T
        assert sim[~np.eye(25, dtype=bool)].max() <= 0.5 + 1e-6
        assert max(s["selection_max_similarity"]) <= 0.5 + 1e-6
    with pytest.raises(InvalidParameterError, match=r"found only \d+ of k=200 .*raise `tau`"):
        select_diverse(pool, 200, method="qdit-threshold", quality_column="quality", tau=0.5)
    with pytest.raises(InvalidParameterError, match="tau"):
        select_diverse(pool, 5, method="qdit-threshold", tau=1.5)
    # no quality column: a seeded random order instead, still pairwise <= tau
    a = select_diverse(pool, 10, method="qdit-threshold", seed=4, show_progress=False)
    assert a["row"] == select_diverse(pool, 10, method="qdit-threshold", seed=4, show_progress=False)["row"]


def test_qdit_cluster_equal_quota_best_quality_first():
    pool = blobs([3, 10, 50, 60, 80], seed=2)
    s = select_diverse(pool, 60, method="qdit-cluster", quality_column="quality", n_clusters=5, show_progress=False)
    counts = Counter(s["blob"])
    assert counts[0] == 3 and counts[1] == 10  # exhausted clusters give all their rows
    assert sorted(counts[b] for b in (2, 3, 4)) in ([15, 16, 16], [16, 16, 15])  # the rest differ by at most one
    q = np.array(pool["quality"])
    blob = np.array(pool["blob"])
    chosen_q = dict(zip(s["quality"], s["blob"], strict=True))
    for b, n_b in counts.items():  # within a cluster: the top-quality rows
        assert sorted(v for v, bb in chosen_q.items() if bb == b) == sorted(np.sort(q[blob == b])[::-1][:n_b])
    rec = get_provenance(s)
    assert rec["objective"]["clusters"] == 5 and rec["parameters"]["n_clusters"] == 5
    # the paper's 100 clusters shrink on a small pool (at most N / 10 and k)
    small = select_diverse(pool, 12, method="qdit-cluster", quality_column="quality", show_progress=False)
    assert get_provenance(small)["details"]["clustering"]["n_clusters"] == 12


# --- CLI ---------------------------------------------------------------------------------------------------------
def test_cli_help_lists_strategy_options(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--diversity",
        "--tau",
        "--what",
        "--tokenizer",
        "--n-clusters",
        "--clustering",
        "tokens",
        "clusters",
        "qdit-threshold",
        "qdit-cluster",
    ):
        assert flag in out


def test_cli_end_to_end_strategies(ifbench_embedded, tmp_path):
    pool_dir = tmp_path / "pool"
    ifbench_embedded.save_to_disk(str(pool_dir))
    runs = {
        "tokens": ["--diversity", "0.5", "--what", "response"],
        "clusters": ["--diversity", "1", "--n-clusters", "4"],
        "qdit-threshold": ["--tau", "0.6"],
        "qdit-cluster": ["--n-clusters", "5"],
    }
    for method, flags in runs.items():
        out = tmp_path / method
        assert (
            main(
                [
                    "select",
                    "--dataset",
                    str(pool_dir),
                    "--k",
                    "15",
                    "--method",
                    method,
                    "--output",
                    str(out),
                    "--no-progress",
                    *flags,
                ]
            )
            == 0
        )
        assert len(load_from_disk(str(out))) == 15
        record = json.loads((out / "provenance.json").read_text())
        assert record["method"] == method
        assert all(record["parameters"][f[2:].replace("-", "_")] is not None for f in flags[::2])


@pytest.mark.slow
def test_clusters_umap_hdbscan_paper_settings():
    pytest.importorskip("umap")
    pool = blobs([80, 60, 50, 30, 25])
    s = select_diverse(pool, 60, method="clusters", clustering="umap-hdbscan", diversity=1.0, show_progress=False)
    info = get_provenance(s)["details"]["clustering"]
    assert (info["n_neighbors"], info["n_components"], info["min_cluster_size"]) == (15, 5, 20)
    assert info["n_clusters"] == 5 and sorted(Counter(s["blob"]).values()) == [12] * 5
