"""`hf_diverse.report.text_metrics`: the token, compression and Self-BLEU stages."""

import numpy as np
import pytest

from hf_diverse import metrics as M
from hf_diverse.report.sets import collect_sets
from hf_diverse.report.text_metrics import (
    compression_metrics,
    self_bleu_metrics,
    token_budget,
    token_metrics,
    tokenize_sets,
)
from hf_diverse.tokens import tokenize_texts
from tests.report.common import _views


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


def test_kurtosis_and_gini_at_an_equal_token_budget(pool, subset, tok):
    sets = collect_sets(pool, subset, *_views(pool, subset))
    tokens = tokenize_sets(sets, "response", tok)
    rows, _ = token_metrics(tokens, len(tok), seed=4)
    totals = {label: sum(len(t) for t in lists) for label, lists in tokens.items()}
    budget = min(totals.values())
    assert token_budget(tokens) == budget
    for label, lists in tokens.items():
        counts = np.bincount(np.concatenate(lists), minlength=len(tok))
        # independently: draw `budget` of the set's tokens without replacement, as numpy's hypergeometric does
        if totals[label] > budget:
            nz = np.flatnonzero(counts)
            drawn = np.zeros_like(counts)
            drawn[nz] = np.random.default_rng([4, 2]).multivariate_hypergeometric(
                counts[nz], budget, method="marginals"
            )
        else:
            drawn = counts
        assert drawn.sum() == budget
        p = np.sort(drawn[drawn > 0])[::-1] / budget
        x = np.arange(1, p.size + 1)
        mu = (p * x).sum()
        assert rows[label]["kurtosis"] == pytest.approx((p * (x - mu) ** 4).sum() / (p * (x - mu) ** 2).sum() ** 2)
        assert rows[label]["gini"] == pytest.approx(M.gini_index(drawn))
    # the pool is far larger than the subset: at full size its Gini would be higher than at the subset's budget
    pool_counts = np.bincount(np.concatenate(tokens["pool"]))
    assert M.gini_index(pool_counts) > rows["pool"]["gini"]
