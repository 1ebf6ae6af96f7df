"""`TagScorer`: InsTag-style intent and topic tags from an instruction-tuned LM (the macro-to-micro paper's meso
level).

The paper (Appendix D.2) tags each instruction and response with an LLM using prompts adapted from InsTag (Lu et
al. 2023), filters non-words, merges synonyms and clusters the tags (`hf_diverse.scorers.tag_categories`). This
scorer is the first step, written for this project:

- The prompt (`TAG_PROMPT`) asks for short intent / topic tags as a JSON list of strings, after two worked examples
  (`EXAMPLES`, as earlier chat turns: a 135M model follows the format far more often with them); it is rendered
  with the model's chat template (plain "Text: ... Tags: ..." lines without one).
- Parsing (`parse_tags`) takes a JSON list (of strings, or of InsTag's `{"tag": ..., "explanation": ...}` objects,
  also when the list is cut short by `max_new_tokens`), else one tag per line (bullets and numbers stripped, text
  after a colon dropped), else comma-separated tags (a single line that ends like a sentence, or with an item that
  is no tag, is a sentence: no tags). Each tag goes through `clean_tag`: lowercase, whitespace collapsed,
  surrounding quotes and punctuation stripped; a tag without a letter (a non-word), longer than `MAX_TAG_WORDS`
  words or `MAX_TAG_CHARS` characters, or repeated, is dropped; at most `max_tags` are kept.
- A row whose output yields no tag is asked once more, with the answer started as `["` (the chat template's
  `continue_final_message`) so the model has to write a JSON list. Still nothing: the row gets `[]` and its status
  column says `"failed"` (`"ok"` or `"retried"` otherwise, `"no_text"` for an empty text); each batch logs its
  counts. Count them with `Counter(ds["tags_status"])`.
- Decoding is greedy by default (`temperature=0`), so tags are deterministic for any seed. With `temperature > 0`
  each row samples from its own seeded generator (`hf_diverse.scorers.generation`): the tags do not depend on the
  batch size or the other rows. `num_samples > 1` (sampling only) keeps the tags found in at least half of the
  samples (self-consistency, hf_diverse's stand-in for the paper's check by a second model).
- Texts longer than `max_input_tokens` tokens are cut to that length before tagging (logged with the count).
"""

import json
import math
import re

import torch
from datasets import List, Value

from ..errors import InvalidParameterError
from ..models import load_causal_lm, load_tokenizer, resolve_causal_lm
from ..textviews import TextView
from ..utils.logging import get_logger
from .base import Scorer
from .generation import generate
from .sampling import SamplingSettings, check_backend, eos_token_ids, generate_vllm, load_vllm, row_seed

logger = get_logger(__name__)

COMPONENTS = ("instruction", "response")
STATUSES = ("ok", "retried", "failed", "no_text")
MAX_TAG_WORDS = 5
MAX_TAG_CHARS = 48
# bump when the scorer's output for the same inputs changes
ALGORITHM_VERSION = 1
TAG_PROMPT = (
    "Give short tags for the user intentions and the topics of this {what}, as a JSON list of strings (one to three "
    "lowercase words each).\n\n{What}:\n{text}"
)
# worked examples shown before the row's text, per component: (text, tags)
EXAMPLES = {
    "instruction": (
        ("Write a haiku about autumn leaves falling in the park.", ["poetry", "haiku", "nature", "autumn"]),
        (
            "A train travels 120 km in 1.5 hours. What is its average speed? Answer in one sentence.",
            ["math", "word problem", "speed", "length constraint"],
        ),
    ),
    "response": (
        (
            "Crimson leaves let go / drifting over quiet paths / the park breathes autumn.",
            ["poetry", "haiku", "nature"],
        ),
        ("Its average speed is 120 km / 1.5 h = 80 km/h.", ["math", "arithmetic", "unit conversion"]),
    ),
}
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)]|[a-z][.)])\s+")
_TRIM = " \t\r\n\"'`.,;:!?()[]{}<>#*_"


def column_names(component: str) -> tuple[str, str]:
    """`(tags column, status column)` written for `component`: `tags` / `response_tags` and `<column>_status`."""
    column = "tags" if component == "instruction" else "response_tags"
    return column, f"{column}_status"


def clean_tag(tag) -> str | None:
    """A tag lowercased and stripped, or `None` when it is not a usable tag (no letter, too long, not a string).

    Example:
    ```py
    >>> clean_tag('  "Creative   Writing". '), clean_tag("123"), clean_tag("###")
    ('creative writing', None, None)
    ```
    """
    if isinstance(tag, dict):  # InsTag's {"tag": ..., "explanation": ...}
        tag = tag.get("tag")
    if not isinstance(tag, str):
        return None
    tag = " ".join(tag.lower().split()).strip(_TRIM)
    tag = " ".join(tag.split())
    if not tag or not any(c.isalpha() for c in tag):
        return None
    if len(tag) > MAX_TAG_CHARS or len(tag.split()) > MAX_TAG_WORDS:
        return None
    return tag


