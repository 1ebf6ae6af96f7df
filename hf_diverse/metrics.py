"""Posterior diversity metrics, one small function each (macro-to-micro paper, Table 1 and Appendix E).

| metric | function | definition used here |
|---|---|---|
| NR (distinct-n) | `distinct_n` | unique token n-grams / total token n-grams; n-grams never cross two texts |
| ED | `mean_pairwise_cosine_distance` | mean over all pairs i < j of 1 - cos(e_i, e_j), exact (see below) |
| SL | `mean_length` | mean number of tokens per text |
| CR | `compression_ratio` | UTF-8 bytes of the texts joined by "\\n" / bytes after gzip (level 9, mtime 0) |
| Self-BLEU | `self_bleu` | sacrebleu sentence BLEU (0-100) of each sampled text against the other sampled texts |
| IE | `token_entropy` | Shannon entropy of the token distribution, in bits (base 2) |
| kurtosis | `token_kurtosis` | Appendix E: kurtosis of the frequency-sorted rank index x_i weighted by p_i |
| Gini index | `gini_index` | Gini coefficient of the counts of the token types that occur |
| tag diversity | `tag_diversity` | distinct tag categories / total tags (the paper's meso diversity, Appendix D.2) |
| coverage | `facility_location_coverage` | d(A)/N of the pool, d(A) = sum_v max_a max(0, cos(a, v)) |
| cluster coverage | `cluster_coverage` | fraction of the pool's k-means clusters holding a row of the set |

Choices where the paper is silent:
- Tokens are the ids of the chosen tokenizer (the paper: the tokenizer of the model to be fine-tuned); NR counts
  token n-grams, not word n-grams.
- ED needs no pair sampling: for L2-normalised rows, sum_{i != j} e_i . e_j = ||sum_i e_i||^2 - m, so the mean
  over all m(m-1)/2 pairs is exact in O(m d).
- Kurtosis and Gini are taken over the token types that occur at least once (zero counts of the rest of the
  vocabulary are left out, so the value does not depend on the vocabulary size).
- Kurtosis is the paper's (Appendix E): the types are sorted by frequency, x_i is the rank of type i (1 = most
  frequent), and K = sum_i p_i ((x_i - mu) / sigma)^4 with mu = sum_i p_i x_i and sigma^2 = sum_i p_i (x_i - mu)^2
  (Pearson's, not excess; a uniform distribution over n types gives about 1.8). The kurtosis of the raw counts
  (`scipy.stats.kurtosis`) is `count_kurtosis`.
- Kurtosis and Gini grow with the number of tokens a set holds (more rare types join the tail), so sets of different
  sizes are compared at an equal token budget: `subsample_counts` draws the budget's tokens from the larger set's
  counts without replacement (multivariate hypergeometric, seeded).
- Self-BLEU tokenizes with sacrebleu's default `13a` word tokenizer and uses effective n-gram order (short texts are
  not scored 0 for lacking 4-grams); each sampled text is scored against all other sampled texts.
"""

import gzip
import math
from collections.abc import Sequence

import numpy as np
import torch
from sacrebleu.metrics import BLEU
from sacrebleu.metrics.helpers import extract_all_word_ngrams

from .errors import EmbeddingError, InvalidParameterError
from .facility import facility_location_objective

# higher = more diverse (True) or lower = more diverse (False)
HIGHER_IS_MORE_DIVERSE = {
    "distinct_1": True,
    "distinct_2": True,
    "distinct_3": True,
    "distinct_4": True,
    "embedding_distance": True,
    "mean_length_tokens": None,
    "compression_ratio": False,
    "self_bleu": False,
    "entropy_bits": True,
    "kurtosis": False,
    "gini": False,
    "tag_diversity": True,
    "coverage": True,
    "cluster_coverage": True,
}
# metric key -> (label in tables and plots, short name in the papers); the order is the order of report rows
METRIC_LABELS = {
    "distinct_1": ("distinct-1", "NR"),
    "distinct_2": ("distinct-2", "NR"),
    "distinct_3": ("distinct-3", "NR"),
    "distinct_4": ("distinct-4", "NR"),
    "embedding_distance": ("embedding distance", "ED"),
    "mean_length_tokens": ("mean length (tokens)", "SL"),
    "compression_ratio": ("gzip compression ratio", "CR"),
    "self_bleu": ("Self-BLEU", "BL"),
    "entropy_bits": ("token entropy (bits)", "IE"),
    "kurtosis": ("token-rank kurtosis", ""),
    "gini": ("token-frequency Gini", ""),
    "tag_diversity": ("tag diversity", ""),
    "coverage": ("coverage d(A)/N", ""),
    "cluster_coverage": ("cluster coverage", ""),
}


