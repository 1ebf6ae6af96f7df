"""`method="tokens"`: micro (token-level) diversity on responses, with a `diversity` dial (the macro-to-micro paper).

**Bands.** The texts of the `what` view (responses by default) are tokenized with the tokenizer of the model to be
fine-tuned (`tokenizer=`, default the embedded SmolLM2 tokenizer; `hf_diverse.tokens.tokenize_texts`), and
every token type is counted over the pool. Types occurring more than `high_threshold` times are the *high band*
(function words, digits), fewer than `low_threshold` times the *low band* (names, typos), the rest the *mid band*.
The paper used 10 and 500 on a pool of 117K responses. Rule for other pools (hf_diverse's choice): thresholds scale
with the pool's token count T relative to `reference_tokens` = 58.5M (117K responses x ~500 tokens, the length of
the paper's length-controlled ablation; the paper gives no total), with floors so that small pools keep a band:

    s = T / reference_tokens;   low = max(2, round(10 s));   high = max(50 low, round(500 s))

(at s = 1 this is the paper's 10 / 500; a type seen once is never mid-band). *Coverage* of a subset is the fraction
of the pool's mid-band types occurring in it; this is what `diversity` controls.

**Procedure** (the paper's pseudo-code was not available; this design is hf_diverse's). Let X be the binary
row x mid-band-type incidence matrix (scipy.sparse CSR/CSC) and n_j(S) the number of rows of S holding type j.

1. *Token-aware sampling* (the paper's Algorithm 2, at maximal diversity). Lazy greedy maximisation of the
   concave-over-modular (submodular) function

       F(S) = sum_j phi(n_j(S)),  with increments  phi(1) - phi(0) = W  and  phi(n+1) - phi(n) = 1 / (n + 1), n >= 1

   with W = max types per row, so a row adding more new types always wins (greedy maximum coverage), and among
   rows adding the same number, the one whose types are least represented so far wins (even representation).
   This gives S_0: k rows, the maximal-diversity sample.
2. *Inverse greedy pruning* (the paper's Algorithm 1) to a target number of types, keeping exactly k rows. Let K
   be the types covered by S (|K| / mid-band types = coverage). Starting from S_0, repeat: drop the type of K held
   by the fewest rows of S (ties: the type held by the fewest rows of the pool, then a random order from `seed`);
   remove the rows of S holding it (types left without a holder leave K); refill S to k rows, one row at a time,
   with unused rows that hold no dropped type, the row bringing the fewest types new to K first (ties: the row
   with more mid-band types, then a random order from `seed`). A row leaves S at most once and never returns, so
   the chain ends (at most N - k steps), when too few rows are left to refill. |K| mostly falls along the chain
   (a refill may bring a few new types) down to its minimum u_min.
3. *The dial.* The target is `u_min + diversity * (u_0 - u_min)` types, u_0 = |K| of S_0, and the *first* step of
   the chain with |K| <= target is returned. One chain serves every `diversity` and first passage is monotone
   (for targets T1 < T2, the first step under T2 cannot have fewer types than the first step under T1), so coverage
   is monotone non-decreasing in `diversity` by construction. `diversity=1` returns S_0 (no chain is computed),
   `diversity=0` the least-covering step.

Everything is deterministic for a `seed` (it only orders ties). The subset is ordered: rows of S_0 in greedy pick
order, then refill rows in the order they came in. `selection_gain` is the number of mid-band types new to the
selection that a row brought when it came in (into S_0, or as a refill).
"""

import heapq
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidParameterError
from ..metrics import token_entropy
from ..textviews import _REQUIRED, TextView
from ..tokens import get_tokenizer, tokenize_texts, tokenizer_name
from ..utils.logging import get_logger
from ..utils.progress import tqdm
from .base import Method, SelectionContext, SelectionResult
from .config import MethodConfig, diversity_option, option

logger = get_logger(__name__)

PAPER_LOW, PAPER_HIGH = 10, 500
# 117K responses x ~500 tokens: the paper's thresholds were set at this scale (see the module docstring)
REFERENCE_TOKENS = 58_500_000


