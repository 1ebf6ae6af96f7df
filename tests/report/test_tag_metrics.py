"""`hf_diverse.report.tag_metrics`: tag diversity rows when a tag column is present."""

import pytest

from hf_diverse import diversity_report
from hf_diverse.report.sets import collect_sets
from hf_diverse.report.tag_metrics import find_tag_column, tag_metrics
from tests.report.common import K, _views

TAGS = [["math"], ["code", "python"], ["poetry"], ["math", "algebra"], ["cooking"], ["code"]]


def _tags(n):
    return [TAGS[i % len(TAGS)] for i in range(n)]


def _distinct_over_total(tag_lists):
    flat = [t for tags in tag_lists for t in tags]
    return len(set(flat)) / len(flat)


def test_tag_diversity_of_subset_pool_and_random(pool, subset):
    tagged = pool.add_column("tags_normalized", _tags(len(pool)))
    sets = collect_sets(tagged, subset, *_views(tagged, subset))
    rows, notes = tag_metrics(tagged, subset, sets, "instruction")
    assert notes == []
    # the subset has no tag column: its rows are pool rows, so the pool's tags are used
    expected = {
        "subset": _distinct_over_total([_tags(len(pool))[j] for j in sets.match_idx]),
        "pool": _distinct_over_total(_tags(len(pool))),
        "random": _distinct_over_total([_tags(len(pool))[j] for j in sets.random_idx]),
    }
    assert {label: rows[label]["tag_diversity"] for label in rows} == pytest.approx(expected)
    assert tag_metrics(tagged, subset, sets, "response") == ({}, [])  # no response tags
    assert find_tag_column(tagged, "instruction") == "tags_normalized"
    assert find_tag_column(pool.add_column("tags", _tags(len(pool))), "instruction") == "tags"
    assert find_tag_column(tagged, "instruction", requested="other") is None


def test_report_shows_tag_diversity_only_with_tags(pool, subset, tok):
    kwargs = dict(tokenizer=tok, self_bleu_samples=0, compute_embeddings=False, show_progress=False)
    tagged = pool.add_column("response_tags", _tags(len(pool)))
    report = diversity_report(tagged, subset, components=("response",), **kwargs)
    row = report.metrics["response"]["subset"]
    assert row["tag_diversity"] is not None and "tag diversity (+)" in str(report)
    plain = diversity_report(pool, subset, components=("response",), **kwargs)
    assert "tag_diversity" not in plain.metrics["response"]["subset"] and "tag diversity" not in str(plain)
    assert report.sizes["subset"] == K
