"""Quality scores that work offline, as `Dataset.map(batched=True)` columns: causal-LM likelihood and IFD, and any
reward model.

**`LMQualityScorer`** scores each row's answer (the last assistant turn) under a causal LM (default: the embedded
SmolLM2-135M-Instruct):

- `lm_loglik`: mean log-likelihood per answer token given the conversation before it (chat template when the
  tokenizer has one, else the user turns joined by blank lines). Higher = the LM finds the answer more likely
  (fluent, on-topic, but also generic and easy).
- `ifd`: the Instruction-Following Difficulty of Cherry-LLM (Li et al., 2024): conditioned answer loss /
  unconditioned answer loss, both the mean negative log-likelihood of the same answer tokens, the unconditioned one
  with only the BOS token (else EOS) as context. IFD near 0: the instruction makes the answer easy; IFD >= 1: the
  instruction does not help at all (Cherry-LLM drops those as misaligned); in between, *higher* IFD = harder, more
  informative pairs, which Cherry-LLM keeps.

Which column to pass as `quality_column` (higher must be better there):
- `quality_column="ifd"` after dropping rows with `ifd >= 1` (`ds.filter(lambda r: r["ifd"] < 1)`), to prefer
  hard-but-aligned pairs as Cherry-LLM does. Lower IFD is not "better".
- `quality_column="lm_loglik"` to prefer answers the LM finds likely.

Truncation: sequences are cut to `max_length` tokens. The answer keeps its first tokens; the context keeps its last
tokens and at least `max_length // 2` of them when it is that long (so a long answer cannot squeeze the instruction
out). Rows whose answer is empty (or that have no assistant turn) get NaN in both columns: drop them before using a
column as quality (`select_diverse` refuses NaN).

**`RewardModelScorer`** runs any `AutoModelForSequenceClassification` reward model on the conversation (chat
template when the tokenizer has one, else the instruction / response text pair) and writes its score (`reward`).
"""

import inspect
import math

import numpy as np
import torch
from datasets import Value

from ..errors import InvalidParameterError, ModelLoadError
from ..models import load_causal_lm, resolve_causal_lm, torch_dtype_for
from ..textviews import TextView
from .base import Scorer


def _split_conversation(conv: list[dict]) -> tuple[list[dict], str]:
    """(messages before the last assistant turn, that turn's text); no assistant turn gives (conv, "")."""
    for pos in range(len(conv) - 1, -1, -1):
        if conv[pos]["role"] == "assistant":
            return conv[:pos], conv[pos]["content"]
    return conv, ""


def _dtype(name: str | None, device: torch.device):
    if name is None:
        return torch_dtype_for(device)
    if name not in ("float32", "float16", "bfloat16"):
        raise InvalidParameterError(f"dtype must be one of ['float32', 'float16', 'bfloat16'], got {name!r}.")
    return getattr(torch, name)


