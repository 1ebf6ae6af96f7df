"""`hf_diverse.scorers.sampling`: top-p sampling from shared noise and the content-keyed per-row seed."""

import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from hf_diverse.scorers.adg import row_seed, sample_top_p


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


def test_generate_vllm_sends_one_seeded_request_per_prompt_and_cuts_at_eos(monkeypatch):
    from hf_diverse.scorers.sampling import SamplingSettings, generate_vllm
    from tests import fake_vllm

    fake = fake_vllm.install(monkeypatch, answer=None)
    llm = fake.LLM()
    prompts, seeds = [[5, 6, 7], [9], [5, 6, 7]], [2**40 + 2**30 + 3, 11, 2**40 + 2**30 + 3]
    settings = SamplingSettings(num_samples=4, temperature=1.4, top_p=0.9, max_new_tokens=6)
    flat = generate_vllm(llm, prompts, seeds, settings, eos=[2])
    assert len(flat) == 3 * 4  # row-major: the 4 answers of prompt 0, then of prompt 1, ...
    sent = [p for _, p in llm.requests]
    assert [p.seed for p in sent] == [s % 2**31 for s in seeds] and {p.n for p in sent} == {4}
    assert {(p.temperature, p.top_p, p.max_tokens) for p in sent} == {(1.4, 0.9, 6)}
    assert flat[:4] == flat[8:]  # same prompt, same seed: the same answers
    for row, (prompt, p) in enumerate(zip(prompts, sent, strict=True)):
        expected = [a[: a.index(2)] if 2 in a else a for a in fake_vllm.answers(prompt, p)]
        assert flat[row * 4 : (row + 1) * 4] == expected
    assert all(2 not in a for a in flat)


def test_the_kv_cache_goes_by_the_name_the_model_takes():
    from transformers.modeling_outputs import ModelOutput

    from hf_diverse.scorers.sampling import cache_argument, output_cache

    class Old(torch.nn.Module):  # transformers < 5: `past_key_values`
        def forward(self, input_ids, past_key_values=None, use_cache=None): ...

    class New(torch.nn.Module):  # transformers 5: `cache` (the old name warns)
        def forward(self, input_ids, cache=None, use_cache=None, **kwargs): ...

    assert cache_argument(Old()) == "past_key_values" and cache_argument(New()) == "cache"
    marker = object()
    assert output_cache(ModelOutput(past_key_values=marker)) is marker
    assert output_cache(ModelOutput(cache=marker)) is marker
