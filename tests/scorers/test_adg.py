"""ADG: divergence geometry, the per-row-seeded scorer, the binned quota, `method="adg"` and the quadrant plot."""

import importlib.util
import pickle
from unittest import mock

import numpy as np
import pytest
import torch
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

import hf_diverse.scorers.adg as adg_module
from hf_diverse import get_provenance, select_diverse
from hf_diverse.cli import build_parser
from hf_diverse.errors import ColumnNotFoundError, InvalidParameterError, MissingDependencyError
from hf_diverse.plots.adg import plot_divergence_quadrant
from hf_diverse.quota import binned_quota
from hf_diverse.scorers.adg import (
    POOLINGS,
    AnswerDivergenceScorer,
    answer_divergence,
    combined_score,
    row_seed,
    sample_top_p,
    token_weight,
)
from hf_diverse.selection.adg import default_n_bins

K = 3
TOKENS = 8


# --- geometry -------------------------------------------------------------------------------------------------
def direct_d_i(v: np.ndarray) -> tuple[float, float]:
    """D and I written straight from the definitions, via the SVD of the centred answer matrix.

    Sc = H V V^T H = (HV)(HV)^T, so its eigenvalues are the squared singular values of HV.
    """
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    centred = v - v.mean(axis=0, keepdims=True)
    sq = np.linalg.svd(centred, compute_uv=False) ** 2
    trace = sq.sum()
    if trace < 1e-12:
        return 0.0, 0.0
    return trace / len(v), 1.0 - sq.max() / trace


def test_identical_answers_have_zero_divergence_and_isotropy():
    v = np.tile(np.array([[0.3, -1.2, 0.5, 2.0]]), (5, 1))
    d, i = answer_divergence(v)
    assert d == pytest.approx(0.0, abs=1e-12) and i == 0.0
    assert direct_d_i(v) == (0.0, 0.0)


def test_answers_along_one_direction_have_no_isotropy():
    u = np.array([1.0, 2.0, -0.5, 0.0, 3.0])
    v = np.stack([u, -u, u, -u, 2 * u])  # all on one line through the origin
    d, i = answer_divergence(v)
    dd, di = direct_d_i(v)
    assert d > 0.5 and d == pytest.approx(dd, abs=1e-9)
    assert i == pytest.approx(0.0, abs=1e-9) and di == pytest.approx(0.0, abs=1e-9)
    # D = 1 - ||mean of unit vectors||^2
    assert d == pytest.approx(1 - (1 / 5) ** 2, abs=1e-9)


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_orthogonal_answers_reach_the_maxima(k):
    v = np.zeros((k, k + 3))
    v[np.arange(k), np.arange(k)] = 1.0
    d, i = answer_divergence(v)
    assert d == pytest.approx(1 - 1 / k, abs=1e-9)
    assert i == pytest.approx(1 - 1 / (k - 1), abs=1e-9)
    assert (d, i) == pytest.approx(direct_d_i(v), abs=1e-9)
    # I = 1 - 1/(K-1) is I's maximum for any set; D = 1 - 1/K is D's maximum over sets with non-negative pairwise
    # cosines (then ||mean||^2 >= 1/K), the usual case for LM hidden states; D = 1 needs a zero mean
    rng = np.random.default_rng(k)
    _, ir = answer_divergence(rng.normal(size=(200, k, 16)))
    dr, _ = answer_divergence(np.abs(rng.normal(size=(200, k, 16))))
    assert (ir <= 1 - 1 / (k - 1) + 1e-9).all() and (dr <= 1 - 1 / k + 1e-9).all()
    assert answer_divergence(np.stack([v[0], -v[0]]))[0] == pytest.approx(1.0)


