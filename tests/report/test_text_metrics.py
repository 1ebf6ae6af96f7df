"""`hf_diverse.report.text_metrics`: the token, compression and Self-BLEU stages."""

import numpy as np
import pytest

from hf_diverse import metrics as M
from hf_diverse.report.sets import collect_sets
from hf_diverse.report.text_metrics import compression_metrics, self_bleu_metrics, token_metrics, tokenize_sets
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
