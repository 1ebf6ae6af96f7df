"""`hf_diverse.scorers.tag_categories`: synonyms merged into categories (bundled MiniLM + HDBSCAN), spelling variants,
the central tag, the guard, and `normalize_tags` on a dataset."""

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse.errors import ColumnNotFoundError, InvalidParameterError
from hf_diverse.models import load_sentence_transformer
from hf_diverse.scorers.tag_categories import TagCategories, fit_tag_categories, normalize_tags

ROWS = [
    ["math", "word problem"],
    ["mathematics"],
    ["maths", "geometry"],
    ["math"],
    ["poetry", "nature"],
    ["poem"],
    ["poems", "rhyme"],
    ["poetry"],
    ["biology"],
    ["chemistry"],
    ["travel planning", "budget"],
    ["problem-solving"],
    ["problem solving"],
    ["Problem Solving"],
]


@pytest.fixture(scope="module")
def categories():
    return fit_tag_categories(ROWS)


def test_near_synonyms_merge_and_unrelated_tags_stay(categories):
    m = categories.mapping
    assert m["mathematics"] == m["maths"] == m["math"] == "math"  # "math" is the most frequent: the central tag
    assert m["poem"] == m["poems"] == m["poetry"] == "poetry"
    assert m["biology"] == "biology" and m["chemistry"] == "chemistry"  # related, not synonyms (cosine ~0.48)
    assert m["travel planning"] == "travel planning" and m["budget"] == "budget"
    # spelling variants are one tag, written as the most frequent spelling
    assert m["problem-solving"] == m["problem solving"] == "problem solving"
    assert categories.counts["problem solving"] == 3
    assert categories.settings["hdbscan"] == {
        "min_cluster_size": 2,
        "min_samples": 2,
        "cluster_selection_epsilon": 0.15,
    }
    assert categories.n_categories < categories.n_tags
    assert categories.apply(["Maths", "poems", "MATH", "unknown tag"]) == ["math", "poetry", "unknown tag"]


def test_central_tag_is_the_weighted_medoid_and_members_pass_the_guard(categories):
    encoder = load_sentence_transformer(None)
    for category in set(categories.mapping.values()):
        members = [t for t, c in categories.mapping.items() if c == category and t in categories.counts]
        if len(members) < 2:
            continue
        emb = encoder.encode(members, normalize_embeddings=True)
        sim = emb @ emb.T
        weights = np.array([categories.counts[t] for t in members], dtype=float)
        # independently: the member with the largest occurrence-weighted similarity to the others
        assert members[int(np.argmax(sim @ weights))] == category
        centre = members.index(category)
        assert all(sim[i, centre] >= 0.75 - 1e-6 for i in range(len(members)))


def test_without_the_guard_hdbscan_merges_more():
    loose = fit_tag_categories(ROWS, min_similarity=None)
    assert loose.n_categories <= fit_tag_categories(ROWS).n_categories
    assert loose.settings["min_similarity"] is None
    with pytest.raises(InvalidParameterError, match="min_similarity"):
        fit_tag_categories(ROWS, min_similarity=2)
    with pytest.raises(InvalidParameterError, match="min_samples"):
        fit_tag_categories(ROWS, min_samples=0)


def test_normalize_tags_adds_the_column(categories):
    ds = Dataset.from_dict({"prompt": [f"q{i}" for i in range(len(ROWS))], "tags": ROWS})
    out = normalize_tags(ds, categories=categories)
    assert out["tags_normalized"][:3] == [["math", "word problem"], ["math"], ["math", "geometry"]]
    assert out.features["tags_normalized"].feature.dtype == "string"
    again = normalize_tags(out, categories=categories)  # an existing output column is replaced
    assert again.column_names == out.column_names
    tiny = normalize_tags(Dataset.from_dict({"tags": [["a1"], [], None]}))  # too few tags to cluster
    assert tiny["tags_normalized"][:] == [["a1"], [], []]
    with pytest.raises(ColumnNotFoundError, match="TagScorer"):
        normalize_tags(ds, column="response_tags")
    assert TagCategories({}, {}).apply(["x"]) == ["x"]


def test_the_papers_hdbscan_settings_reach_hdbscan(monkeypatch):
    import sklearn.cluster

    seen = {}
    real = sklearn.cluster.HDBSCAN

    def recording(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(sklearn.cluster, "HDBSCAN", recording)
    fit_tag_categories(ROWS)
    assert (seen["min_cluster_size"], seen["min_samples"], seen["cluster_selection_epsilon"]) == (2, 2, 0.15)
    fit_tag_categories(ROWS, eps=0.3, min_samples=3)
    assert (seen["min_samples"], seen["cluster_selection_epsilon"]) == (3, 0.3)
