"""Diversity metrics against hand-computed values, `diversity_report` on the embedded IFBench pool, the plots and the
`hf-diverse report` command."""

import gzip
import json
import math

import numpy as np
import pytest
import torch
from sacrebleu.metrics import BLEU
from scipy import stats

from hf_diverse import DiversityReport, diversity_report, select_diverse
from hf_diverse import metrics as M
from hf_diverse.cli import main
from hf_diverse.clustering import fit_kmeans
from hf_diverse.errors import EmptyDatasetError, InvalidParameterError, ModelLoadError
from hf_diverse.io import save_subset
from hf_diverse.models import load_tokenizer
from hf_diverse.report import ReportOptions
from hf_diverse.report.diversity import _settings, assemble_report, measure_component
from hf_diverse.report.embedding_metrics import component_embeddings, embedding_metrics
from hf_diverse.report.sets import collect_sets, match_rows
from hf_diverse.report.text_metrics import compression_metrics, self_bleu_metrics, token_metrics, tokenize_sets
from hf_diverse.textviews import TextView
from hf_diverse.tokens import token_frequencies, tokenize_texts
from hf_diverse.utils.device import resolve_device

K = 30


# --- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tok(smollm2_tokenizer_path):
    return load_tokenizer(str(smollm2_tokenizer_path))


def _toy_embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pool(ifbench):
    """IFBench with fixed toy instruction / response embedding columns (no encoder needed in most tests)."""
    n = len(ifbench)
    ds = ifbench.add_column("embedding", _toy_embeddings(n, 16, 0).tolist())
    return ds.add_column("response_embedding", _toy_embeddings(n, 16, 1).tolist())


@pytest.fixture(scope="module")
def subset(pool):
    return select_diverse(pool, k=K, method="qdit", show_progress=False)


@pytest.fixture(scope="module")
def report(pool, subset, tok):
    return diversity_report(pool, subset, tokenizer=tok, self_bleu_samples=20, n_clusters=20, show_progress=False)


# --- tokens ---------------------------------------------------------------------------------------------------
def test_tokenize_texts_no_special_tokens_and_batching(tok):
    ids = tokenize_texts(["hello world", "", "hello"], tokenizer=tok)
    assert [len(x) for x in ids] == [2, 0, 1]
    assert ids[0][0] == ids[2][0]  # "hello" is one token, no BOS added
    assert all(x.dtype == np.int64 for x in ids)
    one_by_one = tokenize_texts(["hello world", "", "hello"], tokenizer=tok, batch_size=1)
    assert all(np.array_equal(a, b) for a, b in zip(ids, one_by_one, strict=True))


def test_token_frequencies_bincount():
    counts = token_frequencies([np.array([0, 2, 2]), np.array([3]), np.array([], dtype=np.int64)], vocab_size=5)
    assert counts.tolist() == [1, 0, 2, 1, 0]
    with pytest.raises(InvalidParameterError, match="vocab_size=3"):
        token_frequencies([np.array([3])], vocab_size=3)


# --- metrics against hand-computed values ---------------------------------------------------------------------
def test_distinct_n_hand_computed():
    corpus = [np.array([1, 2, 3, 1, 2]), np.array([1, 2])]
    assert M.distinct_n(corpus, 1) == pytest.approx(3 / 7)
    # bigrams (1,2) (2,3) (3,1) (1,2) | (1,2): 3 unique of 5; (2,1) across the two texts must not be counted
    assert M.distinct_n(corpus, 2) == pytest.approx(3 / 5)
    assert M.distinct_n(corpus, 3) == pytest.approx(1.0)
    assert M.distinct_n([np.array([7, 7, 7, 7])], 2) == pytest.approx(1 / 3)
    assert math.isnan(M.distinct_n(corpus, 6))


def test_distinct_n_large_ids_use_the_exact_fallback():
    small = [np.array([1, 2, 1, 2, 3]), np.array([2, 3, 1])]
    big = [t * 100_003 + 7 for t in small]  # ids above 2**16: 4-grams no longer pack into 63 bits
    for n in (1, 2, 3, 4):
        assert M.distinct_n(big, n) == pytest.approx(M.distinct_n(small, n))