def test_geometry_matches_direct_numpy_on_random_sets():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 5, 12)) + rng.normal(size=(50, 1, 12)) * 2  # answers around a shared direction
    d, i = answer_divergence(v)
    want = np.array([direct_d_i(x) for x in v])
    np.testing.assert_allclose(d, want[:, 0], atol=1e-9)
    np.testing.assert_allclose(i, want[:, 1], atol=1e-9)
    # torch input, single set, and the combined score with the reference's 0.6 / 0.4
    d0, i0 = answer_divergence(torch.from_numpy(v[0]).float())
    assert d0 == pytest.approx(d[0], abs=1e-5) and i0 == pytest.approx(i[0], abs=1e-5)
    np.testing.assert_allclose(combined_score(d, i), 0.6 * d + 0.4 * i)
    with pytest.raises(InvalidParameterError, match="shape"):
        answer_divergence(np.zeros(4))


def test_token_weights_follow_the_reference_rule():
    assert token_weight(" cat") == 1.0
    assert token_weight(" 42") == 1.3 and token_weight("%") == 1.3 and token_weight("°C") == 1.3
    assert token_weight("") == 0.0 and token_weight("  ") == 0.0 and token_weight(" ,") == 0.0
    assert token_weight("...") == 0.0 and token_weight(")]") == 0.0 and token_weight("\\") == 0.0


# --- sampling ---------------------------------------------------------------------------------------------------
def test_sampling_draws_from_the_nucleus_with_the_right_frequencies():
    torch.manual_seed(0)
    logits = torch.randn(4, 50) * 2
    n = 10000
    noise = torch.rand(n, 50)
    for row in range(4):
        tokens = sample_top_p(logits[row].expand(n, -1), noise, temperature=1.4, top_p=0.9)
        warped = TopPLogitsWarper(0.9)(None, TemperatureLogitsWarper(1.4)(None, logits[row : row + 1].clone()))
        allowed = torch.isfinite(warped[0])
        assert allowed[tokens].all(), "a token outside transformers' top-p nucleus was drawn"
        expected = torch.softmax(warped[0], dim=-1)
        freq = torch.bincount(tokens, minlength=50).double() / n
        assert (freq - expected).abs().max() < 0.025  # about 5 standard errors
    # a row's draw does not depend on the other rows of the batch
    batch = sample_top_p(logits, noise[:4], 1.4, 0.9)
    alone = torch.stack([sample_top_p(logits[i : i + 1], noise[i : i + 1], 1.4, 0.9)[0] for i in range(4)])
    assert torch.equal(batch, alone)
    # top_p=1 keeps the whole vocabulary
    full = sample_top_p(logits[0].expand(n, -1), noise, 1.0, 1.0)
    freq = torch.bincount(full, minlength=50).double() / n
    assert (freq - torch.softmax(logits[0], -1)).abs().max() < 0.025


def test_row_seed_is_stable_and_content_keyed():
    msgs = [{"role": "user", "content": "Name a prime."}]
    assert row_seed(0, msgs) == row_seed(0, [dict(m) for m in msgs])
    assert row_seed(0, msgs) != row_seed(1, msgs)
    assert row_seed(0, msgs) != row_seed(0, [{"role": "user", "content": "Name a prime!"}])
    assert 0 <= row_seed(0, msgs) < 2**63


# --- scorer on the tiny random Llama ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_pool(ifbench, tmp_path_factory):
    """Six IFBench rows saved to disk, so `map` writes (and re-uses) cache files."""
    path = tmp_path_factory.mktemp("adg_pool")
    ifbench.select(range(6)).save_to_disk(str(path))
    return load_from_disk(str(path))


@pytest.fixture(scope="module")
def tiny_scorer(tiny_llama_path):
    return AnswerDivergenceScorer(
        model=tiny_llama_path, num_samples=K, max_new_tokens=TOKENS, keep_answers=True, device="cpu"
    )


@pytest.fixture(scope="module")
def scored_b4(small_pool, tiny_scorer):
    return small_pool.map(tiny_scorer, batched=True, batch_size=4, features=tiny_scorer.features(small_pool))


