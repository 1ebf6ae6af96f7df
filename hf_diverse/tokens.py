"""Token ids and token-frequency counts: the shared basis of the token-level metrics and the `tokens` method.

Texts are tokenized with a Hugging Face tokenizer (default: the SmolLM2-135M-Instruct tokenizer shipped offline),
without special tokens, in batches through the fast (Rust) tokenizer.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import InvalidParameterError, ModelLoadError
from .models import DEFAULT_CAUSAL_LM, cache_dir, load_tokenizer
from .utils.progress import tqdm


def get_tokenizer(tokenizer=None):
    """Return a tokenizer object: `None` loads the embedded SmolLM2 tokenizer, a string loads that name or path.

    Args:
        tokenizer (`str` or tokenizer, *optional*):
            A loaded `transformers` tokenizer (returned as is), a Hub id / local path, or `None` for the default.

    Raises:
        `ModelLoadError`: the named tokenizer cannot be loaded (message names it).

    Example:
    ```py
    >>> tok = get_tokenizer()          # SmolLM2-135M-Instruct, offline
    >>> tok("hello world", add_special_tokens=False)["input_ids"]
    [28120, 905]
    ```
    """
    if tokenizer is None or isinstance(tokenizer, str):
        return load_tokenizer(tokenizer)
    if not callable(tokenizer):
        raise ModelLoadError(
            f"`tokenizer` must be a tokenizer name, a path or a loaded tokenizer, got {type(tokenizer).__name__}."
        )
    return tokenizer


def tokenizer_name(requested, loaded=None) -> str:
    """A readable name for reports and provenance: the SmolLM2 Hub id for `None`, the given string, else the loaded
    tokenizer's `name_or_path`."""
    if requested is None:
        return DEFAULT_CAUSAL_LM
    if isinstance(requested, str):
        return requested

    tok = loaded if loaded is not None else requested
    name = str(getattr(tok, "name_or_path", None) or type(tok).__name__)
    # the offline default is loaded from its converted copy in the cache: report the model it stands for
    if Path(name).name == "SmolLM2-135M-Instruct" and Path(name).parent.resolve() == cache_dir().resolve():
        return DEFAULT_CAUSAL_LM
    return name


def tokenize_texts(
    texts: Sequence[str], tokenizer=None, batch_size: int = 1000, show_progress: bool = False
) -> list[np.ndarray]:
    """Token ids of each text (no special tokens), as one int64 array per text.

    Args:
        texts (`list[str]`): the texts.
        tokenizer (`str` or tokenizer, *optional*): see `get_tokenizer`; defaults to the SmolLM2 tokenizer.
        batch_size (`int`, defaults to 1000): texts per call of the (batched, fast) tokenizer.
        show_progress (`bool`, defaults to `False`): show a progress bar over batches.

    Returns:
        `list[np.ndarray]`: token ids per text, in order; an empty text gives an empty array.

    Example:
    ```py
    >>> ids = tokenize_texts(["hello world", "foo"])
    >>> [len(x) for x in ids]
    [2, 1]
    ```
    """
    if batch_size <= 0:
        raise InvalidParameterError(f"batch_size must be positive, got {batch_size}.")
    tok = get_tokenizer(tokenizer)
    texts = list(texts)
    out: list[np.ndarray] = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc="Tokenizing", disable=not show_progress, total=len(starts)):
        chunk = texts[start : start + batch_size]
        # verbose=False: long responses exceed model_max_length; counting tokens needs no truncation
        ids = tok(chunk, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
        out.extend(np.asarray(x, dtype=np.int64) for x in ids)
    return out


def token_frequencies(token_lists: Sequence[np.ndarray], vocab_size: int | None = None) -> np.ndarray:
    """How often each token id occurs over all `token_lists` (`np.bincount`).

    Args:
        token_lists (`list[np.ndarray]`): token ids per text (from `tokenize_texts`).
        vocab_size (`int`, *optional*): length of the returned array (at least max id + 1); use the tokenizer's
            `len(tokenizer)` so counts of different corpora line up.

    Returns:
        `np.ndarray` of int64 counts, index = token id.

    Example:
    ```py
    >>> token_frequencies([np.array([0, 2]), np.array([2])], vocab_size=4)
    array([1, 0, 2, 0])
    ```
    """
    arrays = [np.asarray(t, dtype=np.int64).ravel() for t in token_lists]
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    if flat.size and flat.min() < 0:
        raise InvalidParameterError(f"Token ids must be non-negative, got {int(flat.min())}.")
    if vocab_size is not None and flat.size and flat.max() >= vocab_size:
        raise InvalidParameterError(f"Token id {int(flat.max())} is outside vocab_size={vocab_size}.")
    return np.bincount(flat, minlength=vocab_size or 0).astype(np.int64, copy=False)