def _json_items(text: str):
    """The items of the first JSON list in `text`, also when it was cut short; `None` without a list."""
    start = text.find("[")
    if start < 0:
        return None
    end = text.rfind("]")
    candidates = [text[start : end + 1]] if end > start else []
    body = text[start:].rstrip().rstrip(",")
    candidates += [body + "]", body + '"]', body + "}]", body + '"}]']
    for candidate in candidates:
        try:
            items = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(items, list):
            return items
    # a list that does not parse at all: its quoted strings
    quoted = re.findall(r'"((?:[^"\\]|\\.)*)"', text[start:])
    return quoted or None


def parse_tags(text: str, max_tags: int = 8) -> list[str]:
    """The tags in a model's answer (see the module docstring): a JSON list, else lines, else comma-separated.

    Returns the cleaned, de-duplicated tags in order (at most `max_tags`); `[]` when there are none.

    Example:
    ```py
    >>> parse_tags('Sure! ["Poetry", "nature", "haiku", "poetry"]')
    ['poetry', 'nature', 'haiku']
    >>> parse_tags('[{"tag": "math", "explanation": "..."}, {"tag": "algeb')   # cut short: the complete ones
    ['math', 'algeb']
    >>> parse_tags("1. travel planning\\n2. budget")
    ['travel planning', 'budget']
    >>> parse_tags("I cannot help with that request, sorry about it.")   # a sentence, not tags
    []
    >>> parse_tags("math, geometry, proofs")
    ['math', 'geometry', 'proofs']
    ```
    """
    items = _json_items(text)
    if items is None:
        lines = [_BULLET.sub("", line) for line in text.splitlines() if line.strip()]
        if len(lines) == 1:  # comma-separated tags, or a sentence (then no tag at all)
            items = lines[0].split(",")
            if lines[0].rstrip().endswith((".", "!", "?")) or any(clean_tag(item) is None for item in items):
                return []
        else:  # one tag per line, InsTag's "tag: explanation" cut at the colon
            items = [line.split(":")[0] for line in lines]
    out: list[str] = []
    for item in items:
        tag = clean_tag(item)
        if tag is not None and tag not in out:
            out.append(tag)
    return out[:max_tags]


