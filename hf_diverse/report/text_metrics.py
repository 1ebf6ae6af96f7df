"""The text stages of a report: tokens of each set, then token metrics, gzip ratio and Self-BLEU per set."""

import numpy as np

from .. import metrics as M
from ..tokens import token_frequencies, tokenize_texts
from .result import finite_or_none
from .sets import ReportSets

_RANK_POINTS = 200


def tokenize_sets(sets: ReportSets, component: str, tokenizer, show_progress: bool = False) -> dict[str, list]:
    """Token ids of every text of `component`, `{label: [np.ndarray, ...]}`.

    The pool is tokenized once; subset rows matched to pool rows and the random subset re-use its tokens, and only
    unmatched subset rows are tokenized.

    Args:
        sets (`ReportSets`): from `collect_sets`.
        component (`str`): `"instruction"` or `"response"`.
        tokenizer: a loaded tokenizer (`hf_diverse.tokens.get_tokenizer`).
        show_progress (`bool`, defaults to `False`): progress bar over the pool.
    """
    texts = sets.texts(component)
    pool_tokens = tokenize_texts(texts["pool"], tokenizer, show_progress=show_progress)
    tokens = {"pool": pool_tokens}
    if "subset" in texts:
        tokens["subset"] = _subset_tokens(texts["subset"], pool_tokens, sets.match_idx, tokenizer)
    if sets.random_idx is not None:
        tokens["random"] = [pool_tokens[i] for i in sets.random_idx]
    return {label: tokens[label] for label in sets.labels}


def _subset_tokens(texts: list[str], pool_tokens: list, match_idx: np.ndarray, tokenizer) -> list:
    """Tokens of the subset: rows matched to the pool re-use the pool's tokens, the rest are tokenized."""
    missing = np.flatnonzero(match_idx < 0)
    extra = dict(zip(missing.tolist(), tokenize_texts([texts[i] for i in missing], tokenizer), strict=True))
    return [pool_tokens[j] if j >= 0 else extra[i] for i, j in enumerate(match_idx.tolist())]


def token_budget(tokens: dict[str, list]) -> int:
    """The equal token budget of the sets: the fewest tokens any of them holds (where kurtosis and Gini are taken)."""
    return min(int(sum(len(t) for t in token_lists)) for token_lists in tokens.values())


def token_metrics(tokens: dict[str, list], vocab_size: int, seed: int = 0) -> tuple[dict, dict]:
    """Distinct-n, mean length, entropy, kurtosis and Gini of each set, and its rank-frequency curve.

    Kurtosis (Appendix E) and Gini grow with the number of tokens in a set, so they are measured at the equal budget
    `token_budget(tokens)`: a set holding more tokens is subsampled to it (`hf_diverse.metrics.subsample_counts`,
    seeded); the other metrics use every token.

    Args:
        tokens (`dict[str, list[np.ndarray]]`): token ids per label, from `tokenize_sets`.
        vocab_size (`int`): the tokenizer's vocabulary size (grown to the largest id seen).
        seed (`int`, defaults to 0): seed of the subsampling to the budget.

    Returns:
        `(rows, curves)`: `rows[label]` maps metric keys to floats or `None`; `curves[label]` is
        `{"rank": [...], "frequency": [...]}`.
    """
    rows, curves = {}, {}
    budget = token_budget(tokens) if tokens else 0
    for label, token_lists in tokens.items():
        counts = token_frequencies(token_lists, vocab_size=max(vocab_size, _max_id(token_lists) + 1))
        row = {f"distinct_{n}": finite_or_none(v) for n, v in M.distinct_ns(token_lists, (1, 2, 3, 4)).items()}
        row["mean_length_tokens"] = finite_or_none(M.mean_length(token_lists))
        row["entropy_bits"] = finite_or_none(M.token_entropy(counts, base=2))
        at_budget = M.subsample_counts(counts, budget, seed=seed)
        row["kurtosis"] = finite_or_none(M.token_kurtosis(at_budget))
        row["gini"] = finite_or_none(M.gini_index(at_budget))
        rows[label] = row
        curves[label] = rank_frequency(counts)
    return rows, curves


def compression_metrics(texts: dict[str, list[str]]) -> dict[str, float | None]:
    """gzip compression ratio of each set, `{label: ratio}`."""
    return {label: finite_or_none(M.compression_ratio(set_texts)) for label, set_texts in texts.items()}


def self_bleu_metrics(texts: dict[str, list[str]], samples: int, seed: int = 0) -> tuple[dict, dict]:
    """Self-BLEU of each set on `samples` sampled texts (0 skips it).

    Returns:
        `(scores, used)`: `{label: score or None}` and `{label: texts sampled}` (empty when skipped).
    """
    if not samples:
        return {label: None for label in texts}, {}
    scores, used = {}, {}
    for label, set_texts in texts.items():
        score, used[label] = M.self_bleu(set_texts, samples=samples, seed=seed)
        scores[label] = finite_or_none(score)
    return scores, used


def _max_id(token_lists) -> int:
    return max((int(t.max()) for t in token_lists if len(t)), default=-1)


def rank_frequency(counts: np.ndarray) -> dict:
    """Relative frequencies sorted descending, at up to 200 log-spaced ranks (1-based)."""
    freq = np.sort(counts[counts > 0])[::-1].astype(np.float64)
    if freq.size == 0:
        return {"rank": [], "frequency": []}
    freq /= freq.sum()
    ranks = np.unique(np.round(np.logspace(0, np.log10(freq.size), _RANK_POINTS)).astype(np.int64))
    return {"rank": ranks.tolist(), "frequency": freq[ranks - 1].tolist()}