def band_thresholds(
    total_tokens: int,
    low_threshold: float | None = None,
    high_threshold: float | None = None,
    reference_tokens: int = REFERENCE_TOKENS,
) -> tuple[float, float]:
    """The `(low, high)` band thresholds for a pool of `total_tokens` tokens (the documented scaling rule).

    Example:
    ```py
    >>> band_thresholds(58_500_000)      # the paper's pool size
    (10, 500)
    >>> band_thresholds(118_000)         # a few hundred responses: the floors apply
    (2, 100)
    ```
    """
    if reference_tokens <= 0:
        raise InvalidParameterError(f"reference_tokens must be positive, got {reference_tokens}.")
    s = total_tokens / reference_tokens
    low = max(2, round(PAPER_LOW * s)) if low_threshold is None else low_threshold
    high = max(50 * low, round(PAPER_HIGH * s)) if high_threshold is None else high_threshold
    for name, value in (("low_threshold", low), ("high_threshold", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value < 0:
            raise InvalidParameterError(f"{name} must be a non-negative count, got {value!r}.")
    if low > high:
        raise InvalidParameterError(
            f"low_threshold={low} is above high_threshold={high}: the mid band [low, high] would be empty."
        )
    return low, high


class TokenIncidence:
    """Mid-band token types of a pool: counts, thresholds and the binary row x type matrix.

    Args:
        token_lists (`list[np.ndarray]`): token ids per row (`tokenize_texts`).
        low_threshold, high_threshold (`float`, *optional*): band limits; `None` applies `band_thresholds`.
        reference_tokens (`int`, defaults to 58.5M): pool size in tokens at which the paper's 10 / 500 apply.
    """

    def __init__(self, token_lists, low_threshold=None, high_threshold=None, reference_tokens=REFERENCE_TOKENS):
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat = (
            np.concatenate([np.asarray(t, dtype=np.int64) for t in token_lists])
            if len(token_lists)
            else np.zeros(0, dtype=np.int64)
        )
        self.n_rows = len(token_lists)
        self.lengths = lengths
        self.total_tokens = int(lengths.sum())
        self.counts = np.bincount(flat) if flat.size else np.zeros(0, dtype=np.int64)
        self.low, self.high = band_thresholds(self.total_tokens, low_threshold, high_threshold, reference_tokens)
        in_mid = (self.counts >= self.low) & (self.counts <= self.high)
        self.mid_types = np.flatnonzero(in_mid)  # vocabulary ids of the mid band, column j <-> mid_types[j]
        self.n_types_pool = int((self.counts > 0).sum())
        self.n_high = int((self.counts > self.high).sum())
        self.n_low = int(((self.counts > 0) & (self.counts < self.low)).sum())
        remap = np.full(len(self.counts), -1, dtype=np.int64)
        remap[self.mid_types] = np.arange(len(self.mid_types))
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), lengths)
        cols = remap[flat] if flat.size else flat
        keep = cols >= 0
        data = np.ones(int(keep.sum()), dtype=np.int32)
        x = sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(self.n_rows, len(self.mid_types)))
        x.sum_duplicates()
        x.data[:] = 1
        self.csr = x
        self.csc = x.tocsc()
        self._flat, self._offsets = flat, np.concatenate([[0], np.cumsum(lengths)])

    @property
    def n_mid(self) -> int:
        return len(self.mid_types)

    def subset_counts(self, rows) -> np.ndarray:
        """Token counts (all bands) over the given rows, for entropy and the like."""
        rows = np.asarray(rows, dtype=np.int64)
        parts = [self._flat[self._offsets[i] : self._offsets[i + 1]] for i in rows]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=len(self.counts))

    def coverage(self, rows) -> float:
        """Fraction of the pool's mid-band types that occur in `rows`."""
        if self.n_mid == 0:
            return 0.0
        covered = np.asarray(self.csr[np.asarray(rows, dtype=np.int64)].sum(axis=0)).ravel() > 0
        return float(covered.sum()) / self.n_mid


def token_aware_sample(x: sp.csr_matrix, k: int, tie_rank: np.ndarray, show_progress: bool = False):
    """Step 1: lazy greedy on F(S) = sum_j phi(n_j(S)) (coverage first, then even representation). Returns
    `(rows in pick order, new types per pick, n_j after the k picks)`."""
    n, m = x.shape
    indptr, indices = x.indptr, x.indices
    degree = np.diff(indptr)
    big = float(max(1, int(degree.max()) if n else 1))
    counts = np.zeros(m, dtype=np.int64)

    def gain(i):
        nj = counts[indices[indptr[i] : indptr[i + 1]]]
        return float(np.where(nj == 0, big, 1.0 / (nj + 1)).sum())

    # (-gain, tie rank, row, picks when computed): an entry computed at the current pick count is exact
    heap = [(-big * float(d), int(r), int(i), 0) for i, (d, r) in enumerate(zip(degree, tie_rank, strict=True))]
    heapq.heapify(heap)
    picked, new_types = [], []
    bar = tqdm(total=k, desc="Token-aware sampling", disable=not show_progress, leave=False)
    while len(picked) < k:
        neg, rank, i, stamp = heapq.heappop(heap)
        if stamp != len(picked):
            heapq.heappush(heap, (-gain(i), rank, i, len(picked)))
            continue
        types = indices[indptr[i] : indptr[i + 1]]
        new_types.append(int((counts[types] == 0).sum()))
        counts[types] += 1
        picked.append(i)
        bar.update(1)
    bar.close()
    return np.asarray(picked, dtype=np.int64), np.asarray(new_types, dtype=np.int64), counts