class TagScorer(Scorer):
    """Adds InsTag-style tags of each instruction (or response) and a status column (see the module docstring).

    A `Scorer` (picklable callable for `Dataset.map(batched=True)`): plain arguments, the LM loaded on the first call,
    so `datasets` can hash it and a second identical `map` re-uses the cache.

    Args:
        model (`str`, *optional*): any chat model, Hub id or local path; default the embedded SmolLM2-135M-Instruct
            (offline, converted once from the bundled GGUF).
        component (`str`, defaults to `"instruction"`): `"instruction"` writes `tags` / `tags_status`, `"response"`
            writes `response_tags` / `response_tags_status`.
        max_tags (`int`, defaults to 8): tags kept per row.
        max_new_tokens (`int`, defaults to 64): answer length limit.
        max_input_tokens (`int`, defaults to 512): texts are cut to this many tokens first (logged).
        temperature (`float`, defaults to 0): 0 is greedy decoding; above 0, seeded sampling per row.
        top_p (`float`, defaults to 1.0): nucleus mass when sampling.
        num_samples (`int`, defaults to 1): answers per row when sampling; tags in at least half of them are kept.
        seed (`int`, defaults to 0): combined with each row's text into its sampling seed.
        backend (`str`, defaults to `"transformers"`): `"vllm"` generates with vLLM when installed (`pip install
            'hf_diverse[vllm]'`; one request per row with its own seed, `n=num_samples`); only the tokenizer is loaded
            with transformers then.
        batch_size (`int`, defaults to 16): rows generated together (transformers).
        text_columns (`list[str]` or `dict`, *optional*): override format detection (see `TextView`).
        device (`str`, *optional*): `None` is auto; with `map(with_rank=True)` rank r runs on `cuda:{r % n_gpus}`.
        dtype (`str`, *optional*): model dtype, e.g. `"bfloat16"`; default bf16/fp16 on GPU, fp32 on CPU.
        revision (`str`, *optional*): model revision on the Hub.
        gpu_memory_utilization (`float`, defaults to 0.9): vLLM's share of GPU memory.
        keep_answers (`bool`, defaults to `False`): also write the model's raw answers as `<column>_answers` (the
            first attempt's, then the retry's when there was one), to inspect what the tagger said.

    Example:
    ```py
    >>> from collections import Counter
    >>> scorer = TagScorer(max_new_tokens=16)
    >>> rows = Dataset.from_dict({"prompt": ["Write a haiku about autumn leaves."], "response": ["..."]})
    >>> scorer.features(rows)["tags"]
    List(Value('string'))
    >>> tagged = rows.map(scorer, batched=True, features=scorer.features(rows))  # doctest: +SKIP
    >>> tagged[0]["tags"]  # doctest: +SKIP
    ['haiku', 'poetry', 'autumn', 'nature']
    >>> Counter(tagged["tags_status"])  # doctest: +SKIP
    Counter({'ok': 1})
    ```
    """

    repr_fields = ("model", "component", "max_tags", "temperature", "num_samples", "backend", "seed")
    _vllm = None

    def __init__(
        self,
        model: str | None = None,
        component: str = "instruction",
        max_tags: int = 8,
        max_new_tokens: int = 64,
        max_input_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int = 0,
        backend: str = "transformers",
        batch_size: int = 16,
        text_columns=None,
        device: str | None = None,
        dtype: str | None = None,
        revision: str | None = None,
        gpu_memory_utilization: float = 0.9,
        keep_answers: bool = False,
    ):
        _check_arguments(component, max_tags, max_new_tokens, max_input_tokens, temperature, top_p, num_samples)
        _check_backend(backend, batch_size, dtype)
        self.model = model
        self.component = component
        self.max_tags = int(max_tags)
        self.max_new_tokens = int(max_new_tokens)
        self.max_input_tokens = int(max_input_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.backend = backend
        self.batch_size = int(batch_size)
        self.text_columns = text_columns
        self.device = device
        self.dtype = dtype
        self.revision = revision
        self.gpu_memory_utilization = float(gpu_memory_utilization)
        self.keep_answers = bool(keep_answers)
        # part of the pickled state, so `datasets` caches made by an older algorithm are not re-used
        self.algorithm_version = ALGORITHM_VERSION

    @property
    def columns(self) -> tuple[str, str]:
        return column_names(self.component)

    @property
    def model_info(self) -> dict:
        """What provenance records about the tagger: the LM and the decoding settings."""
        _, info = resolve_causal_lm(self.model)
        keys = ("component", "max_tags", "max_new_tokens", "max_input_tokens", "temperature", "top_p", "num_samples")
        return {**info, "revision": self.revision, **{k: getattr(self, k) for k in keys}, "backend": self.backend}

    def output_features(self) -> dict:
        tags, status = self.columns
        feats = {tags: List(Value("string")), status: Value("string")}
        if self.keep_answers:
            feats[f"{tags}_answers"] = List(Value("string"))
        return feats

    def load_model(self, device: torch.device):
        """`(model, tokenizer)`; the model is `None` with the vLLM backend (only its tokenizer is needed here)."""
        kwargs = {"revision": self.revision} if self.revision is not None else {}
        if self.backend == "vllm":
            path, _ = resolve_causal_lm(self.model)
            tokenizer = load_tokenizer(path, **kwargs)
            model = None
        else:
            dtype = getattr(torch, self.dtype) if self.dtype is not None else None
            model, tokenizer, _ = load_causal_lm(self.model, device=device, dtype=dtype, **kwargs)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    # --- prompts -------------------------------------------------------------------------------------------
    def _messages(self, text: str) -> list[dict]:
        what = self.component
        messages = []
        for example, tags in EXAMPLES[what]:
            messages.append(
                {"role": "user", "content": TAG_PROMPT.format(what=what, What=what.capitalize(), text=example)}
            )
            messages.append({"role": "assistant", "content": json.dumps(tags)})
        messages.append({"role": "user", "content": TAG_PROMPT.format(what=what, What=what.capitalize(), text=text)})
        return messages

    def _prompt_ids(self, tokenizer, text: str, retry: bool) -> list[int]:
        messages = self._messages(text)
        if getattr(tokenizer, "chat_template", None):
            if retry:  # start the answer as a JSON list
                messages.append({"role": "assistant", "content": '["'})
            rendered = tokenizer.apply_chat_template(
                messages, add_generation_prompt=not retry, continue_final_message=retry, tokenize=False
            )
        else:
            rendered = "".join(
                f"{m['content']}\n" if m["role"] == "user" else f"Tags: {m['content']}\n\n" for m in messages
            )
            rendered += "Tags: " + ('["' if retry else "")
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]

    def _texts(self, batch, indices, tokenizer) -> tuple[list[str], int]:
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns)
        texts = view.texts(batch, what=self.component, indices=indices)
        out, cut = [], 0
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > self.max_input_tokens:
                text = tokenizer.decode(ids[: self.max_input_tokens], skip_special_tokens=True)
                cut += 1
            out.append(text.strip())
        return out, cut

    # --- generation ----------------------------------------------------------------------------------------
    def _settings(self) -> SamplingSettings:
        return SamplingSettings(self.num_samples, self.temperature, self.top_p, self.max_new_tokens)

    def _generate(self, model, tokenizer, prompts: list[list[int]], seeds: list[int], device) -> list[str]:
        """`num_samples` decoded answers per prompt (row-major)."""
        if not prompts:
            return []
        if self.backend == "vllm":
            if self._vllm is None:
                path, _ = resolve_causal_lm(self.model)
                self._vllm = load_vllm(path, self.revision, self.dtype, self.seed, self.gpu_memory_utilization)
            eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
            ids = generate_vllm(self._vllm, prompts, seeds, self._settings(), eos)
        else:
            eos = eos_token_ids(model, tokenizer)
            ids = [None] * (len(prompts) * self.num_samples)
            k = self.num_samples
            order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths: less padding
            for start in range(0, len(order), self.batch_size):
                group = order[start : start + self.batch_size]
                out = generate(
                    model,
                    [prompts[i] for i in group],
                    [seeds[i] for i in group],
                    self._settings(),
                    eos,
                    tokenizer.pad_token_id,
                )
                for pos, i in enumerate(group):
                    ids[i * k : (i + 1) * k] = out[pos * k : (pos + 1) * k]
        return [tokenizer.decode(x, skip_special_tokens=True) for x in ids]

    def _vote(self, answers: list[str], prefix: str = "") -> list[str]:
        """The tags of one row's answers: all of them for one answer, else those in at least half of them."""
        parsed = [parse_tags(prefix + a, self.max_tags) for a in answers]
        if len(parsed) == 1:
            return parsed[0]
        need = math.ceil(len(parsed) / 2)
        order: list[str] = [t for tags in parsed for t in tags]
        return [t for t in dict.fromkeys(order) if sum(t in tags for tags in parsed) >= need][: self.max_tags]

    # --- map entry point -----------------------------------------------------------------------------------
    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        column, status_column = self.columns
        n = len(next(iter(batch.values()))) if batch else 0
        if n == 0:
            return {name: [] for name in self.output_features()}
        model, tokenizer = self.load(device)
        texts, cut = self._texts(batch, indices, tokenizer)
        tags: list[list[str]] = [[] for _ in range(n)]
        raw: list[list[str]] = [[] for _ in range(n)]
        status = ["no_text" if not t else "failed" for t in texts]
        todo = [i for i in range(n) if texts[i]]
        k = self.num_samples
        for attempt, label in ((False, "ok"), (True, "retried")):
            if not todo:
                break
            prompts = [self._prompt_ids(tokenizer, texts[i], retry=attempt) for i in todo]
            seeds = [row_seed(self.seed, [texts[i], "retry" if attempt else "first"]) for i in todo]
            answers = self._generate(model, tokenizer, prompts, seeds, device)
            still = []
            for pos, i in enumerate(todo):
                raw[i].extend(('["' if attempt else "") + a for a in answers[pos * k : (pos + 1) * k])
                found = self._vote(answers[pos * k : (pos + 1) * k], prefix='["' if attempt else "")
                if found:
                    tags[i], status[i] = found, label
                else:
                    still.append(i)
            todo = still
        logger.info(
            "TagScorer: %d rows, %d tagged at once, %d after a retry, %d failed, %d without text, %d cut to %d "
            "tokens.",
            n,
            status.count("ok"),
            status.count("retried"),
            status.count("failed"),
            status.count("no_text"),
            cut,
            self.max_input_tokens,
        )
        out = {column: tags, status_column: status}
        if self.keep_answers:
            out[f"{column}_answers"] = raw
        return out


def _check_arguments(component, max_tags, max_new_tokens, max_input_tokens, temperature, top_p, num_samples):
    """Raise `InvalidParameterError` naming the first bad argument."""
    if component not in COMPONENTS:
        raise InvalidParameterError(f"Unknown component={component!r}. Valid values: {list(COMPONENTS)}.")
    for name, value in (
        ("max_tags", max_tags),
        ("max_new_tokens", max_new_tokens),
        ("max_input_tokens", max_input_tokens),
        ("num_samples", num_samples),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}.")
    if not temperature >= 0:
        raise InvalidParameterError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}.")
    if not 0 < top_p <= 1:
        raise InvalidParameterError(f"top_p must be in (0, 1], got {top_p!r}.")
    if num_samples > 1 and temperature == 0:
        raise InvalidParameterError(
            f"num_samples={num_samples} needs temperature > 0: greedy decoding gives the same answer every time."
        )


def _check_backend(backend, batch_size, dtype):
    check_backend(backend, dtype)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer, got {batch_size!r}.")
