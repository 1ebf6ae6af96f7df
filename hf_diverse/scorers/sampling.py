"""ADG's answer sampling: per-row seeds, top-p Gumbel-max draws, fused sampling + pooling, and the vLLM call.

Randomness is per sample: answer j of a row draws from its own `torch.Generator`, seeded by a hash of (seed, the
row's prompt messages, j), and each step is a Gumbel-max draw (`argmax(logits / T + Gumbel noise)` over the top-p
nucleus, an exact sample of the same distribution as transformers' sampling). So a row's answers do not depend on
the `map` batch size, the other rows of the batch or the rank. Gumbel-max is also robust to the float rounding that
batching changes: a draw flips only if the rounding exceeds the gap between the two best perturbed logits, whereas an
inverse-CDF draw flips whenever the rounding moves the CDF across a token boundary (likely on flat, high-temperature
distributions).
"""

import functools
import hashlib
import importlib.util
import inspect
import json
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidParameterError, MissingDependencyError
from .answer_geometry import mean_of_layers, normalise_rows

BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class SamplingSettings:
    """How ADG samples: `num_samples` (K) answers per prompt at `temperature` / `top_p`, `max_new_tokens` each."""

    num_samples: int
    temperature: float
    top_p: float
    max_new_tokens: int


def row_seed(seed: int, messages) -> int:
    """A 63-bit seed from `seed` and a row's prompt messages (stable across processes and Python versions)."""
    payload = json.dumps([int(seed), messages], ensure_ascii=False, sort_keys=True).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little") & (2**63 - 1)


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample `index` of the row seeded `seed`."""
    payload = seed.to_bytes(8, "little") + index.to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little") & (2**63 - 1)


def sample_generators(seeds: list[int], num_samples: int, device: torch.device) -> list[torch.Generator]:
    """One generator per sample, row-major (`num_samples` per row), on the device when it is CUDA (else on the CPU)."""
    where = device if device.type == "cuda" else torch.device("cpu")
    return [torch.Generator(device=where).manual_seed(sample_seed(s, j)) for s in seeds for j in range(num_samples)]


def sample_top_p(logits: torch.Tensor, noise: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """One token per row from `softmax(logits / temperature)` restricted to the top-p nucleus, by Gumbel-max.

    The nucleus is the smallest set of most likely tokens whose mass reaches `top_p` (the set transformers'
    `TopPLogitsWarper` keeps; tokens tied with its least likely member are kept too). Only its probability threshold
    needs a sort (numpy's vectorised sort on CPU, far faster there than torch's). `noise[i]` holds row i's uniforms
    in [0, 1), one per vocabulary entry, so row i's token depends on row i alone.
    """
    scaled = logits.float() / temperature
    if top_p < 1.0:
        probs = torch.softmax(scaled, dim=-1)
        if probs.device.type == "cpu":
            ordered = torch.from_numpy(np.ascontiguousarray(np.sort(probs.numpy(), axis=-1)[:, ::-1]))
        else:
            ordered = probs.sort(dim=-1, descending=True).values
        before = ordered.cumsum(dim=-1) - ordered  # mass of the more likely tokens: non-decreasing
        n_keep = (before < top_p).sum(dim=-1).clamp(min=1)
        threshold = ordered.gather(1, (n_keep - 1)[:, None])
        scaled = scaled.masked_fill(probs < threshold, float("-inf"))
    gumbel = -torch.log(-torch.log(noise.to(scaled.device, torch.float32)))  # a uniform of 0 gives -inf: never drawn
    return (scaled + gumbel).argmax(dim=-1)


def eos_token_ids(model, tokenizer) -> list[int]:
    """The ids that end an answer: the generation config's EOS ids plus the tokenizer's."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def cut_at_eos(ids: list[int], eos: list[int]) -> list[int]:
    """`ids` up to (without) the first EOS id."""
    for pos, t in enumerate(ids):
        if t in eos:
            return ids[:pos]
    return ids


def output_cache(out):
    """The KV cache of a forward pass's output: `cache` since transformers 5.x, `past_key_values` before."""
    return out["cache"] if "cache" in out.keys() else out.past_key_values


@functools.cache
def _cache_argument_of(model_class) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def cache_argument(model) -> str:
    """The name under which `model.forward` takes a KV cache: `cache` since transformers 5.x (the old
    `past_key_values` warns there and goes in 5.40), `past_key_values` before. Read once per model class."""
    return _cache_argument_of(type(model))


def _prefill(model, prompts: list[list[int]], pad_id: int, k: int, device: torch.device):
    """Left-padded forward pass over the prompts, its KV cache and last logits repeated `k` times per row.

    Returns `(cache, logits, mask, next_positions)`, each with `len(prompts) * k` rows (row-major).
    """
    rows, width = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    except TypeError:  # models without `logits_to_keep`
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    cache = output_cache(out)
    cache.batch_repeat_interleave(k)
    logits = out.logits[:, -1].float().repeat_interleave(k, dim=0)
    return cache, logits, mask.repeat_interleave(k, dim=0), positions[:, -1].repeat_interleave(k) + 1


def check_backend(backend: str, dtype) -> None:
    """Raise `InvalidParameterError` for an unknown backend or dtype, `MissingDependencyError` when vLLM is missing."""
    if backend not in BACKENDS:
        raise InvalidParameterError(f"Unknown backend={backend!r}. Valid values: {list(BACKENDS)}.")
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError(
            "backend='vllm' needs vLLM. Install it with `pip install 'hf_diverse[vllm]'`, or use "
            "backend='transformers'."
        )
    if dtype is not None and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise InvalidParameterError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'float16', 'bfloat16'.")