def prune_chain(
    inc: TokenIncidence,
    s0: np.ndarray,
    counts0: np.ndarray,
    tie_rank: np.ndarray,
    seed: int = 0,
    show_progress: bool = False,
):
    """Step 2: inverse greedy pruning from S_0, keeping k rows (see the module docstring).

    Returns `(sizes, steps)`: |K| after each step (`sizes[0]` is S_0's) and, per step, `(rows out, rows in,
    new types each row in brought)`.
    """
    csr, csc = inc.csr, inc.csc
    n, m = csr.shape
    never = np.iinfo(np.int64).max
    in_s = np.zeros(n, dtype=bool)
    in_s[s0] = True
    holders = counts0.astype(np.int64).copy()  # rows of S holding each type
    in_k = holders > 0
    degree = np.diff(csr.indptr).astype(np.int64)
    new_count = degree - np.asarray(csr[:, in_k].sum(axis=1)).ravel().astype(np.int64)  # types of a row not in K
    max_degree = int(degree.max()) if n else 0

    def row_key(rows):  # refill order: fewest new types, then richest, then the seeded rank
        return new_count[rows] * ((max_degree + 1) * n) + (max_degree - degree[rows]) * n + tie_rank[rows]

    row_keys = np.where(in_s, never, row_key(np.arange(n)))  # `never` = not eligible (used, or holds a pruned type)
    pool_holders = np.diff(csc.indptr)
    type_rank = np.empty(m, dtype=np.int64)
    type_rank[np.lexsort((np.random.default_rng(seed).permutation(m), pool_holders))] = np.arange(m)
    type_keys = np.where(in_k, holders * (m + 1) + type_rank, never)  # prune order: fewest holders in S, ...
    eligible = int((row_keys != never).sum())

    def column_rows(types):
        return np.concatenate([csc.indices[csc.indptr[t] : csc.indptr[t + 1]] for t in types])

    def row_types(rows):
        return np.concatenate([csr.indices[csr.indptr[i] : csr.indptr[i + 1]] for i in rows])

    def move_k(types, entering: bool):
        in_k[types] = entering
        if len(types):
            rows = column_rows(types)
            np.add.at(new_count, rows, -1 if entering else 1)
            rows = np.unique(rows[row_keys[rows] != never])
            row_keys[rows] = row_key(rows)

    sizes, steps = [int(in_k.sum())], []
    bar = tqdm(desc="Pruning", disable=not show_progress, leave=False)
    while True:
        j = int(np.argmin(type_keys)) if m else 0
        if not m or type_keys[j] == never:
            break
        holding_j = csc.indices[csc.indptr[j] : csc.indptr[j + 1]]
        out_rows = holding_j[in_s[holding_j]]
        newly_blocked = holding_j[row_keys[holding_j] != never]
        if eligible - len(newly_blocked) < len(out_rows):
            break  # too few rows left to refill: the chain ends
        row_keys[newly_blocked] = never  # rows holding a pruned type never enter S
        eligible -= len(newly_blocked)
        in_s[out_rows] = False
        lost = row_types(out_rows)
        np.subtract.at(holders, lost, 1)
        leaving = np.unique(lost[holders[lost] == 0])
        move_k(leaving, False)
        type_keys[leaving] = never
        fresh, brought = [], []
        for _ in range(len(out_rows)):
            i = int(np.argmin(row_keys))
            brought.append(int(new_count[i]))
            fresh.append(i)
            row_keys[i] = never
            eligible -= 1
            in_s[i] = True
            types = csr.indices[csr.indptr[i] : csr.indptr[i + 1]]
            holders[types] += 1
            move_k(types[~in_k[types]], True)
        touched = np.unique(np.concatenate([lost, row_types(fresh)]))
        touched = touched[in_k[touched]]
        type_keys[touched] = holders[touched] * (m + 1) + type_rank[touched]
        sizes.append(int(in_k.sum()))
        steps.append((out_rows, np.asarray(fresh, dtype=np.int64), np.asarray(brought, dtype=np.int64)))
        bar.update(1)
    bar.close()
    return np.asarray(sizes, dtype=np.int64), steps


