"""Batched text generation for scorers that need an LM's words (the tagger): greedy or seeded sampling, transformers or
vLLM, each row's output independent of the batch it is in.

- `temperature == 0` is greedy decoding (argmax; the seed plays no part).
- `temperature > 0` samples each of the `num_samples` sequences of a row from its own generator, seeded by the row's
  seed and the sample's index, with a Gumbel-max draw over the top-p nucleus (`hf_diverse.scorers.sampling`, the
  draw ADG uses), so a row's samples do not depend on the `map` batch size or the other rows.
- The prompts are left-padded and prefilled once per row; the KV cache is shared by the row's samples; sequences
  that hit an EOS id leave the batch.
- `backend="vllm"`: one request per prompt with `SamplingParams(n=num_samples, seed=...)`
  (`hf_diverse.scorers.sampling.generate_vllm`).
"""

import torch

from .sampling import (
    SamplingSettings,
    _prefill,
    draw_next,
    feed_step,
    generate_vllm,
    output_cache,
    sample_generators,
)

__all__ = ["SamplingSettings", "generate", "generate_vllm"]


def generate(
    model, prompts: list[list[int]], seeds: list[int], settings: SamplingSettings, eos: list[int], pad_id: int
) -> list[list[int]]:
    """`settings.num_samples` completions per prompt (row-major) from a transformers causal LM.

    Args:
        model (`PreTrainedModel`): the causal LM, in eval mode.
        prompts (`list[list[int]]`): the prompts' token ids.
        seeds (`list[int]`): one seed per prompt (e.g. `hf_diverse.scorers.sampling.row_seed`); unused when greedy.
        settings (`SamplingSettings`): samples per prompt, temperature (0: greedy), top_p, max_new_tokens.
        eos (`list[int]`): the ids that end a completion (not included in it).
        pad_id (`int`): the padding id of the prompts.

    Returns:
        `list[list[int]]`: `len(prompts) * num_samples` completions' token ids.

    Example:
    ```py
    >>> from hf_diverse.models import load_causal_lm
    >>> model, tok, _ = load_causal_lm()
    >>> chat = [{"role": "user", "content": "Say hi."}]
    >>> text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    >>> ids = tok(text, add_special_tokens=False)["input_ids"]
    >>> out = generate(model, [ids], [0], SamplingSettings(1, 0.0, 1.0, 8), [tok.eos_token_id], tok.pad_token_id)
    >>> len(out), len(out[0]) <= 8
    (1, True)
    ```
    """
    n = len(prompts) * settings.num_samples
    if n == 0:
        return []
    device = next(model.parameters()).device
    eos_ids = torch.tensor(eos or [-1], device=device)
    greedy = settings.temperature == 0
    with torch.inference_mode():
        cache, logits, mask, next_pos = _prefill(model, prompts, pad_id, settings.num_samples, device)
        generators = None if greedy else sample_generators(seeds, settings.num_samples, device)
        alive = torch.arange(n, device=device)
        alive_list = list(range(n))
        tokens = torch.full((n, settings.max_new_tokens), -1, dtype=torch.long, device=device)
        for step in range(settings.max_new_tokens):
            new = draw_next(logits, generators, alive_list, settings)
            going = ~torch.isin(new, eos_ids)
            tokens[alive[going], step] = new[going]
            if step == settings.max_new_tokens - 1:
                break
            fed = feed_step(model, cache, new, going, alive, alive_list, mask, next_pos)
            if fed is None:
                break
            out, alive, alive_list, new, mask, next_pos = fed
            cache, logits = output_cache(out), out.logits[:, -1].float()
    return [[t for t in row if t >= 0] for row in tokens.tolist()]