def metric_label(key: str) -> str:
    """Row name of a metric in report tables and plots: label, short name and direction.

    Args:
        key (`str`): a key of `METRIC_LABELS`.

    Example:
    ```py
    >>> metric_label("entropy_bits")
    'token entropy (bits) [IE] (+)'
    ```
    """
    if key not in METRIC_LABELS:
        raise InvalidParameterError(f"Unknown metric {key!r}. Valid metrics: {list(METRIC_LABELS)}.")
    name, short = METRIC_LABELS[key]
    sign = {True: " (+)", False: " (-)", None: ""}[HIGHER_IS_MORE_DIVERSE[key]]
    return f"{name}{' [' + short + ']' if short else ''}{sign}"


# --- token metrics --------------------------------------------------------------------------------------------
def _flat_with_starts(token_lists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    flat = (
        np.concatenate([np.asarray(t, dtype=np.int64) for t in token_lists])
        if len(token_lists)
        else np.zeros(0, dtype=np.int64)
    )
    return flat, lengths


def _ngram_positions(lengths: np.ndarray, n: int) -> np.ndarray:
    """Start offsets (into the flat array) of every n-gram that lies inside one text."""
    ends = np.cumsum(lengths)
    starts = ends - lengths
    counts = np.maximum(lengths - n + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # offset of each n-gram = start of its text + its position inside the text
    text_of = np.repeat(np.arange(len(lengths)), counts)
    first = np.cumsum(counts) - counts
    return starts[text_of] + (np.arange(total) - first[text_of])


def _count_unique_rows(columns: list[np.ndarray]) -> int:
    """Number of distinct rows of the stacked columns (sort, then count changes)."""
    bits = max(max(int(c.max()).bit_length() for c in columns), 1)
    if len(columns) * bits <= 64:
        # pack each row into one uint64: a 1-D sort is far faster than np.unique(axis=0)
        keys = np.zeros(columns[0].size, dtype=np.uint64)
        for col in columns:
            keys = (keys << np.uint64(bits)) | col.astype(np.uint64)
        keys.sort()
        return 1 + int(np.count_nonzero(keys[1:] != keys[:-1]))
    return int(np.unique(np.stack(columns, axis=1), axis=0).shape[0])


def distinct_ns(token_lists: Sequence[np.ndarray], orders: Sequence[int] = (1, 2, 3, 4)) -> dict[int, float]:
    """`distinct_n` for several orders at once (the corpus is flattened once). Returns `{n: ratio}`."""
    if any(n < 1 for n in orders):
        raise InvalidParameterError(f"n-gram orders must be >= 1, got {list(orders)}.")
    flat, lengths = _flat_with_starts(token_lists)
    if flat.size and flat.min() < 0:
        raise InvalidParameterError("Token ids must be non-negative.")
    out = {}
    for n in orders:
        pos = _ngram_positions(lengths, n)
        out[n] = _count_unique_rows([flat[pos + j] for j in range(n)]) / pos.size if pos.size else float("nan")
    return out


def distinct_n(token_lists: Sequence[np.ndarray], n: int) -> float:
    """NR: unique n-grams / total n-grams over a corpus (distinct-n); `nan` when no text has n tokens.

    Args:
        token_lists (`list[np.ndarray]`): token ids per text (from `tokenize_texts`).
        n (`int`): n-gram order, >= 1.

    Example:
    ```py
    >>> distinct_n([np.array([1, 2, 1, 2])], 2)   # (1,2) (2,1) (1,2): 2 unique of 3
    0.6666666666666666
    ```
    """
    return distinct_ns(token_lists, (n,))[n]


def mean_length(token_lists: Sequence[np.ndarray]) -> float:
    """SL: mean number of tokens per text (`nan` for an empty corpus)."""
    if len(token_lists) == 0:
        return float("nan")
    return float(np.mean([len(t) for t in token_lists]))


def _probabilities(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.size and counts.min() < 0:
        raise InvalidParameterError("Token counts must be non-negative.")
    counts = counts[counts > 0]
    total = counts.sum()
    return counts / total if total > 0 else counts


def token_entropy(counts: np.ndarray, base: float = 2.0) -> float:
    """IE: Shannon entropy -sum p log p of the token distribution given by `counts` (bits by default).

    Example:
    ```py
    >>> token_entropy(np.array([5, 5, 5, 5]))    # uniform over 4 types: log2(4)
    2.0
    ```
    """
    p = _probabilities(counts)
    if p.size == 0:
        return float("nan")
    return float(-(p * np.log(p)).sum() / math.log(base)) + 0.0


def token_kurtosis(counts: np.ndarray) -> float:
    """Kurtosis of the token distribution as the macro-to-micro paper defines it (Appendix E).

    The token types that occur are sorted by frequency (most frequent first, ties in id order); x_i is the rank of
    type i (1, 2, ...) and p_i its probability. With mu = sum_i p_i x_i and sigma^2 = sum_i p_i (x_i - mu)^2,

        K = sum_i p_i ((x_i - mu) / sigma)^4

    (Pearson's kurtosis of the rank index under p, not the excess). A flat distribution gives a low value (about 1.8
    for a uniform one), mass concentrated on a few top ranks with a long tail a high one. `nan` with fewer than two
    types. Compare sets at an equal token budget (`subsample_counts`): K grows with the number of tokens.

    Example:
    ```py
    >>> round(token_kurtosis(np.array([5, 5, 5, 5])), 4)   # uniform over 4 ranks: 1.64
    1.64
    >>> round(token_kurtosis(np.array([100, 1, 1, 1])), 2)  # one dominant type, a thin tail
    49.69
    ```
    """
    p = np.sort(_probabilities(counts))[::-1]
    if p.size < 2:
        return float("nan")
    x = np.arange(1, p.size + 1, dtype=np.float64)
    mu = float((p * x).sum())
    var = float((p * (x - mu) ** 2).sum())
    if var <= 0:
        return float("nan")
    return float((p * (x - mu) ** 4).sum() / var**2)


def count_kurtosis(counts: np.ndarray) -> float:
    """Kurtosis of the raw counts: `scipy.stats.kurtosis` (Fisher, excess, biased estimator) of the counts of the
    token types that occur (what hf_diverse reported as "kurtosis" before it followed Appendix E). Heavy-tailed (a few
    very frequent tokens) gives a high value; `nan` with fewer than two types or when all counts are equal."""
    from scipy.stats import kurtosis  # ~1 s to import: only when kurtosis is asked for

    counts = np.asarray(counts, dtype=np.float64).ravel()
    counts = counts[counts > 0]
    if counts.size < 2 or np.all(counts == counts[0]):
        return float("nan")
    return float(kurtosis(counts, fisher=True, bias=True))


def subsample_counts(counts: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """`budget` tokens drawn without replacement from a corpus with token `counts` (multivariate hypergeometric,
    numpy `default_rng([seed, 2])`); the counts themselves when they hold at most `budget` tokens.

    Used to compare frequency statistics (kurtosis, Gini) of sets of different sizes at the same number of tokens.

    Example:
    ```py
    >>> sub = subsample_counts(np.array([50, 30, 20]), 10)
    >>> int(sub.sum()), bool(np.all(sub <= [50, 30, 20]))
    (10, True)
    ```
    """
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if budget < 0:
        raise InvalidParameterError(f"budget must be >= 0, got {budget}.")
    if counts.sum() <= budget:
        return counts.copy()
    nonzero = np.flatnonzero(counts)
    out = np.zeros_like(counts)
    rng = np.random.default_rng([seed, 2])
    out[nonzero] = rng.multivariate_hypergeometric(counts[nonzero], int(budget), method="marginals")
    return out


def tag_diversity(tag_lists: Sequence[Sequence[str]]) -> float:
    """The macro-to-micro paper's meso diversity: distinct tag categories / total tags over all rows (`nan` when no
    row has a tag).

    Example:
    ```py
    >>> tag_diversity([["math", "algebra"], ["math"], []])   # 2 distinct of 3 tags
    0.6666666666666666
    ```
    """
    flat = [t for tags in tag_lists for t in (tags or ())]
    return len(set(flat)) / len(flat) if flat else float("nan")


def gini_index(counts: np.ndarray) -> float:
    """Gini index of the counts of the token types that occur: sum_i (2i - n - 1) x_(i) / (n sum x), x sorted
    ascending, i = 1..n. 0 when every type occurs equally often, (n - 1)/n when one type holds all occurrences.

    Example:
    ```py
    >>> gini_index(np.array([0, 0, 10, 0]))  # one type occurs (zeros are not types)
    0.0
    >>> gini_index(np.array([1, 1, 1, 5]))   # (2*1-5)*1+(2*2-5)*1+(2*3-5)*1+(2*4-5)*5 = 12 / (4*8)
    0.375
    ```
    """
    x = np.sort(_probabilities(counts))
    n = x.size
    if n == 0:
        return float("nan")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * x).sum() / (n * x.sum()))


# --- text metrics ---------------------------------------------------------------------------------------------
def compression_ratio(texts: Sequence[str], level: int = 9) -> float:
    """CR: UTF-8 bytes of the texts joined by newlines, divided by their gzip size (`mtime=0`, so deterministic).

    Repetitive corpora compress better: a higher ratio means more redundancy (less diverse). For any corpus
    the ratio is > 0; for short or random text it can fall below 1 (gzip's ~20-byte header).
    """
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return float("nan")
    return len(raw) / len(gzip.compress(raw, compresslevel=level, mtime=0))


def self_bleu(texts: Sequence[str], samples: int = 1000, seed: int = 0) -> tuple[float, int]:
    """Self-BLEU: mean sentence BLEU (sacrebleu, 0-100) of each sampled text against all the other sampled texts.

    Every score equals `sacrebleu.metrics.BLEU(effective_order=True).sentence_score(text, others)`, but the
    references are not re-read for every text: each text is tokenized (sacrebleu's `13a`) and its n-grams counted
    (`sacrebleu.metrics.helpers.extract_all_word_ngrams`) once; for every n-gram the two largest counts over the
    sample (and which text holds the largest) give the clipping count against "all texts but this one"; sacrebleu's
    `BLEU.compute_bleu` turns the statistics into the score. Linear in the sample instead of quadratic.

    Args:
        texts (`list[str]`): the corpus.
        samples (`int`, defaults to 1000): how many texts are drawn (without replacement, `numpy`
            `default_rng([seed, 1])`, a stream apart from the random baseline's `default_rng(seed)`) when the corpus is
            larger. Self-BLEU grows with the number of references, so compare sets at the same `samples`.
        seed (`int`, defaults to 0): sampling seed.

    Returns:
        `(score, n_sampled)`; `(nan, n)` with fewer than two texts.

    Example:
    ```py
    >>> score, n_sampled = self_bleu(["the cat sat on the mat"] * 3)  # each text is the others' exact copy
    >>> round(score, 6), n_sampled
    (100.0, 3)
    ```
    """
    if samples < 2:
        raise InvalidParameterError(f"self_bleu samples must be >= 2, got {samples}.")
    m = len(texts)
    if m < 2:
        return float("nan"), m
    if m > samples:
        idx = np.sort(np.random.default_rng([seed, 1]).choice(m, size=samples, replace=False))
        chosen = [texts[i] for i in idx]
    else:
        chosen = list(texts)
    bleu = BLEU(effective_order=True)
    order = bleu.max_ngram_order
    stats = [extract_all_word_ngrams(bleu.tokenizer(t.rstrip()), 1, order) for t in chosen]
    # n-gram -> [largest count, text holding it, second largest count]
    best: dict = {}
    for i, (counts, _) in enumerate(stats):
        for gram, c in counts.items():
            b = best.get(gram)
            if b is None:
                best[gram] = [c, i, 0]
            elif c > b[0]:
                best[gram] = [c, i, b[0]]
            elif c > b[2]:
                b[2] = c
    lengths = np.array([length for _, length in stats])
    scores = []
    for i, (counts, hyp_len) in enumerate(stats):
        correct, total = [0] * order, [0] * order
        for gram, c in counts.items():
            b = best[gram]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, b[2] if b[1] == i else b[0])
        # closest reference length among the others, ties to the shorter (as sacrebleu)
        others = np.delete(lengths, i)
        diff = np.abs(others - hyp_len)
        ref_len = int(others[diff == diff.min()].min())
        scores.append(
            BLEU.compute_bleu(
                correct,
                total,
                hyp_len,
                ref_len,
                smooth_method=bleu.smooth_method,
                smooth_value=bleu.smooth_value,
                effective_order=True,
                max_ngram_order=order,
            ).score
        )
    return float(np.mean(scores)), len(chosen)


# --- embedding metrics ----------------------------------------------------------------------------------------
def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows (float32), leaving all-zero rows at zero."""
    x = x.to(torch.float32)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def mean_pairwise_cosine_distance(embeddings: torch.Tensor) -> float:
    """ED: mean of 1 - cos(e_i, e_j) over all pairs i < j, exact.

    Uses sum_{i != j} e_i . e_j = ||sum_i e_i||^2 - sum_i ||e_i||^2 on the normalised rows (float64 sums), so no pair
    sampling is needed at any size. `nan` with fewer than two rows.

    Example:
    ```py
    >>> mean_pairwise_cosine_distance(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))  # (1 + 2 + 1) / 3
    1.3333333333333333
    ```
    """
    m = embeddings.shape[0]
    if m < 2:
        return float("nan")
    x = normalize_rows(embeddings).to(torch.float64)
    total = x.sum(dim=0)
    off_diagonal = float(total @ total) - float((x * x).sum())
    return 1.0 - off_diagonal / (m * (m - 1))


def facility_location_coverage(
    pool: torch.Tensor, indices: Sequence[int] | None = None, subset: torch.Tensor | None = None
) -> float:
    """d(A)/N: how well a set A covers the pool, d(A) = sum_{v in pool} max_{a in A} max(0, cos(a, v)).

    Give A either as `indices` of pool rows (A inside the pool: `hf_diverse.facility.facility_location_objective`)
    or as `subset` embeddings (rows that need not be pool rows). For the latter, the objective over the stacked
    rows [pool; subset] with A = the subset rows counts every pool row once plus every subset row; the subset rows'
    own part, sum_{s} max_{a} max(0, cos(a, s)), is d over the subset alone and is subtracted.

    Example:
    ```py
    >>> pool = torch.eye(3)
    >>> facility_location_coverage(pool, indices=[0])   # row 0 covers itself fully, rows 1 and 2 not at all
    0.3333333333333333
    ```
    """

    if (indices is None) == (subset is None):
        raise InvalidParameterError("Pass exactly one of `indices` (pool rows) or `subset` (embeddings).")
    x = normalize_rows(pool)
    n = x.shape[0]
    if indices is not None:
        return facility_location_objective(x, np.asarray(indices, dtype=np.int64)) / n
    s = normalize_rows(subset).to(x.device)
    if s.shape[1] != x.shape[1]:
        raise EmbeddingError(f"Subset embeddings have dimension {s.shape[1]}, the pool's {x.shape[1]}.")
    stacked = torch.cat([x, s])
    total = facility_location_objective(stacked, np.arange(n, n + s.shape[0]))
    own = facility_location_objective(s, np.arange(s.shape[0]))
    return (total - own) / n


def cluster_coverage(pool_labels: np.ndarray, subset_labels: np.ndarray) -> float:
    """Fraction of the pool's (non-empty) clusters that hold at least one subset row.

    Example:
    ```py
    >>> cluster_coverage(np.array([0, 0, 1, 2]), np.array([2, 2]))
    0.3333333333333333
    ```
    """
    pool_clusters = np.unique(pool_labels)
    if pool_clusters.size == 0:
        return float("nan")
    return float(np.isin(pool_clusters, np.unique(subset_labels)).sum() / pool_clusters.size)