def test_mean_length():
    assert M.mean_length([np.zeros(3), np.zeros(5), np.zeros(0)]) == pytest.approx(8 / 3)


def test_entropy_of_known_distributions():
    assert M.token_entropy(np.array([5, 5, 5, 5])) == pytest.approx(2.0)  # log2(4) bits
    assert M.token_entropy(np.array([2, 1, 1, 0])) == pytest.approx(1.5)  # 1/2*1 + 2 * 1/4*2
    assert M.token_entropy(np.array([0, 9])) == 0.0
    assert M.token_entropy(np.array([1, 1]), base=math.e) == pytest.approx(math.log(2))


def test_gini_of_known_distributions():
    assert M.gini_index(np.array([3, 3, 3])) == pytest.approx(0.0)
    assert M.gini_index(np.array([1, 1, 1, 5])) == pytest.approx(12 / 32)
    # one type holding everything among n types -> (n - 1) / n; zero-count vocabulary entries are not types
    assert M.gini_index(np.array([1e-9, 1e-9, 1e-9, 1.0])) == pytest.approx(3 / 4, abs=1e-6)
    assert M.gini_index(np.array([0, 0, 10, 0])) == pytest.approx(0.0)


def test_kurtosis_matches_scipy_and_the_moment_formula():
    counts = np.array([1, 2, 3, 10, 50, 0, 0])
    x = counts[counts > 0].astype(float)
    m2, m4 = ((x - x.mean()) ** 2).mean(), ((x - x.mean()) ** 4).mean()
    assert M.token_kurtosis(counts) == pytest.approx(m4 / m2**2 - 3)
    assert M.token_kurtosis(counts) == pytest.approx(stats.kurtosis(x))
    assert M.token_kurtosis(np.array([1, 1, 1, 1, 100])) > M.token_kurtosis(np.array([10, 20, 30, 40, 50]))
    assert math.isnan(M.token_kurtosis(np.array([4, 4, 4])))


def test_compression_ratio_bounds():
    repetitive = ["the same sentence again."] * 200
    rng = np.random.default_rng(0)
    noisy = ["".join(chr(c) for c in rng.integers(33, 127, size=200)) for _ in range(20)]
    raw = "\n".join(repetitive).encode()
    assert M.compression_ratio(repetitive) == pytest.approx(len(raw) / len(gzip.compress(raw, 9, mtime=0)))
    assert M.compression_ratio(repetitive) > 20
    assert 1.0 < M.compression_ratio(noisy) < 1.5  # printable random ASCII: ~6.6 of 8 bits per byte
    assert M.compression_ratio(["a"]) < 1.0  # tiny input: the gzip header dominates
    assert math.isnan(M.compression_ratio([]))


def test_self_bleu_identical_vs_disjoint_and_sampling():
    score, used = M.self_bleu(["the cat sat on the mat today"] * 5, samples=10)
    assert (score, used) == (pytest.approx(100.0), 5)
    disjoint = ["alpha beta gamma delta", "one two three four", "red green blue white", "north south east west"]
    assert M.self_bleu(disjoint, samples=10)[0] == pytest.approx(0.0, abs=1e-9)
    texts = [f"sentence number {i} with words" for i in range(40)]
    first, used = M.self_bleu(texts, samples=8, seed=3)
    assert used == 8 and M.self_bleu(texts, samples=8, seed=3)[0] == first
    assert 0 < first < 100
    with pytest.raises(InvalidParameterError):
        M.self_bleu(texts, samples=1)


def test_self_bleu_equals_sacrebleu_sentence_score_text_by_text(ifbench):
    texts = ifbench["response"][:25] + ["", "yes", "yes", "Yes.", "the cat sat", "the cat sat on the mat"]
    bleu = BLEU(effective_order=True)
    expected = np.mean([bleu.sentence_score(texts[i], texts[:i] + texts[i + 1 :]).score for i in range(len(texts))])
    score, used = M.self_bleu(texts, samples=len(texts))
    assert used == len(texts)
    assert score == pytest.approx(expected, rel=1e-12)


