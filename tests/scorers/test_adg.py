"""`hf_diverse.scorers.adg`: `AnswerDivergenceScorer` on a tiny random Llama (and, with `-m slow`, on SmolLM2)."""

import importlib.util
import pickle
from unittest import mock

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from datasets.fingerprint import Hasher

import hf_diverse.scorers.adg as adg_module
from hf_diverse.errors import InvalidParameterError, MissingDependencyError
from hf_diverse.scorers.adg import POOLINGS, AnswerDivergenceScorer, row_seed

K = 3


TOKENS = 8


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


# --- backend="vllm", on a fake engine with vLLM's interface (tests/fake_vllm.py) -----------------------------
def _pooled(model, tok, prompt, answer):
    """The answer vector written out: layers -4..-2 of one forward pass over prompt + answer, averaged over the answer
    tokens with the reference weights (each token decoded alone), L2-normalised."""
    with torch.no_grad():
        states = model(torch.tensor([prompt + answer]), output_hidden_states=True).hidden_states
    h = torch.stack([states[-4], states[-3], states[-2]]).mean(0)[0, len(prompt) :]
    w = torch.tensor([adg_module.token_weight(tok.decode([t])) for t in answer])
    v = (h * w[:, None]).sum(0) / w.sum()
    return (v / v.norm()).numpy().astype(np.float64)


def _divergence(vectors):
    """D = tr(Sc) / K and I = 1 - lambda_1 / tr(Sc) of the centred Gram matrix, with numpy."""
    k = len(vectors)
    centre = np.eye(k) - np.ones((k, k)) / k
    sc = centre @ (vectors @ vectors.T) @ centre
    eig = np.clip(np.linalg.eigvalsh(sc), 0, None)
    return np.trace(sc) / k, 1 - eig.max() / eig.sum()


def test_vllm_backend_on_a_fake_engine(small_pool, tiny_llama_path, monkeypatch):
    from tests import fake_vllm

    fake = fake_vllm.install(monkeypatch, answer=None)
    scorer = AnswerDivergenceScorer(
        model=tiny_llama_path, backend="vllm", num_samples=K, max_new_tokens=TOKENS, keep_answers=True, device="cpu"
    )
    out = scorer(small_pool[:4])
    assert len(fake.LLM.built) == 1 and fake.LLM.built[0]["seed"] == 0
    assert fake.LLM.built[0]["gpu_memory_utilization"] == 0.5
    model, tok = scorer.load("cpu")
    assert tok.eos_token_id == 2  # the fake's EOS
    messages, _ = scorer._messages(small_pool[:4], None)
    for i, m in enumerate(messages):
        prompt = scorer._prompt_ids(model, tok, m)
        params = fake.SamplingParams(n=K, temperature=1.4, top_p=0.9, max_tokens=TOKENS, seed=row_seed(0, m) % 2**31)
        drawn = [a[:-1] if a and a[-1] == 2 else a for a in fake_vllm.answers(prompt, params)]  # EOS dropped
        assert out["adg_answers"][i] == [tok.decode(a, skip_special_tokens=True).strip() for a in drawn]
        d, iso = _divergence(np.stack([_pooled(model, tok, prompt, a) for a in drawn]))
        assert out["adg_divergence"][i] == pytest.approx(d, abs=1e-5)
        assert out["adg_isotropy"][i] == pytest.approx(iso, abs=1e-4)
    # each request carried the row's seed, K samples and the sampling settings
    _, params = scorer._vllm.requests[0]
    assert (params.n, params.temperature, params.top_p, params.max_tokens) == (K, 1.4, 0.9, TOKENS)


