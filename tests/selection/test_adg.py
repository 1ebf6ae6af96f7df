"""`hf_diverse.selection.adg`: `method="adg"` with precomputed, recomputed and LM-computed scores."""

import numpy as np
import pytest

from hf_diverse import get_provenance, select_diverse
from hf_diverse.errors import ColumnNotFoundError
from hf_diverse.scorers.adg import AnswerDivergenceScorer
from hf_diverse.selection.adg import default_n_bins
from tests.helpers import _synthetic_pool


def test_default_bins():
    assert default_n_bins(10) == 1 and default_n_bins(1000) == 20 and default_n_bins(10**7) == 1000


def test_select_adg_with_precomputed_scores():
    pool = _synthetic_pool()
    subset = select_diverse(pool, k=30, method="adg", n_bins=4, seed=3, show_progress=False)
    assert len(subset) == 30 and "adg_bin" in subset.column_names
    rec = get_provenance(subset)
    assert rec["method"] == "adg" and rec["details"]["scores"] == "precomputed"
    assert rec["details"]["n_bins"] == 4 and rec["parameters"]["lam"] == 0.4
    assert rec["objective"]["adg_score_mean"] > rec["objective"]["adg_score_pool_mean"]
    assert subset["selection_gain"] == sorted(subset["selection_gain"], reverse=True)
    # every bin gets its proportional share
    bins = np.array(subset["adg_bin"])
    assert len(np.unique(bins)) == 4
    again = select_diverse(pool, k=30, method="adg", n_bins=4, seed=3, show_progress=False)
    assert again["prompt"] == subset["prompt"]
    # k = N returns every row
    assert len(select_diverse(pool, k=1.0, method="adg", n_bins=4, show_progress=False)) == 120


def test_select_adg_recomputes_score_from_d_and_i_with_lam():
    pool = _synthetic_pool().remove_columns("adg_score")
    only_i = select_diverse(pool, k=10, method="adg", n_bins=1, lam=1.0, show_progress=False)
    top_i = np.argsort(-np.array(pool["adg_isotropy"]), kind="stable")[:10]
    assert sorted(only_i["prompt"]) == sorted(pool.select(top_i)["prompt"])
    assert "recomputed" in get_provenance(only_i)["details"]["scores"]
    with pytest.raises(ColumnNotFoundError, match="my_score"):
        select_diverse(pool, k=10, method="adg", score_column="my_score", show_progress=False)


def test_select_adg_computes_scores_with_the_lm(tiny_llama_path):
    pool = _synthetic_pool(n=8).remove_columns(["adg_divergence", "adg_isotropy", "adg_score"])
    subset = select_diverse(
        pool,
        k=3,
        method="adg",
        model=tiny_llama_path,
        num_samples=2,
        max_new_tokens=4,
        keep_answers=True,
        device="cpu",
        show_progress=False,
    )
    assert len(subset) == 3
    for name in ("adg_divergence", "adg_isotropy", "adg_score", "adg_answers", "adg_bin"):
        assert name in subset.column_names
    rec = get_provenance(subset)
    assert rec["models"]["lm"]["name"] == tiny_llama_path and rec["models"]["lm"]["num_samples"] == 2
    assert rec["details"]["scores"] == "computed"
    # the subset's scores are the ones the scorer gives those rows
    scorer = AnswerDivergenceScorer(model=tiny_llama_path, num_samples=2, max_new_tokens=4, device="cpu")
    rows = pool.filter(lambda r: r["prompt"] in subset["prompt"])
    direct = dict(zip(rows["prompt"], scorer(rows[:])["adg_score"], strict=True))
    np.testing.assert_allclose([direct[p] for p in subset["prompt"]], subset["adg_score"], atol=1e-6)
