"""`hf_diverse.scorers.tokens`: `TokenStatsScorer`."""

from hf_diverse.scorers import TokenStatsScorer


def test_token_stats_scorer(rows):
    scorer = TokenStatsScorer()
    out = rows.map(scorer, batched=True, features=scorer.features(rows))
    assert out.features["n_tokens"].dtype == "int64" and out.features["n_unique_tokens"].dtype == "int64"
    assert all(n >= u > 0 for n, u in zip(out["n_tokens"], out["n_unique_tokens"], strict=True))
    assert out["n_tokens"][0] > out["n_unique_tokens"][0]
