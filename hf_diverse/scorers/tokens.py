"""Per-row token statistics as a `Dataset.map(batched=True)` column (the micro-diversity view of one row)."""

import numpy as np
import torch
from datasets import Value

from ..errors import InvalidParameterError
from ..textviews import WHAT, TextView
from ..tokens import get_tokenizer, tokenize_texts, tokenizer_name
from .base import Scorer


class TokenStatsScorer(Scorer):
    """Adds `n_tokens` (tokens of a text view of each row) and `n_unique_tokens` (distinct token ids).

    Tokens come from the tokenizer of the model to be fine-tuned (`hf_diverse.tokens.tokenize_texts`, no
    special tokens). A `Scorer`: picklable with plain arguments, the tokenizer is loaded on the first call.

    Args:
        tokenizer (`str`, *optional*): tokenizer name or path; default the embedded SmolLM2 tokenizer.
        what (`str`, defaults to `"response"`): text view: `"instruction"`, `"response"` or `"both"`.
        text_columns (`list[str]` or `dict`, *optional*): override format detection (see `TextView`).
        tokens_column (`str`, defaults to `"n_tokens"`): column for the token count.
        unique_column (`str`, *optional*, defaults to `"n_unique_tokens"`): column for distinct ids (None: skip).

    Example:
    ```py
    >>> ds = Dataset.from_dict({"prompt": ["Name a prime number."], "response": ["7 is prime."]})
    >>> ds = ds.map(TokenStatsScorer(), batched=True)
    >>> ds[0]
    {'prompt': 'Name a prime number.', 'response': '7 is prime.', 'n_tokens': 4, 'n_unique_tokens': 4}
    >>> ds = ds.filter(lambda r: r["n_tokens"] <= 2048)
    ```
    """

    repr_fields = ("tokenizer", "what")

    def __init__(
        self,
        tokenizer: str | None = None,
        what: str = "response",
        text_columns=None,
        tokens_column: str = "n_tokens",
        unique_column: str | None = "n_unique_tokens",
    ):
        if what not in WHAT:
            raise InvalidParameterError(f"Unknown text view what={what!r}. Valid values: {list(WHAT)}.")
        self.tokenizer = tokenizer
        self.what = what
        self.text_columns = text_columns
        self.tokens_column = tokens_column
        self.unique_column = unique_column

    @property
    def model_info(self) -> dict:
        """The tokenizer's readable name (the SmolLM2 Hub id for the default)."""
        return {"name": tokenizer_name(self.tokenizer)}

    def load_model(self, device: torch.device):
        """The tokenizer (the device is not used)."""
        return get_tokenizer(self.tokenizer)

    def output_features(self) -> dict:
        """int64 token counts."""
        names = [self.tokens_column] if self.unique_column is None else [self.tokens_column, self.unique_column]
        return {name: Value("int64") for name in names}

    def input_columns(self, column_names: list[str]) -> list[str]:
        """The text columns its text view reads: a row's result depends on them only."""
        return self.text_view_columns(column_names)

    def score_batch(self, batch: dict[str, list], indices, device: torch.device) -> dict[str, list]:
        view = TextView.for_columns(list(batch.keys()), text_columns=self.text_columns)
        ids = tokenize_texts(view.texts(batch, what=self.what, indices=indices), self.load(device))
        out = {self.tokens_column: [len(a) for a in ids]}
        if self.unique_column is not None:
            out[self.unique_column] = [len(np.unique(a)) for a in ids]
        return out