def test_scorer_columns_and_ranges(scored_b4):
    feats = scored_b4.features
    for name in ("adg_divergence", "adg_isotropy", "adg_score"):
        assert feats[name].dtype == "float64"
    assert feats["adg_answers"].feature.dtype == "string"
    d, i = np.array(scored_b4["adg_divergence"]), np.array(scored_b4["adg_isotropy"])
    assert ((d > 0) & (d <= 1 + 1e-9)).all()
    assert ((i >= 0) & (i <= 1 - 1 / (K - 1) + 1e-6)).all()
    np.testing.assert_allclose(scored_b4["adg_score"], 0.6 * d + 0.4 * i, atol=1e-12)
    answers = scored_b4["adg_answers"]
    assert all(len(a) == K and all(isinstance(t, str) for t in a) for a in answers)
    assert len({a[0] for a in answers}) == len(answers), "rows should get different samples"
    assert all(len(set(a)) > 1 for a in answers), "the K samples of a row should differ"


def test_batch_size_does_not_change_results(small_pool, tiny_scorer, scored_b4):
    # also the multi-GPU calling convention: map(with_indices=True, with_rank=True) passes (batch, indices, rank)
    scored_b1 = small_pool.map(
        tiny_scorer,
        batched=True,
        batch_size=1,
        with_indices=True,
        with_rank=True,
        features=tiny_scorer.features(small_pool),
    )
    assert scored_b1["adg_answers"] == scored_b4["adg_answers"]
    # vectors come from differently padded batches: equal up to float32 rounding
    for name in ("adg_divergence", "adg_isotropy", "adg_score"):
        np.testing.assert_allclose(scored_b1[name], scored_b4[name], rtol=0, atol=1e-6)


def test_rerun_with_same_seed_is_identical_and_cached(small_pool, tiny_llama_path, tiny_scorer, scored_b4):
    fresh = AnswerDivergenceScorer(
        model=tiny_llama_path, num_samples=K, max_new_tokens=TOKENS, keep_answers=True, device="cpu"
    )
    assert Hasher.hash(fresh) == Hasher.hash(tiny_scorer), "a loaded model must not change the scorer's hash"
    assert len(pickle.dumps(tiny_scorer)) < 10_000, "the pickled scorer must not carry the model"
    # the second identical map re-uses the cache: the model is never touched
    with mock.patch.object(AnswerDivergenceScorer, "load", side_effect=AssertionError("model called")):
        again = small_pool.map(fresh, batched=True, batch_size=4, features=fresh.features(small_pool))
    assert again.cache_files == scored_b4.cache_files
    # computing afresh (no cache) with a new instance gives the same answers and scores
    direct = fresh(small_pool[:])
    assert direct["adg_answers"] == scored_b4["adg_answers"]
    np.testing.assert_allclose(direct["adg_score"], scored_b4["adg_score"], rtol=0, atol=1e-6)


def test_other_seed_gives_other_samples(small_pool, tiny_llama_path, scored_b4):
    other = AnswerDivergenceScorer(
        model=tiny_llama_path, num_samples=K, max_new_tokens=TOKENS, keep_answers=True, device="cpu", seed=1
    )
    out = other(small_pool[:2])
    assert out["adg_answers"] != scored_b4["adg_answers"][:2]