def chain_step(sizes: np.ndarray, diversity: float) -> tuple[int, float]:
    """The first step whose |K| is at most `u_min + diversity * (u_0 - u_min)`, u_min = min(sizes).

    First passage makes the returned |K| monotone non-decreasing in the target even where the chain goes up and
    down: for targets T1 < T2 with first steps t1 >= t2, |K(t2)| < |K(t1)| <= T1 would put t2's |K| below T1,
    so t1 <= t2, a contradiction.
    """
    lowest = int(sizes.min())
    target = float(lowest + diversity * (int(sizes[0]) - lowest))
    return int(np.flatnonzero(sizes <= target + 1e-9)[0]), target


_CACHE: dict = {}


def pool_token_lists(dataset, what: str, tokenizer, text_columns=None, show_progress: bool = False, turns="first"):
    """Token ids of the `what` view of every row, cached for the last (dataset fingerprint, what,
    tokenizer, text columns) so that a `diversity_series` tokenizes the pool once."""

    tok = get_tokenizer(tokenizer)
    key = (dataset._fingerprint, what, tokenizer_name(tok), repr(text_columns), turns)
    if _CACHE.get("key") == key:
        return _CACHE["value"], tok
    view = TextView.for_columns(dataset.column_names, text_columns=text_columns, turns=turns)
    columns = dataset.select_columns([c for c in dataset.column_names if c in _view_columns(view)])
    texts: list[str] = []
    for start in range(0, len(columns), 10_000):
        batch = columns[start : start + 10_000]
        stop = min(start + 10_000, len(columns))
        texts.extend(view.texts(batch, what=what, indices=range(start, stop)))
    lists = tokenize_texts(texts, tok, show_progress=show_progress)
    lists = [a.astype(np.int32) for a in lists]
    _CACHE.clear()
    _CACHE.update(key=key, value=lists)
    return lists, tok


def _view_columns(view: TextView) -> set:
    if view.text_columns is not None:
        return {c for cols in view.text_columns.values() for c in cols}

    extra = {"alpaca": {"input"}}.get(view.format, set())
    return set(_REQUIRED[view.format]) | extra


@dataclass
class TokensConfig(MethodConfig):
    """Options of `method="tokens"` (the text view is `select_diverse`'s `what=`, responses by default)."""

    diversity: float = diversity_option(
        "0 is the least mid-band token coverage the pruning chain reaches with k rows, 1 the token-aware "
        "maximal-coverage sample."
    )
    tokenizer: str | None = option(
        None,
        "Tokenizer of the model to be fine-tuned (Hub id or path); default the embedded SmolLM2-135M-Instruct one.",
    )
    low_threshold: float | None = option(
        None,
        "Token types occurring fewer times form the low band; default: the scaling rule (10 at the paper's pool size, "
        "at least 2).",
        bounds=(0, None),
    )
    high_threshold: float | None = option(
        None,
        "Token types occurring more times form the high band; default: the scaling rule (500 at the paper's pool "
        "size, at least 50 x low).",
        bounds=(0, None),
    )
    reference_tokens: int = option(
        REFERENCE_TOKENS, "Pool size in tokens at which the paper's 10 / 500 thresholds apply.", bounds=(1, None)
    )