def test_embedding_distance_exact_and_hand_computed():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert M.mean_pairwise_cosine_distance(x) == pytest.approx(4 / 3)
    y = torch.randn(50, 8, generator=torch.Generator().manual_seed(0)) * 3  # not normalised: cosine normalises
    yn = torch.nn.functional.normalize(y, dim=1)
    brute = (1 - yn @ yn.T)[torch.triu_indices(50, 50, offset=1).unbind()].mean()
    assert M.mean_pairwise_cosine_distance(y) == pytest.approx(float(brute), abs=1e-5)


def test_facility_location_coverage_toy():
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    # A = {row 0}: covers itself 1, row 1 0, row 2 max(0, -1) = 0, row 3 0.6
    assert M.facility_location_coverage(pool, indices=[0]) == pytest.approx(1.6 / 4)
    assert M.facility_location_coverage(pool, indices=[0, 1, 2, 3]) == pytest.approx(1.0)
    # the same set given as embeddings (rows need not be pool rows) gives the same value
    assert M.facility_location_coverage(pool, subset=pool[[0]]) == pytest.approx(1.6 / 4)
    outside = torch.tensor([[1.0, 1.0]])  # cos 0.707 with rows 0 and 1, 0 with row 2, 0.9899 with row 3
    expected = (2 * 2**-0.5 + 0.0 + (0.6 + 0.8) * 2**-0.5) / 4
    assert M.facility_location_coverage(pool, subset=outside) == pytest.approx(expected, abs=1e-6)