def test_fused_pooling_equals_a_separate_teacher_forced_pass(small_pool, tiny_scorer):
    model, tok = tiny_scorer.load("cpu")
    messages, _ = tiny_scorer._messages(small_pool[:3], None)
    prompts = [tiny_scorer._prompt_ids(model, tok, m) for m in messages]
    assert tok.decode(prompts[0]).endswith("<|im_start|>assistant\n"), "the chat template must be kept whole"
    answers, fused = tiny_scorer._sample_and_embed(model, tok, prompts, [row_seed(0, m) for m in messages])
    assert len(answers) == 3 * K and all(0 < len(a) <= TOKENS for a in answers)
    sequences = [prompts[j // K] + answers[j] for j in range(3 * K)]
    explicit = tiny_scorer.embed(model, tok, sequences, [len(prompts[j // K]) for j in range(3 * K)])
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused.norm(dim=1), torch.ones(3 * K), atol=1e-5, rtol=0)


def test_reference_pooling_option_and_no_answers_column(small_pool, tiny_llama_path, scored_b4):
    ref = AnswerDivergenceScorer(
        model=tiny_llama_path, num_samples=K, max_new_tokens=TOKENS, pooling="instruction+answer", device="cpu"
    )
    out = ref(small_pool[:2])
    assert set(out) == {"adg_divergence", "adg_isotropy", "adg_score"}
    # same samples, different pooling: different (and here smaller, the shared instruction dominates) spread
    assert not np.allclose(out["adg_divergence"], scored_b4["adg_divergence"][:2])


def test_scorer_validates_arguments():
    with pytest.raises(InvalidParameterError, match="num_samples"):
        AnswerDivergenceScorer(num_samples=1)
    with pytest.raises(InvalidParameterError, match="pooling='tokens'"):
        AnswerDivergenceScorer(pooling="tokens")
    with pytest.raises(InvalidParameterError, match="top_p"):
        AnswerDivergenceScorer(top_p=0)
    with pytest.raises(InvalidParameterError, match="backend"):
        AnswerDivergenceScorer(backend="tgi")


def test_deprecated_pool_argument_still_works():
    with pytest.warns(FutureWarning, match="use `pooling`"):
        scorer = AnswerDivergenceScorer(pool="instruction+answer")
    assert scorer.pooling == "instruction+answer" and "pool" not in scorer.__getstate__()
    assert Hasher.hash(scorer) == Hasher.hash(AnswerDivergenceScorer(pooling="instruction+answer"))
    with pytest.warns(FutureWarning, match="pooling"):
        assert scorer.pool == "instruction+answer"
    with pytest.warns(FutureWarning), pytest.raises(InvalidParameterError, match="pass only `pooling`"):
        AnswerDivergenceScorer(pool="answer", pooling="instruction+answer")
    with pytest.warns(FutureWarning, match="pooling"):
        assert adg_module.POOLS == POOLINGS == ("answer", "instruction+answer")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_needs_the_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install 'hf_diverse\[vllm\]'"):
        AnswerDivergenceScorer(backend="vllm")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scorer_on_gpu_half_precision(small_pool, tiny_llama_path):
    scorer = AnswerDivergenceScorer(
        model=tiny_llama_path, num_samples=K, max_new_tokens=TOKENS, keep_answers=True, device="cuda"
    )
    model, _ = scorer.load()
    assert model.dtype in (torch.bfloat16, torch.float16)
    a, b = scorer(small_pool[:4]), scorer(small_pool[:1])
    assert a["adg_answers"][:1] == b["adg_answers"]
    assert all(0 <= v <= 1 for v in a["adg_divergence"]) and all(0 <= v <= 0.5 + 1e-3 for v in a["adg_isotropy"])


# --- quota ------------------------------------------------------------------------------------------------------
def _check_quota(scores, labels, k):
    chosen = binned_quota(scores, labels, k)
    n = len(scores)
    assert len(chosen) == k and len(np.unique(chosen)) == k
    for b in np.unique(labels):
        members = np.flatnonzero(labels == b)
        taken = np.intersect1d(chosen, members)
        share = len(members) * k / n
        assert np.floor(share) <= len(taken) <= np.ceil(share), f"bin {b}: {len(taken)} rows for share {share}"
        if 0 < len(taken) < len(members):  # the best of the bin, ties to the lower row
            ranked = sorted(members, key=lambda r: (-scores[r], r))
            assert sorted(taken) == sorted(ranked[: len(taken)])
    order = [(-scores[r], r) for r in chosen]
    assert order == sorted(order), "pick order: score descending, ties to the lower row"
    return chosen


@pytest.mark.parametrize("k", [1, 7, 10, 33, 51, 99, 100])
def test_quota_is_exact_on_one_giant_bin_and_many_singletons(k):
    rng = np.random.default_rng(k)
    labels = np.concatenate([np.zeros(50, dtype=int), np.arange(1, 51)])
    rng.shuffle(labels)
    scores = rng.random(100)
    chosen = _check_quota(scores, labels, k)
    if k == 100:
        assert sorted(chosen) == list(range(100))
    # singletons take part: with k=10 the giant bin gets its 5 and 5 singletons the rest
    if k == 10:
        assert (labels[chosen] == 0).sum() == 5


def test_quota_random_cases_and_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        labels = rng.integers(0, int(rng.integers(1, 12)), size=n) * 7 - 3  # arbitrary label values
        scores = rng.integers(0, 4, size=n).astype(float)  # many ties
        _check_quota(scores, labels, int(rng.integers(0, n + 1)))
    # all scores equal and every bin the same size: the lower rows win
    labels = np.array([0, 1, 0, 1, 0, 1])
    assert binned_quota(np.zeros(6), labels, 2).tolist() == [0, 1]
    assert binned_quota(np.zeros(6), labels, 3).tolist() == [0, 1, 2]
    with pytest.raises(InvalidParameterError):
        binned_quota(np.zeros(3), np.zeros(2), 1)


def test_default_bins():
    assert default_n_bins(10) == 1 and default_n_bins(1000) == 20 and default_n_bins(10**7) == 1000


# --- method="adg" -----------------------------------------------------------------------------------------------
def _synthetic_pool(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 8))
    labels = rng.integers(0, 4, size=n)
    emb = centres[labels] + 0.05 * rng.normal(size=(n, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    d, i = rng.random(n) * 0.8, rng.random(n) * 0.75
    return Dataset.from_dict(
        {
            "prompt": [f"question {j}" for j in range(n)],
            "response": [f"answer {j}" for j in range(n)],
            "embedding": emb.astype(np.float32).tolist(),
            "adg_divergence": d.tolist(),
            "adg_isotropy": i.tolist(),
            "adg_score": (0.6 * d + 0.4 * i).tolist(),
        }
    )


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


def test_cli_exposes_adg_options():
    args = build_parser().parse_args(["select", "--method", "adg", "--n-bins", "5", "--lam", "0.3", "--k", "10"])
    assert args.n_bins == 5 and args.lam == 0.3


# --- quadrant plot ----------------------------------------------------------------------------------------------
def test_quadrant_plot(tmp_path):
    pool = _synthetic_pool()
    subset = select_diverse(pool, k=12, method="adg", n_bins=4, show_progress=False)
    for selected in (subset, [0, 5, 7], np.arange(120) % 10 == 0, None):
        out = plot_divergence_quadrant(pool, selected, path=tmp_path / "q.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = plot_divergence_quadrant((pool["adg_divergence"], pool["adg_isotropy"]), [1, 2])
    assert fig.axes[0].get_xlabel().startswith("D(x)")
    with pytest.raises(ColumnNotFoundError, match="adg_divergence"):
        plot_divergence_quadrant(pool.remove_columns("adg_divergence"))
    with pytest.raises(InvalidParameterError, match=r"\[0, 120\)"):
        plot_divergence_quadrant(pool, [500])


# --- real model -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_smollm2_on_ifbench(ifbench):
    pool = ifbench.select(range(3))
    scorer = AnswerDivergenceScorer(num_samples=3, max_new_tokens=16, keep_answers=True)
    a = pool.map(scorer, batched=True, batch_size=4, features=scorer.features(pool))
    b = pool.map(scorer, batched=True, batch_size=1, features=scorer.features(pool), load_from_cache_file=False)
    assert a["adg_answers"] == b["adg_answers"]
    np.testing.assert_allclose(a["adg_score"], b["adg_score"], atol=1e-5)
    d, i = np.array(a["adg_divergence"]), np.array(a["adg_isotropy"])
    assert ((d > 0) & (d < 1)).all() and ((i > 0) & (i <= 0.5 + 1e-6)).all()
    assert all(any(t.strip() for t in answers) for answers in a["adg_answers"])
