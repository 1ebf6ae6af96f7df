"""`hf_diverse.report.diversity`: `diversity_report` on the embedded IFBench pool, and its stages composed."""

import json
import math

import pytest
import torch

from hf_diverse import diversity_report
from hf_diverse import metrics as M
from hf_diverse.errors import EmptyDatasetError, InvalidParameterError, ModelLoadError
from hf_diverse.report import ReportOptions
from hf_diverse.report.diversity import _settings, assemble_report, measure_component
from hf_diverse.report.sets import collect_sets
from hf_diverse.tokens import token_frequencies, tokenize_texts
from hf_diverse.utils.device import resolve_device
from tests.report.common import K, _views


def test_report_on_ifbench_with_a_subset(report, pool):
    assert report.sizes == {"subset": K, "pool": len(pool), "random": K}
    assert report.labels == ["subset", "pool", "random"]
    assert report.matching["matched"] == K and report.matching["unmatched"] == 0
    for component in ("instruction", "response"):
        for label in report.labels:
            row = report.metrics[component][label]
            assert set(row) == set(M.HIGHER_IS_MORE_DIVERSE) - {"tag_diversity"}, (component, label)  # no tags
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
    # the rows name their pool rows (`source_index`), whose texts differ: nothing is linked
    assert rep.matching == {"matched": 0, "unmatched": K, "by": "source_index"}
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


def test_stages_compose_to_the_report(pool, subset, tok, report):
    options = ReportOptions(tokenizer=tok, self_bleu_samples=20, n_clusters=20, show_progress=False)
    sets = collect_sets(pool, subset, *_views(pool, subset))
    device = resolve_device(None)
    results = {c: measure_component(pool, subset, sets, c, tok, options, device) for c in options.components}
    assert set(results["response"].timings) == {
        "tokenize_s",
        "token_metrics_s",
        "tag_metrics_s",
        "compression_s",
        "self_bleu_s",
        "embeddings_s",
        "embedding_metrics_s",
    }
    rebuilt = assemble_report(sets, results, _settings(options, tok, len(pool), subset), {}).to_dict()
    expected = report.to_dict()
    rebuilt.pop("timings"), expected.pop("timings")
    assert json.dumps(rebuilt) == json.dumps(expected)  # same values and the same key order


def test_without_a_pool_the_subsets_pool_is_loaded_or_the_error_says_why(ifbench, tok):
    from datasets import Dataset

    from hf_diverse import load_pool, select_diverse
    from hf_diverse.data import DatasetLoadError

    subset = select_diverse(load_pool(limit=40), k=5, method="random", show_progress=False)
    rep = diversity_report(
        None, subset, tokenizer=tok, components=("instruction",), self_bleu_samples=0, compute_embeddings=False
    )
    assert rep.sizes["pool"] == 40 and rep.matching == {"matched": 5, "unmatched": 0, "by": "source_index"}
    memory = Dataset.from_dict({"prompt": [f"p{i}" for i in range(9)], "response": ["r"] * 9})
    with pytest.raises(DatasetLoadError, match="cannot be loaded again: the pool was built in memory"):
        diversity_report(None, select_diverse(memory, k=3, method="random", show_progress=False), tokenizer=tok)