def test_vllm_backend_results_do_not_depend_on_the_other_rows(small_pool, tiny_llama_path, monkeypatch):
    from tests import fake_vllm

    fake_vllm.install(monkeypatch, answer=None)
    scorer = AnswerDivergenceScorer(
        model=tiny_llama_path, backend="vllm", num_samples=K, max_new_tokens=TOKENS, keep_answers=True
    )
    all_rows = scorer(small_pool[:5])
    some = scorer(small_pool.select([4, 1])[:])
    assert some["adg_answers"] == [all_rows["adg_answers"][4], all_rows["adg_answers"][1]]  # the same samples
    # the same scores, to the rounding of another batch in the embedding pass
    assert some["adg_score"] == pytest.approx([all_rows["adg_score"][4], all_rows["adg_score"][1]], abs=1e-6)
    other_seed = AnswerDivergenceScorer(
        model=tiny_llama_path, backend="vllm", num_samples=K, max_new_tokens=TOKENS, seed=1
    )(small_pool[:5])
    assert other_seed["adg_score"] != all_rows["adg_score"]


# --- issue 12: tests that fail when the reference settings change ------------------------------------------------
def test_reference_sampling_defaults():
    from hf_diverse.selection.adg import AdgConfig

    for settings in (AnswerDivergenceScorer(), AdgConfig()):
        assert (settings.num_samples, settings.temperature, settings.top_p) == (5, 1.4, 0.9)
        assert (settings.max_new_tokens, settings.lam) == (256, 0.4)


_PUNCTUATION = set(",.;:!?()[]{}\"'`~-_/\\")


def _reference_weight(text: str) -> float:
    """The reference's token weight, written out here: 0 empty / punctuation only, 1.3 a digit or % ℃ °, else 1."""
    text = text.strip()
    if all(c in _PUNCTUATION or c.isspace() for c in text):
        return 0.0
    return 1.3 if any(c.isdigit() or c in "%℃°" for c in text) else 1.0


def test_answer_vectors_follow_the_reference_layers_and_weights(tiny_scorer):
    model, tok = tiny_scorer.load("cpu")
    prompt = tok("Question: how warm is it?", add_special_tokens=False)["input_ids"]
    answer = tok(" It is 21°C, (about 70%) warmer than yesterday!", add_special_tokens=False)["input_ids"]
    got = tiny_scorer.embed(model, tok, [prompt + answer], [len(prompt)])[0]
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor([prompt + answer]), output_hidden_states=True).hidden_states
    assert len(hidden) == 5  # embeddings + 4 layers: -4, -3, -2 are layers 1, 2, 3
    states = ((hidden[1] + hidden[2] + hidden[3]) / 3)[0, len(prompt) :]
    weights = torch.tensor([_reference_weight(tok.decode([t])) for t in answer])
    assert 0.0 in weights.tolist() and 1.3 in [round(w, 2) for w in weights.tolist()]
    want = (states * weights[:, None]).sum(0) / weights.sum()
    torch.testing.assert_close(got, want / want.norm(), atol=1e-5, rtol=0)


def test_both_poolings_weigh_tokens_alike(small_pool, tiny_llama_path):
    # arbitrary per-id weights: the fused (KV-cache) pooling and the separate pass must both apply them
    scorer = AnswerDivergenceScorer(model=tiny_llama_path, num_samples=K, max_new_tokens=TOKENS, device="cpu")
    model, tok = scorer.load("cpu")
    size = max(model.config.vocab_size, len(tok))
    scorer._weights = torch.from_numpy(np.random.default_rng(0).uniform(0.2, 3.0, size).astype(np.float32))
    messages, _ = scorer._messages(small_pool[:2], None)
    prompts = [scorer._prompt_ids(model, tok, m) for m in messages]
    seeds = [row_seed(0, m) for m in messages]
    answers, fused = scorer._sample_and_embed(model, tok, prompts, seeds)
    sequences = [prompts[j // K] + answers[j] for j in range(2 * K)]
    explicit = scorer.embed(model, tok, sequences, [len(prompts[j // K]) for j in range(2 * K)])
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    scorer._weights = torch.ones(size)
    _, unweighted = scorer._sample_and_embed(model, tok, prompts, seeds)
    assert not torch.allclose(unweighted, fused, atol=1e-4), "the weights must change the answer vectors"
