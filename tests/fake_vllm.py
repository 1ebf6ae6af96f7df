"""A stand-in for the part of vLLM's offline API hf_diverse calls, for CPU tests of the `backend="vllm"` paths.

It honours the interface: `LLM(model=..., revision=..., dtype=..., seed=..., gpu_memory_utilization=...)`,
`SamplingParams(n=..., temperature=..., top_p=..., max_tokens=..., seed=...)` (one per request, or one for all), and
`LLM.generate([{"prompt_token_ids": [...]}, ...], params, use_tqdm=False)` returning one output per request whose
`.outputs` holds `n` completions with `.token_ids` and `.text`. Completions are deterministic: greedy requests
(`temperature == 0`) depend on the prompt only, sampled ones on the prompt, the request's `seed` and the sample's
index; every request is recorded in `LLM.requests`.

`answer=` chooses what the engine "says" for a prompt (its decoded text): by default a JSON list of words of the
prompt's last lines, picked with the request's generator.

Use it with `install(monkeypatch)`, which puts it in `sys.modules["vllm"]`.
"""

import importlib.machinery
import json
import sys
import types
import zlib
from dataclasses import dataclass, field

import numpy as np
from transformers import AutoTokenizer


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None

    def __post_init__(self):
        if self.n < 1 or self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ValueError(f"invalid SamplingParams {self}")


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


class LLM:
    """The engine: loads the tokenizer of `model` (a local path) and answers with `answer(prompt_text, rng)`."""

    answer = staticmethod(default_answer)

    def __init__(self, model, revision=None, dtype="auto", seed=0, gpu_memory_utilization=0.9, **kwargs):
        self.model, self.seed, self.gpu_memory_utilization = model, seed, gpu_memory_utilization
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
            self.requests.append({"prompt_token_ids": ids, "params": p})
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out = RequestOutput(ids)
            for j in range(p.n):
                if p.temperature == 0:
                    rng = None
                else:
                    seed = self.seed if p.seed is None else p.seed
                    rng = np.random.default_rng([seed, zlib.crc32(str(ids).encode()), j])
                answer = self.answer(text, rng)
                token_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"][: p.max_tokens]
                if len(token_ids) < p.max_tokens and self.tokenizer.eos_token_id is not None:
                    token_ids.append(self.tokenizer.eos_token_id)
                out.outputs.append(CompletionOutput(j, answer, token_ids))
            outputs.append(out)
        return outputs


def install(monkeypatch, answer=None) -> types.ModuleType:
    """Make `import vllm` give this fake (for the test's duration); `answer` replaces the default answer."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", loader=None)
    engine = type("LLM", (LLM,), {"answer": staticmethod(answer)}) if answer is not None else LLM
    module.LLM, module.SamplingParams = engine, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