def select_tokens(ctx: SelectionContext, config: TokensConfig) -> SelectionResult:
    """Micro diversity: k rows whose mid-band token coverage is set by `diversity` (see the module docstring).

    Args:
        ctx (`SelectionContext`): from `select_diverse`; `ctx.what` is the text view tokenized (`"response"`, the
            paper's best, by default) and `text_columns=` of `select_diverse` applies.
        config (`TokensConfig`): the dial, the tokenizer and the band thresholds.

    Returns:
        `SelectionResult`; `objective` has `mid_band_coverage`, `mid_band_types_covered`, `token_entropy_bits`.

    Example:
    ```py
    >>> from hf_diverse import get_provenance, select_diverse
    >>> subset = select_diverse(pool, k=10, method="tokens", diversity=1.0)
    >>> round(get_provenance(subset)["objective"]["mid_band_coverage"], 4)
    0.6311
    ```
    """
    diversity, what, tokenizer = config.diversity, ctx.what, config.tokenizer
    t0 = time.perf_counter()
    lists, tok = pool_token_lists(ctx.dataset, what, tokenizer, ctx.text_columns, ctx.show_progress, ctx.turns)
    t_tok = time.perf_counter() - t0
    inc = TokenIncidence(lists, config.low_threshold, config.high_threshold, config.reference_tokens)
    if inc.n_mid == 0:
        raise InvalidParameterError(
            f"The pool's {what} texts have no mid-band token types: none of the {inc.n_types_pool} token types "
            f"of its {inc.total_tokens} tokens occurs between low_threshold={inc.low} and "
            f"high_threshold={inc.high} times ({inc.n_high} high-band, {inc.n_low} low-band types). Use a larger "
            "pool, or set `low_threshold` / `high_threshold` explicitly."
        )
    tie_rank = np.empty(ctx.n, dtype=np.int64)
    tie_rank[np.random.default_rng(ctx.seed).permutation(ctx.n)] = np.arange(ctx.n)
    t1 = time.perf_counter()
    s0, new_types, counts0 = token_aware_sample(inc.csr, ctx.k, tie_rank, ctx.show_progress)
    t_sample = time.perf_counter() - t1
    if diversity == 1.0:
        sizes, step, target = np.array([int((counts0 > 0).sum())]), 0, float((counts0 > 0).sum())
        rows, gains = s0, new_types.astype(np.float64)
        chain_len = None
    else:
        sizes, steps = prune_chain(inc, s0, counts0, tie_rank, ctx.seed, ctx.show_progress)
        step, target = chain_step(sizes, diversity)
        gain_of = dict(zip(s0.tolist(), new_types.tolist(), strict=True))
        order = list(s0.tolist())
        for out_rows, fresh, brought in steps[:step]:
            gain_of.update(zip(fresh.tolist(), brought.tolist(), strict=True))
            order.extend(fresh.tolist())
            for i in out_rows.tolist():
                del gain_of[i]
        rows = np.asarray([i for i in order if i in gain_of], dtype=np.int64)
        gains = np.asarray([gain_of[i] for i in rows], dtype=np.float64)
        chain_len = len(sizes) - 1
    t_total = time.perf_counter() - t0

    covered = int(sizes[step])
    objective = {
        "mid_band_coverage": covered / inc.n_mid,
        "mid_band_types_covered": covered,
        "mid_band_types": inc.n_mid,
        "token_entropy_bits": token_entropy(inc.subset_counts(rows)),
        "mean_tokens": float(inc.lengths[rows].mean()),
    }
    details = {
        "what": what,
        "diversity": diversity,
        "bands": {
            "low_threshold": inc.low,
            "high_threshold": inc.high,
            "pool_tokens": inc.total_tokens,
            "reference_tokens": config.reference_tokens,
            "mid_types": inc.n_mid,
            "high_types": inc.n_high,
            "low_types": inc.n_low,
            "rule": "s = T / reference_tokens; low = max(2, round(10 s)); high = max(50 low, round(500 s))",
        },
        "coverage_max": int(sizes[0]) / inc.n_mid,
        "coverage_min": None if chain_len is None else int(sizes.min()) / inc.n_mid,
        "target_types": target,
        "chain_step": step,
        "chain_length": chain_len,
        "procedure": "token-aware lazy greedy (coverage, then even representation) to k rows, then inverse greedy "
        "pruning of the kept types with refill to k rows; see hf_diverse.selection.tokens",
        "timings_s": {"tokenize": round(t_tok, 3), "sample": round(t_sample, 3), "total": round(t_total, 3)},
        "models": {"tokenizer": {"name": tokenizer_name(tok), "source": "user" if tokenizer else "default"}},
    }
    if not math.isfinite(objective["token_entropy_bits"]):
        objective["token_entropy_bits"] = 0.0
    return SelectionResult(indices=rows.astype(np.int64), gains=gains, objective=objective, details=details)


METHOD = Method(
    name="tokens",
    select=select_tokens,
    config=TokensConfig,
    label="tokens: micro diversity over mid-band response tokens (diversity dial)",
    summary="Micro diversity (macro-to-micro paper): coverage of the mid-frequency token types of the responses, "
    "tokenized with the tokenizer of the model to be fine-tuned.",
    choices=(
        "The frequency bands (high / mid / low) are parameters: the paper's thresholds were set for a 117K pool. The "
        "paper's full pseudo-code was not available, so the two-stage procedure is hf_diverse's design: token-aware "
        "sampling to the maximal-coverage set of k rows, then inverse greedy pruning of the covered types with refill "
        "to exactly k rows; see `details`.",
    ),
    default_what="response",
)
