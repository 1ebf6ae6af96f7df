"""A stand-in for vLLM with the same interface as the parts hf_diverse calls, for tests on a CPU.

- `LLM(model=..., revision=..., dtype=..., seed=..., gpu_memory_utilization=...)` records how it was built;
- `LLM.generate(prompts, sampling_params, use_tqdm=...)` takes `{"prompt_token_ids": [...]}` prompts and one
  `SamplingParams` per prompt (or one for all), and returns one `RequestOutput` per prompt, in order, each with `n`
  `CompletionOutput`s (`index`, `token_ids`, `text`);
- `SamplingParams(n, temperature, top_p, max_tokens, seed)` checks its values as vLLM does.

Sampling honours vLLM's contract for a seeded request: its `n` answers depend only on (prompt, seed), never on the
other requests of the call or their order. The tokens come from a generator seeded by (seed, prompt): word-like ids
from `WORD_IDS`, and an answer stops with `eos_token_id` (included in `token_ids`, as vLLM does) or at `max_tokens`.
"""

import hashlib
import importlib.machinery
import sys
import types
from dataclasses import dataclass

import torch

WORD_IDS = (1000, 8000)  # SmolLM2 ids that decode to words


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None

    def __post_init__(self):
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ValueError(f"n must be a positive integer, got {self.n}.")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ValueError("bad temperature, top_p or max_tokens")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be a non-negative 64-bit integer, got {self.seed!r}.")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: tuple


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list


class LLM:
    built: list = []  # the keyword arguments of every engine built

    def __init__(self, **kwargs):
        LLM.built.append(kwargs)
        self.eos_token_id = kwargs.pop("eos_token_id", 2)
        self.requests: list = []

    def generate(self, prompts, sampling_params, use_tqdm=True):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        assert len(params) == len(prompts), "one SamplingParams per prompt"
        out = []
        for prompt, p in zip(prompts, params, strict=True):
            ids = list(prompt["prompt_token_ids"])
            self.requests.append((ids, p))
            drawn = answers(ids, p, self.eos_token_id)
            out.append(RequestOutput(ids, [CompletionOutput(j, "", tuple(a)) for j, a in enumerate(drawn)]))
        return out


def answers(prompt_ids, params: SamplingParams, eos_token_id: int = 2) -> list[list[int]]:
    """The `n` answers of one request: a pure function of (prompt, seed, n, max_tokens)."""
    digest = hashlib.blake2b(repr((params.seed, list(prompt_ids))).encode(), digest_size=8).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    out = []
    for _ in range(params.n):
        length = int(torch.randint(1, params.max_tokens + 1, (1,), generator=gen))
        ids = torch.randint(*WORD_IDS, (length,), generator=gen).tolist()
        if length < params.max_tokens and bool(torch.rand(1, generator=gen) < 0.5):
            ids.append(eos_token_id)  # stopped at EOS: vLLM keeps it in token_ids
        out.append(ids)
    return out


def install(monkeypatch) -> types.ModuleType:
    """Put this fake in `sys.modules["vllm"]` (found by `importlib.util.find_spec` too) for one test."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = LLM, SamplingParams
    LLM.built = []
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