def draw_next(logits: torch.Tensor, generators, alive_list: list[int], settings: SamplingSettings) -> torch.Tensor:
    """The next token of each live row: the argmax when `generators` is None, else a top-p sample drawn with the
    row's own generator (`alive_list[i]` is the sequence index of batch row i)."""
    if generators is None:
        return logits.argmax(dim=-1)
    noise = torch.stack(
        [torch.rand(logits.shape[-1], generator=generators[i], device=generators[i].device) for i in alive_list]
    )
    return sample_top_p(logits, noise, settings.temperature, settings.top_p)


def feed_step(model, cache, new, going, alive, alive_list, mask, next_pos, **model_kwargs):
    """One decoding step: drop the rows that just finished (`going` False) from the batch and its KV cache, then feed
    the new token of each remaining row.

    Returns `(out, alive, alive_list, new, mask, next_pos)` for the rows left, or `None` when none is.
    """
    if not bool(going.all()):
        keep = going.nonzero().squeeze(1)
        if keep.numel() == 0:
            return None
        cache.batch_select_indices(keep)
        alive, new, mask, next_pos = alive[keep], new[keep], mask[keep], next_pos[keep]
        alive_list = [alive_list[i] for i in keep.tolist()]
    mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    out = model(
        input_ids=new[:, None],
        attention_mask=mask,
        position_ids=next_pos[:, None],
        use_cache=True,
        **{cache_argument(model): cache},
        **model_kwargs,
    )
    return out, alive, alive_list, new, mask, next_pos + 1


def sample_and_pool(
    model,
    prompts: list[list[int]],
    seeds: list[int],
    settings: SamplingSettings,
    weights: torch.Tensor,
    eos: list[int],
    pad_id: int,
):
    """Sample K answers per prompt and pool their teacher-forced hidden states in the same pass.

    The prompt is prefilled once per row and its KV cache repeated K times. Each decoding step feeds the previous
    answer token, so the step's hidden states *are* that token's teacher-forced states over prompt + answer (the KV
    cache is exact teacher forcing); they are accumulated with the token `weights` as they come, and one last step
    feeds the final token. EOS ends a sequence (EOS itself is not pooled) and finished sequences leave the batch.

    Args:
        model (`PreTrainedModel`): the causal LM.
        prompts (`list[list[int]]`): the prompts' token ids.
        seeds (`list[int]`): one `row_seed` per prompt.
        settings (`SamplingSettings`): K, temperature, top_p, max_new_tokens.
        weights (`torch.Tensor`): per-vocabulary-id token weights on the model's device.
        eos (`list[int]`): the ids that end an answer.
        pad_id (`int`): the padding id of the prompts.

    Returns:
        `(answers, vectors)`: K answer token-id lists per prompt (EOS excluded, row-major) and their L2-normalised
        `(len(prompts) * K, d)` float32 vectors on the CPU.
    """
    device = next(model.parameters()).device
    n = len(prompts) * settings.num_samples
    eos_ids = torch.tensor(eos or [-1], device=device)
    with torch.inference_mode():
        cache, logits, mask, next_pos = _prefill(model, prompts, pad_id, settings.num_samples, device)
        generators = sample_generators(seeds, settings.num_samples, device)
        alive = torch.arange(n, device=device)  # sequence index of each batch row
        alive_list = list(range(n))
        tokens = torch.full((n, settings.max_new_tokens), -1, dtype=torch.long, device=device)
        sums = torch.zeros(n, model.config.get_text_config().hidden_size, dtype=torch.float32, device=device)
        totals = torch.zeros(n, dtype=torch.float32, device=device)
        for step in range(settings.max_new_tokens):
            new = draw_next(logits, generators, alive_list, settings)
            going = ~torch.isin(new, eos_ids)
            tokens[alive[going], step] = new[going]
            fed = feed_step(model, cache, new, going, alive, alive_list, mask, next_pos, output_hidden_states=True)
            if fed is None:
                break
            out, alive, alive_list, new, mask, next_pos = fed
            w = weights[new.clamp(max=weights.shape[0] - 1)]
            sums.index_add_(0, alive, mean_of_layers(out.hidden_states)[:, -1] * w[:, None])
            totals.index_add_(0, alive, w)
            cache, logits = output_cache(out), out.logits[:, -1].float()
        vectors = normalise_rows(sums / totals[:, None].clamp(min=1e-8))
    answers = [[t for t in row if t >= 0] for row in tokens.tolist()]
    return answers, vectors.cpu()


def load_vllm(path: str, revision: str | None, dtype: str | None, seed: int, gpu_memory_utilization: float):
    """A vLLM engine for `path` (vLLM is an optional extra: imported here)."""
    from vllm import LLM

    return LLM(
        model=path, revision=revision, dtype=dtype or "auto", seed=seed, gpu_memory_utilization=gpu_memory_utilization
    )


def generate_vllm(llm, prompts: list[list[int]], seeds: list[int], settings: SamplingSettings, eos: list[int]):
    """K answers per prompt from a vLLM engine, one seeded request per prompt; token ids cut at the first EOS.

    Returns:
        `list[list[int]]`: `len(prompts) * K` answers, row-major.
    """
    from vllm import SamplingParams

    params = [
        SamplingParams(
            n=settings.num_samples,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_new_tokens,
            seed=s % (2**31),
        )
        for s in seeds
    ]
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    return [cut_at_eos(list(o.token_ids), eos) for out in outputs for o in out.outputs]
