"""`hf_diverse.selection.tags`: the meso-diversity `method="tags"` on a pool tagged by a fake deterministic tagger."""

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse import InvalidParameterError, diversity_report, diversity_series, get_provenance, select_diverse
from hf_diverse.scorers import Scorer, normalize_tags
from hf_diverse.selection.tags import tag_levels

TOPICS = {
    "math": ["math", "mathematics", "maths"],
    "poetry": ["poetry", "poem", "poems"],
    "cooking": ["cooking"],
    "travel": ["travel"],
    "code": ["programming"],
    "history": ["history"],
    "music": ["music"],
    "sports": ["sports"],
}


class KeywordTagger(Scorer):
    """A fake deterministic tagger: each prompt names its topics as `topic:variant` words."""

    def output_features(self):
        from datasets import List, Value

        return {"tags": List(Value("string")), "tags_status": Value("string")}

    def score_batch(self, batch, indices, device):
        tags = [[w.split(":")[1] for w in p.split() if ":" in w] for p in batch["prompt"]]
        return {"tags": tags, "tags_status": ["ok" if t else "failed" for t in tags]}


def _pool(n=160, seed=0):
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    popularity = np.array([30, 20, 12, 10, 8, 6, 4, 2], dtype=float)
    prompts = []
    for i in range(n):
        count = rng.integers(1, 4)
        topics = rng.choice(names, size=count, replace=False, p=popularity / popularity.sum())
        words = [f"{t}:{rng.choice(TOPICS[t])}" for t in topics]
        prompts.append(f"row{i} " + " ".join(words))
    pool = Dataset.from_dict({"prompt": prompts, "response": [f"answer {i}" for i in range(n)]})
    pool = pool.add_column("quality", rng.random(n).tolist())
    tagger = KeywordTagger()
    return pool.map(tagger, batched=True, features=tagger.features(pool))


@pytest.fixture(scope="module")
def tagged():
    return normalize_tags(_pool())


def _ratio(tag_lists):
    flat = [t for tags in tag_lists for t in tags]
    return len(set(flat)) / len(flat)


def test_normalisation_merges_the_tagger_variants(tagged):
    categories = {t for tags in tagged["tags_normalized"] for t in tags}
    assert categories == set(TOPICS) - {"code"} | {"programming"}  # one category per topic, whatever the variant


def test_exact_k_and_monotone_tag_diversity_along_the_series(tagged):
    series = diversity_series(tagged, 24, n_points=7, method="tags", show_progress=False)
    ratios = []
    for s in series:
        assert len(s) == 24 and len(set(s["prompt"])) == 24
        rec = get_provenance(s)
        ratio = _ratio(s["tags_normalized"])  # independently, from the subset's own tags
        assert rec["objective"]["tag_diversity"] == pytest.approx(ratio)
        assert rec["objective"]["categories_used"] == len({t for tags in s["tags_normalized"] for t in tags})
        ratios.append(ratio)
        assert set(s["selection_tag"]) <= {t for tags in s["tags_normalized"] for t in tags}
    assert all(a <= b + 1e-12 for a, b in zip(ratios, ratios[1:], strict=False)), ratios
    assert ratios[-1] > ratios[0]
    low, high = get_provenance(series[0])["details"], get_provenance(series[-1])["details"]
    assert low["categories_chosen"] == low["categories_min"] < high["categories_chosen"] == 8
    assert "mean_response_tokens" in low["series"]


def test_fewest_categories_at_zero_and_even_spread_at_one(tagged):
    levels = tag_levels(list(tagged["tags_normalized"]), 24, None, 0)
    # c_min, independently: the fewest most-frequent categories whose rows (all tags inside them) number >= 24
    holders = {}
    for tags in tagged["tags_normalized"]:
        for t in set(tags):
            holders[t] = holders.get(t, 0) + 1
    ranked = sorted(holders, key=lambda t: (-holders[t], t))
    c_min = next(c for c in range(1, 9) if sum(set(t) <= set(ranked[:c]) for t in tagged["tags_normalized"]) >= 24)
    assert levels.c_min == c_min
    top = select_diverse(tagged, 24, method="tags", diversity=1.0, show_progress=False)
    counts = np.unique(top["selection_tag"], return_counts=True)[1]
    assert len(counts) == 8  # every category
    sizes = {
        t: sum(ranked.index(t) == max(ranked.index(u) for u in tags) for tags in tagged["tags_normalized"])
        for t in ranked
    }
    level = counts.max()
    assert all(
        c >= level - 1 or sizes[t] == c
        for t, c in zip(*np.unique(top["selection_tag"], return_counts=True), strict=True)
    )


def test_deterministic_quality_order_and_raw_tags(tagged):
    a = select_diverse(tagged, 20, method="tags", diversity=0.4, seed=3, show_progress=False)
    b = select_diverse(tagged, 20, method="tags", diversity=0.4, seed=3, show_progress=False)
    assert a["prompt"] == b["prompt"]
    q = select_diverse(tagged, 20, method="tags", diversity=0.4, quality_column="quality", show_progress=False)
    assert get_provenance(q)["details"]["within_category"] == "quality descending"
    # only raw tags: normalised on the fly, with the same categories
    raw = tagged.remove_columns("tags_normalized")
    r = select_diverse(raw, 20, method="tags", diversity=0.4, seed=3, show_progress=False)
    assert r["prompt"] == a["prompt"]
    assert get_provenance(r)["details"]["tags"]["source"] == "column, normalised here"


def test_errors_and_the_report_row(tagged):
    with pytest.raises(InvalidParameterError, match="what='both'"):
        select_diverse(tagged, 10, method="tags", what="both")
    with pytest.raises(InvalidParameterError, match="tag_column"):
        select_diverse(tagged, 10, method="tags", tag_column="labels")
    sparse = tagged.map(lambda r, i: {"tags_normalized": r["tags_normalized"] if i < 5 else []}, with_indices=True)
    with pytest.raises(InvalidParameterError, match="needs k=10 rows with tags; the pool has 5"):
        select_diverse(sparse, 10, method="tags")
    low = select_diverse(tagged, 24, method="tags", diversity=0.0, show_progress=False)
    report = diversity_report(
        tagged, low, components=("instruction",), self_bleu_samples=0, compute_embeddings=False, show_progress=False
    )
    row = report.metrics["instruction"]
    assert row["subset"]["tag_diversity"] == pytest.approx(_ratio(low["tags_normalized"]))
    # minimal diversity concentrates on few categories: below a random subset of the same size
    assert row["subset"]["tag_diversity"] < row["random"]["tag_diversity"]
    assert "tag diversity (+)" in str(report)