def test_cluster_coverage_on_obvious_clusters():
    centers = torch.eye(3) * 10
    pool = torch.cat(
        [centers[i] + 0.01 * torch.randn(20, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    )
    model = fit_kmeans(pool, 3, seed=0, n_init=1, batch_size=4096)
    labels = model.predict(pool)
    assert len(np.unique(labels)) == 3
    assert M.cluster_coverage(labels, model.predict(pool[[0, 25]])) == pytest.approx(2 / 3)
    assert M.cluster_coverage(np.array([0, 0, 1, 2]), np.array([2, 2])) == pytest.approx(1 / 3)


# --- the report -----------------------------------------------------------------------------------------------
def test_report_on_ifbench_with_a_subset(report, pool):
    assert report.sizes == {"subset": K, "pool": len(pool), "random": K}
    assert report.labels == ["subset", "pool", "random"]
    assert report.matching["matched"] == K and report.matching["unmatched"] == 0
    for component in ("instruction", "response"):
        for label in report.labels:
            row = report.metrics[component][label]
            assert set(row) == set(M.HIGHER_IS_MORE_DIVERSE), (component, label)
            assert all(v is not None and math.isfinite(v) for v in row.values()), (component, label, row)
            assert 0 < row["distinct_1"] <= row["distinct_2"] <= 1
            assert 0 <= row["gini"] < 1 and row["entropy_bits"] > 0 and 0 <= row["self_bleu"] <= 100
        pool_row = report.metrics[component]["pool"]
        assert pool_row["coverage"] == 1.0 and pool_row["cluster_coverage"] == 1.0
        for label in ("subset", "random"):
            assert 0 < report.metrics[component][label]["coverage"] < 1
    # QDIT (alpha = 0) maximises facility location over the instruction embeddings: it must cover more than random
    instr = report.metrics["instruction"]
    assert instr["subset"]["coverage"] > instr["random"]["coverage"]
    # a pool's vocabulary is larger than a 30-row sample's: entropy higher, distinct-1 lower
    assert instr["pool"]["entropy_bits"] > instr["random"]["entropy_bits"]
    assert instr["pool"]["distinct_1"] < instr["random"]["distinct_1"]
    assert report.settings["self_bleu_sampled"]["response"] == {"subset": 20, "pool": 20, "random": 20}
    assert report.settings["subset_provenance"]["method"] == "qdit"
    assert report.settings["embeddings"]["response"]["pool"] == "column 'response_embedding'"


def test_report_values_match_the_metric_functions(report, subset, tok):
    texts = [r for r in subset["response"]]
    tokens = tokenize_texts(texts, tokenizer=tok)
    row = report.metrics["response"]["subset"]
    assert row["distinct_2"] == pytest.approx(M.distinct_n(tokens, 2))
    assert row["entropy_bits"] == pytest.approx(M.token_entropy(token_frequencies(tokens)))
    assert row["compression_ratio"] == pytest.approx(M.compression_ratio(texts))
    emb = torch.tensor(subset["response_embedding"])
    assert row["embedding_distance"] == pytest.approx(M.mean_pairwise_cosine_distance(emb), abs=1e-6)


def test_report_is_deterministic_and_random_subset_is_seeded(pool, subset, tok):
    kwargs = dict(tokenizer=tok, components=("instruction",), self_bleu_samples=10, n_clusters=10, show_progress=False)
    a = diversity_report(pool, subset, seed=1, **kwargs).to_dict()
    b = diversity_report(pool, subset, seed=1, **kwargs).to_dict()
    c = diversity_report(pool, subset, seed=2, **kwargs).to_dict()
    a.pop("timings"), b.pop("timings"), c.pop("timings")
    assert a == b
    assert a["metrics"]["instruction"]["random"] != c["metrics"]["instruction"]["random"]
    assert a["metrics"]["instruction"]["subset"]["distinct_1"] == c["metrics"]["instruction"]["subset"]["distinct_1"]


def test_report_table_json_round_trip_and_plots(report, tmp_path):
    text = str(report)
    for needle in (
        "instruction",
        "response",
        "subset",
        "pool",
        "random",
        "distinct-1",
        "Self-BLEU",
        "token entropy (bits)",
        "coverage d(A)/N",
        "cluster coverage",
    ):
        assert needle in text
    again = DiversityReport.from_json(report.to_json())
    assert again.to_dict() == report.to_dict()
    path = tmp_path / "report.json"
    report.to_json(str(path))
    assert DiversityReport.from_json(str(path)).to_dict() == json.loads(path.read_text())
    paths = again.plot(tmp_path / "plots")  # plots need only what the JSON holds
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == [
        "metrics_instruction.png",
        "metrics_response.png",
        "token_frequency_instruction.png",
        "token_frequency_response.png",
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_pool_only_report(pool, tok):
    rep = diversity_report(pool, tokenizer=tok, components=("response",), self_bleu_samples=0, show_progress=False)
    assert rep.sizes == {"pool": len(pool)} and rep.labels == ["pool"]
    assert rep.metrics["response"]["pool"]["self_bleu"] is None
    assert rep.metrics["response"]["pool"]["entropy_bits"] > 0


def test_subset_that_is_not_from_the_pool(pool, subset, tok):
    outside = subset.remove_columns(["embedding", "response_embedding"])
    outside = outside.map(lambda row: {"prompt": row["prompt"] + " (edited)"})
    rep = diversity_report(
        pool,
        outside,
        tokenizer=tok,
        components=("instruction",),
        self_bleu_samples=0,
        compute_embeddings=False,
        n_clusters=10,
        show_progress=False,
    )
    assert rep.matching == {"matched": 0, "unmatched": K, "by": "exact (instruction, response) text"}
    assert rep.metrics["instruction"]["subset"]["coverage"] is None
    assert rep.metrics["instruction"]["random"]["coverage"] is not None
    assert any("not pool rows" in note for note in rep.notes)


def test_missing_embeddings_are_computed_with_the_bundled_encoder(ifbench, tok):
    small = ifbench.select(range(16))
    sub = small.select([3, 1, 7, 12])  # rows of the pool without embeddings: matched by text, embedded once
    rep = diversity_report(
        small, sub, tokenizer=tok, components=("instruction",), self_bleu_samples=0, n_clusters=4, show_progress=False
    )
    assert rep.settings["embeddings"]["instruction"]["pool"].startswith("computed with")
    assert rep.settings["embeddings"]["instruction"]["subset"].startswith("pool rows matched by text (4 of 4)")
    row = rep.metrics["instruction"]["subset"]
    assert 0 < row["embedding_distance"] < 2 and 0 < row["coverage"] < 1 and row["cluster_coverage"] > 0
    skipped = diversity_report(
        small,
        sub,
        tokenizer=tok,
        components=("instruction",),
        self_bleu_samples=0,
        compute_embeddings=False,
        show_progress=False,
    )
    assert skipped.metrics["instruction"]["pool"]["embedding_distance"] is None
    assert any("compute_embeddings=False" in note for note in skipped.notes)


def test_bad_inputs(pool, subset, tok):
    with pytest.raises(ModelLoadError, match="no/such-tokenizer"):
        diversity_report(pool, subset, tokenizer="no/such-tokenizer", show_progress=False)
    with pytest.raises(InvalidParameterError, match="Valid components"):
        diversity_report(pool, tokenizer=tok, components=("answers",))
    with pytest.raises(EmptyDatasetError):
        diversity_report(pool, subset.select([]), tokenizer=tok)
    with pytest.raises(InvalidParameterError, match="self_bleu_samples"):
        diversity_report(pool, tokenizer=tok, self_bleu_samples=1)


# --- the stages, one at a time ----------------------------------------------------------------------------------
def _views(pool, subset):
    return TextView.for_columns(pool.column_names), TextView.for_columns(subset.column_names)


def test_metric_labels_live_in_metrics():
    assert list(M.METRIC_LABELS) == list(M.HIGHER_IS_MORE_DIVERSE)
    assert M.metric_label("entropy_bits") == "token entropy (bits) [IE] (+)"
    assert M.metric_label("self_bleu") == "Self-BLEU [BL] (-)"
    assert M.metric_label("mean_length_tokens") == "mean length (tokens) [SL]"
    assert M.metric_label("cluster_coverage") == "cluster coverage (+)"
    with pytest.raises(InvalidParameterError, match="Valid metrics"):
        M.metric_label("nope")


def test_report_options_are_checked_on_creation():
    options = ReportOptions(components=["response"], self_bleu_samples=0)
    assert options.components == ("response",)
    assert options.embedding_column_of("instruction") == "embedding"
    assert options.embedding_column_of("response") == "response_embedding"
    with pytest.raises(InvalidParameterError, match="Valid components"):
        ReportOptions(components=())
    with pytest.raises(InvalidParameterError, match="n_clusters"):
        ReportOptions(n_clusters=0)


def test_match_rows_pairs_duplicates_in_order():
    pool = {"instruction": ["a", "b", "a"], "response": ["x", "y", "x"]}
    sub = {"instruction": ["a", "a", "a", "c", "b"], "response": ["x", "x", "x", "z", "y"]}
    assert match_rows(pool, sub).tolist() == [0, 2, -1, -1, 1]


def test_collect_sets(pool, subset):
    sets = collect_sets(pool, subset, *_views(pool, subset), seed=4)
    assert sets.labels == ["subset", "pool", "random"] and sets.sizes == {"subset": K, "pool": len(pool), "random": K}
    assert (sets.match_idx >= 0).all() and sets.matching["matched"] == K
    texts = sets.texts("response")
    assert list(texts) == ["subset", "pool", "random"]
    assert [texts["pool"][i] for i in sets.match_idx] == texts["subset"] == subset["response"]
    assert np.all(np.diff(sets.random_idx) > 0) and len(sets.random_idx) == K
    assert sets.random_idx.tolist() == collect_sets(pool, subset, *_views(pool, subset), seed=4).random_idx.tolist()
    alone = collect_sets(pool, None, _views(pool, subset)[0])
    assert alone.labels == ["pool"] and alone.match_idx is None and alone.matching == {} and not alone.notes
    bigger = collect_sets(subset, pool, *_views(subset, pool))
    assert bigger.labels == ["subset", "pool"] and "No random baseline" in bigger.notes[0]


def test_text_stages(pool, subset, tok):
    sets = collect_sets(pool, subset, *_views(pool, subset), random_baseline=False)
    tokens = tokenize_sets(sets, "instruction", tok)
    assert list(tokens) == ["subset", "pool"]
    expected = tokenize_texts(subset["prompt"], tokenizer=tok)
    assert all(np.array_equal(a, b) for a, b in zip(tokens["subset"], expected, strict=True))
    rows, curves = token_metrics(tokens, len(tok))
    assert rows["subset"]["distinct_2"] == pytest.approx(M.distinct_n(expected, 2))
    assert list(rows["pool"]) == ["distinct_1", "distinct_2", "distinct_3", "distinct_4"] + [
        "mean_length_tokens",
        "entropy_bits",
        "kurtosis",
        "gini",
    ]
    assert curves["pool"]["rank"][0] == 1 and len(curves["pool"]["rank"]) <= 200
    texts = sets.texts("instruction")
    assert compression_metrics(texts)["subset"] == pytest.approx(M.compression_ratio(subset["prompt"]))
    assert self_bleu_metrics(texts, 0) == ({"subset": None, "pool": None}, {})
    scores, used = self_bleu_metrics(texts, 5, seed=1)
    assert used == {"subset": 5, "pool": 5} and all(0 <= v <= 100 for v in scores.values())


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
    # the pool column, the subset matched to pool rows by text
    matched = component_embeddings(pool, bare_sub, sets, "response", options, resolve_device("cpu"))
    assert matched.sources["subset"] == f"pool rows matched by text ({K} of {K})"
    assert torch.equal(matched.subset, emb.pool[torch.from_numpy(sets.match_idx)])


def test_stages_compose_to_the_report(pool, subset, tok, report):
    options = ReportOptions(tokenizer=tok, self_bleu_samples=20, n_clusters=20, show_progress=False)
    sets = collect_sets(pool, subset, *_views(pool, subset))
    device = resolve_device(None)
    results = {c: measure_component(pool, subset, sets, c, tok, options, device) for c in options.components}
    assert set(results["response"].timings) == {
        "tokenize_s",
        "token_metrics_s",
        "compression_s",
        "self_bleu_s",
        "embeddings_s",
        "embedding_metrics_s",
    }
    rebuilt = assemble_report(sets, results, _settings(options, tok, len(pool), subset), {}).to_dict()
    expected = report.to_dict()
    rebuilt.pop("timings"), expected.pop("timings")
    assert json.dumps(rebuilt) == json.dumps(expected)  # same values and the same key order


# --- command line ---------------------------------------------------------------------------------------------
def test_cli_report_end_to_end(pool, subset, tmp_path, capsys):
    pool_dir, sub_dir, out = tmp_path / "pool", tmp_path / "curated", tmp_path / "report"
    pool.save_to_disk(str(pool_dir))
    save_subset(subset, sub_dir)
    rc = main(
        [
            "report",
            "--dataset",
            str(pool_dir),
            "--subset",
            str(sub_dir),
            "--output-dir",
            str(out),
            "--self-bleu-samples",
            "10",
            "--n-clusters",
            "10",
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "token entropy (bits)" in printed and "Wrote" in printed
    rep = DiversityReport.from_json(str(out / "report.json"))
    assert rep.sizes == {"subset": K, "pool": len(pool), "random": K}
    assert sorted(p.name for p in out.glob("*.png")) == [
        "metrics_instruction.png",
        "metrics_response.png",
        "token_frequency_instruction.png",
        "token_frequency_response.png",
    ]
    # an existing output is refused before any work
    assert main(["report", "--dataset", str(pool_dir), "--output-dir", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_bad_tokenizer_writes_nothing(pool, tmp_path, capsys):
    pool_dir, out = tmp_path / "pool", tmp_path / "report"
    pool.save_to_disk(str(pool_dir))
    rc = main(
        [
            "report",
            "--dataset",
            str(pool_dir),
            "--output-dir",
            str(out),
            "--tokenizer",
            "no/such-tokenizer",
            "--no-progress",
        ]
    )
    assert rc == 1
    assert "no/such-tokenizer" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pool"]  # no temporary folder left behind either


def test_cli_report_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and "--subset" in out and "--output-dir" in out
