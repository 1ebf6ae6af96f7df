"""A stand-in for the part of vLLM's offline API hf_diverse calls, for CPU tests of the `backend="vllm"` paths.

It honours the interface:
- `LLM(model=..., revision=..., dtype=..., seed=..., gpu_memory_utilization=...)`; the keyword arguments of every
  engine built are kept in `LLM.built`;
- `SamplingParams(n=..., temperature=..., top_p=..., max_tokens=..., seed=...)` checks its values as vLLM does;
- `LLM.generate([{"prompt_token_ids": [...]}, ...], params, use_tqdm=False)`, with one `SamplingParams` per prompt
  or one for all, returns one `RequestOutput` per prompt, in order, whose `.outputs` holds `n` `CompletionOutput`s
  (`index`, `text`, `token_ids`). Every request is kept in `LLM.requests` as `(prompt_token_ids, params)`.

Completions honour vLLM's contract for a seeded request: they depend on the prompt, the request's seed and the
sample's index only, never on the other requests of the call; greedy requests (`temperature == 0`) on the prompt
only. What the engine "says" is chosen by `answer`:
- a function `answer(prompt_text, rng)` (`rng` is None when greedy) gives the decoded text, tokenized with the
  tokenizer of `model` (the default, `default_answer`, is a JSON list of words of the prompt's last lines);
- `answer=None` gives random word-like token ids (`answers`), without a tokenizer; EOS id 2 ends some of them.
An answer that stops before `max_tokens` ends with EOS, kept in `token_ids` as vLLM does.

Use it with `install(monkeypatch, answer=...)`, which puts it in `sys.modules["vllm"]` for the test.
"""

import hashlib
import importlib.machinery
import json
import sys
import types
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

WORD_IDS = (1000, 8000)  # SmolLM2 ids that decode to words
EOS_ID = 2  # SmolLM2's <|im_end|>, the EOS of the id-only mode


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
            raise ValueError(f"invalid SamplingParams {self}")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be a non-negative 64-bit integer, got {self.seed!r}.")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


def default_answer(prompt_text: str, rng: np.random.Generator | None) -> str:
    """A JSON list of words of the prompt's last lines (the row's text): the first three in alphabetical order when
    greedy; when sampling, the first one and two drawn from the rest (so a row's samples share a word)."""
    tail = prompt_text.strip().splitlines()[-3:]
    words = sorted({w.strip(".,:;!?\"'()").lower() for line in tail for w in line.split()} - {""})
    words = [w for w in words if w.isalpha() and len(w) > 3] or ["misc"]
    if rng is None or len(words) < 3:
        return json.dumps(words[:3])
    return json.dumps([words[0], *rng.choice(words[1:], size=2, replace=False).tolist()])


def answers(prompt_ids, params: SamplingParams, eos_token_id: int = EOS_ID) -> list[list[int]]:
    """The `n` token-id answers of one request in the id-only mode: a pure function of (prompt, seed, n,
    max_tokens)."""
    digest = hashlib.blake2b(repr((params.seed, list(prompt_ids))).encode(), digest_size=8).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    out = []
    for _ in range(params.n):
        length = int(torch.randint(1, params.max_tokens + 1, (1,), generator=gen))
        ids = torch.randint(*WORD_IDS, (length,), generator=gen).tolist()
        if length < params.max_tokens and bool(torch.rand(1, generator=gen) < 0.5):
            ids.append(eos_token_id)
        out.append(ids)
    return out


class LLM:
    """The engine. With a text `answer`, it loads the tokenizer of `model` (a local path)."""

    answer = staticmethod(default_answer)
    built: list = []

    def __init__(self, model=None, seed=0, **kwargs):
        type(self).built.append({"model": model, "seed": seed, **kwargs})
        self.model, self.seed = model, seed
        self.tokenizer = None
        if self.answer is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.requests: list = []

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        params = (
            sampling_params
            if isinstance(sampling_params, list)
            else [sampling_params or SamplingParams()] * len(prompts)
        )
        if len(params) != len(prompts):
            raise ValueError("one SamplingParams per prompt, or one for all")
        outputs = []
        for prompt, p in zip(prompts, params, strict=True):
            ids = list(prompt["prompt_token_ids"])
            self.requests.append((ids, p))
            if self.answer is None:
                out = [CompletionOutput(j, "", a) for j, a in enumerate(answers(ids, p))]
            else:
                out = [CompletionOutput(j, *self._text_answer(ids, p, j)) for j in range(p.n)]
            outputs.append(RequestOutput(ids, out))
        return outputs

    def _text_answer(self, ids: list[int], p: SamplingParams, j: int) -> tuple[str, list[int]]:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        rng = None
        if p.temperature > 0:
            rng = np.random.default_rng([self.seed if p.seed is None else p.seed, zlib.crc32(str(ids).encode()), j])
        answer = self.answer(text, rng)
        token_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"][: p.max_tokens]
        if len(token_ids) < p.max_tokens and self.tokenizer.eos_token_id is not None:
            token_ids.append(self.tokenizer.eos_token_id)
        return answer, token_ids


def install(monkeypatch, answer=default_answer) -> types.ModuleType:
    """Make `import vllm` (and `importlib.util.find_spec("vllm")`) give this fake for the test's duration."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", loader=None)
    engine = type("LLM", (LLM,), {"answer": None if answer is None else staticmethod(answer), "built": []})
    module.LLM, module.SamplingParams = engine, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