class LMQualityScorer(Scorer):
    """Adds the answer's mean log-likelihood under a causal LM (`lm_loglik`) and its IFD ratio (`ifd`).

    A `Scorer` (picklable callable for `Dataset.map(batched=True)`) like `EmbeddingScorer`: plain arguments only,
    the model is loaded on the first call, so `datasets` can hash the scorer and re-use the cache of an identical
    `map`.

    Args:
        model (`str`, *optional*): causal LM name or path; default the embedded SmolLM2-135M-Instruct.
        text_columns (`dict`, *optional*): `{"instruction": [...], "response": [...]}` to override format detection.
        loglik_column (`str`, defaults to `"lm_loglik"`): column for the mean answer log-likelihood (None: skip).
        ifd_column (`str`, defaults to `"ifd"`): column for the IFD ratio (None: skip, saving one forward pass).
        device (`str`, *optional*): `None` is auto; with `map(with_rank=True)` rank r runs on `cuda:{r % n_gpus}`.
        batch_size (`int`, defaults to 8): sequences per forward pass (rows are sorted by length inside a batch).
        max_length (`int`, defaults to 1024): tokens per sequence (see the truncation rule in the module docstring).
        dtype (`str`, *optional*): `"float32"`, `"float16"` or `"bfloat16"`; default bf16/fp16 on GPU, fp32 on CPU.

    Example:
    ```py
    >>> scorer = LMQualityScorer()                       # SmolLM2-135M-Instruct, offline
    >>> ds = Dataset.from_dict({"prompt": ["Name a prime number.", "Say hi."], "response": ["7 is prime.", "Hi!"]})
    >>> ds = ds.map(scorer, batched=True, batch_size=64)
    >>> ds.column_names
    ['prompt', 'response', 'lm_loglik', 'ifd']
    >>> ds = ds.filter(lambda r: r["ifd"] < 1)           # Cherry-LLM: drop pairs the instruction does not help
    >>> subset = select_diverse(ds, k=1000, quality_column="ifd")  # on a pool of thousands  # doctest: +SKIP
    ```
    """

    repr_fields = ("model", "loglik_column", "ifd_column")
    # runtime: what `load_causal_lm` reports about the loaded LM
    _info: dict | None = None

    def __init__(
        self,
        model: str | None = None,
        text_columns=None,
        loglik_column: str | None = "lm_loglik",
        ifd_column: str | None = "ifd",
        device: str | None = None,
        batch_size: int = 8,
        max_length: int = 1024,
        dtype: str | None = None,
    ):
        if batch_size <= 0:
            raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
        if max_length < 4:
            raise InvalidParameterError(f"max_length must be at least 4 tokens, got {max_length}.")
        if loglik_column is None and ifd_column is None:
            raise InvalidParameterError("Both `loglik_column` and `ifd_column` are None: nothing to write.")
        if dtype is not None:
            _dtype(dtype, torch.device("cpu"))
        self.model = model
        self.text_columns = text_columns
        self.loglik_column = loglik_column
        self.ifd_column = ifd_column
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.dtype = dtype

    @property
    def model_info(self) -> dict:
        """What provenance records about the LM (`name`, `source`, `revision` once loaded)."""
        if self._info is not None:
            return dict(self._info)
        return resolve_causal_lm(self.model)[1]

    def load_model(self, device: torch.device):
        """`(model, tokenizer)` on `device` (called once per device by `load`)."""
        model, tokenizer, self._info = load_causal_lm(self.model, device=device, dtype=_dtype(self.dtype, device))
        return model, tokenizer

    def output_features(self) -> dict:
        """float64 scores (NaN for rows without an answer)."""
        return {name: Value("float64") for name in (self.loglik_column, self.ifd_column) if name is not None}

    # --- tokenization ---------------------------------------------------------------------------------------
    def _encode(self, tokenizer, context: list[dict], answer: str) -> tuple[list[int], list[int]]:
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        else:
            text = "\n\n".join(m["content"] for m in context) + "\n\n"
            prompt_ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] if answer else []
        keep_prompt = min(len(prompt_ids), max(self.max_length - len(answer_ids), self.max_length // 2))
        prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
        answer_ids = answer_ids[: self.max_length - len(prompt_ids)]
        return prompt_ids, answer_ids

    # --- scoring --------------------------------------------------------------------------------------------
    def _answer_nll(self, model, pad_id: int, pairs: list[tuple[list[int], list[int]]], device) -> np.ndarray:
        """Mean NLL of each answer given its context, `batch_size` sequences per left-padded forward pass."""
        out = np.full(len(pairs), np.nan)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        keep_kw = "logits_to_keep" in inspect.signature(model.forward).parameters
        for start in range(0, len(order), self.batch_size):
            chunk = [i for i in order[start : start + self.batch_size] if len(pairs[i][1]) > 0]
            if not chunk:
                continue
            seqs = [pairs[i][0] + pairs[i][1] for i in chunk]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
                mask[r, width - len(s) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            n_answer = max(len(pairs[i][1]) for i in chunk)
            kwargs = {"logits_to_keep": n_answer + 1} if keep_kw else {}
            with torch.inference_mode():
                logits = model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    **kwargs,
                ).logits
            logits = logits[:, -(n_answer + 1) :]
            for r, i in enumerate(chunk):
                answer = pairs[i][1]
                a = len(answer)
                # logits at position p predict token p + 1: the answer's a tokens are predicted by the a logits
                # before the last position
                row = logits[r, -(a + 1) : -1].float()
                target = torch.tensor(answer, dtype=torch.long, device=row.device)
                logp = row.gather(1, target[:, None])[:, 0] - torch.logsumexp(row, dim=-1)
                out[i] = float(-logp.mean())
        return out

    def input_columns(self, column_names: list[str]) -> list[str]:
        """The text columns its text view reads: a row's result depends on them only."""
        return self.text_view_columns(column_names)

    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns)
        convs = view.conversations(batch, indices=indices)
        model, tokenizer = self.load(device)
        cond = [self._encode(tokenizer, *_split_conversation(c)) for c in convs]
        cond_nll = self._answer_nll(model, self._pad_id(tokenizer), cond, device)
        result = {}
        if self.loglik_column is not None:
            result[self.loglik_column] = [-v if not math.isnan(v) else float("nan") for v in cond_nll.tolist()]
        if self.ifd_column is not None:
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            if start is None:  # no token to start from: the first answer token is predicted from nothing in both
                uncond = [(a[:1], a[1:]) for _, a in cond]
                cond_nll = self._answer_nll(
                    model, self._pad_id(tokenizer), [(p + a[:1], a[1:]) for p, a in cond], device
                )
            else:
                uncond = [([start], a) for _, a in cond]
            uncond_nll = self._answer_nll(model, self._pad_id(tokenizer), uncond, device)
            with np.errstate(divide="ignore", invalid="ignore"):
                ifd = np.where(uncond_nll > 0, cond_nll / uncond_nll, np.nan)
            result[self.ifd_column] = ifd.tolist()
        return result

    @staticmethod
    def _pad_id(tokenizer) -> int:
        for value in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
            if value is not None:
                return int(value)
        return 0


REWARD_INPUT_FORMATS = ("auto", "chat", "pair")


class RewardModelScorer(Scorer):
    """Adds the score of an `AutoModelForSequenceClassification` reward model (higher = better) as a column.

    Args:
        model (`str`): reward model name or path (e.g. `"OpenAssistant/reward-model-deberta-v3-large-v2"`).
        text_columns (`dict`, *optional*): `{"instruction": [...], "response": [...]}` to override format detection.
        output_column (`str`, defaults to `"reward"`): column written.
        device (`str`, *optional*): `None` is auto; `map(with_rank=True)` spreads ranks over GPUs.
        batch_size (`int`, defaults to 8): sequences per forward pass.
        max_length (`int`, defaults to 2048): tokens per sequence; chat inputs keep their last tokens, text pairs are
            truncated longest-first.
        label_index (`int`, *optional*): which logit is the score; needed when the model has several labels
            (a single-logit reward model needs none).
        input_format (`str`, defaults to `"auto"`): `"chat"` (the tokenizer's chat template over the whole
            conversation), `"pair"` (instruction and response as a text pair, as DeBERTa reward models expect), or
            `"auto"` (chat when the tokenizer has a chat template).
        revision (`str`, *optional*): model revision on the Hub.

    Example:
    ```py
    >>> scorer = RewardModelScorer("OpenAssistant/reward-model-deberta-v3-large-v2")  # loaded on the first batch
    >>> ds = ds.map(scorer, batched=True, batch_size=64)  # doctest: +SKIP
    >>> subset = select_diverse(ds, k=1000, quality_column="reward")  # doctest: +SKIP
    ```
    """

    repr_fields = ("model", "output_column")

    def __init__(
        self,
        model: str,
        text_columns=None,
        output_column: str = "reward",
        device: str | None = None,
        batch_size: int = 8,
        max_length: int = 2048,
        label_index: int | None = None,
        input_format: str = "auto",
        revision: str | None = None,
    ):
        if not model:
            raise InvalidParameterError("RewardModelScorer needs a reward model name or path (`model=`).")
        if input_format not in REWARD_INPUT_FORMATS:
            raise InvalidParameterError(
                f"Unknown input_format {input_format!r}. Valid values: {list(REWARD_INPUT_FORMATS)}."
            )
        if batch_size <= 0:
            raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
        self.model = model
        self.text_columns = text_columns
        self.output_column = output_column
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.label_index = label_index
        self.input_format = input_format
        self.revision = revision

    def load_model(self, device: torch.device):
        """`(model, tokenizer)` on `device` (called once per device by `load`); checks `label_index`."""
        # transformers' auto classes cost 0.6 s at import, which `import hf_diverse` does not otherwise pay
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model, revision=self.revision)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.model, revision=self.revision, dtype=torch_dtype_for(device)
            )
        except Exception as e:
            raise ModelLoadError(f"Could not load the reward model {self.model!r}: {type(e).__name__}: {e}") from e
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        n_labels = int(model.config.num_labels)
        if self.label_index is None and n_labels != 1:
            raise InvalidParameterError(
                f"The reward model {self.model!r} has {n_labels} labels {model.config.id2label}; say which one is"
                " the score with `label_index=`."
            )
        if self.label_index is not None and not 0 <= self.label_index < n_labels:
            raise InvalidParameterError(f"label_index={self.label_index} is outside [0, {n_labels}).")
        return model.to(device).eval(), tokenizer

    def output_features(self) -> dict:
        """The float64 reward."""
        return {self.output_column: Value("float64")}

    def _inputs(self, tokenizer, convs: list[list[dict]]):
        fmt = self.input_format
        if fmt == "auto":
            fmt = "chat" if getattr(tokenizer, "chat_template", None) else "pair"
        if fmt == "chat":
            texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in convs]
            tokenizer.truncation_side = "left"  # keep the end of the conversation (the answer)
            return tokenizer(
                texts,
                add_special_tokens=False,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        firsts, seconds = [], []
        for conv in convs:
            context, answer = _split_conversation(conv)
            firsts.append("\n\n".join(m["content"] for m in context))
            seconds.append(answer)
        return tokenizer(
            firsts, seconds, padding=True, truncation="longest_first", max_length=self.max_length, return_tensors="pt"
        )

    def input_columns(self, column_names: list[str]) -> list[str]:
        """The text columns its text view reads: a row's result depends on them only."""
        return self.text_view_columns(column_names)

    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns)
        convs = view.conversations(batch, indices=indices)
        model, tokenizer = self.load(device)
        scores: list[float] = []
        for start in range(0, len(convs), self.batch_size):
            enc = self._inputs(tokenizer, convs[start : start + self.batch_size])
            with torch.inference_mode():
                logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
            scores.extend(logits[:, self.label_index or 0].float().cpu().tolist())
        return {self.output_column: scores}
