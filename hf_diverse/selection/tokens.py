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

**Procedure: the paper's order** (its pseudo-code was not available; the details are hf_diverse's design, in
`hf_diverse.selection.token_sampling`):

1. *Inverse greedy pruning of the pool* (Algorithm 1, `prune_pool`): drop the mid-band type held by the fewest
   remaining rows together with those rows, step after step, so that the pool keeps as many rows as possible for its
   number of kept types |K|; the chain ends before fewer than k rows would remain (with `length="matched"`, before
   the length quotas below could no longer be met). |K| falls strictly along the chain, from every mid-band type to
   `T_min`.
2. *Token-aware sampling* (Algorithm 2, `token_aware_sample`) of k rows from the pruned pool: greedy on the entropy
   of the kept types' occurrence counts in the sample (their even representation). Rows bringing types the sample
   lacks raise it most, so coverage comes with it, but a row piling occurrences onto frequent types loses to one that
   evens the counts out.
3. *The dial.* The dial lands on a fixed grid of chain points: every step, or at most 64 spread evenly over |K|
   (the first, unpruned point and the last one included). The sample of a point covers c(g) mid-band types (its
   pool holds kept types only). With c_max = c(first point) (the whole pool) and c_min = c(last point), the target is
   `c_min + diversity * (c_max - c_min)` and the subset is the sample of the *first* grid point whose coverage is at
   most the target. First passage over one fixed sequence makes the coverage monotone non-decreasing in `diversity`
   by construction, even where c(g) is not monotone along the chain: for targets T1 < T2 with first points
   g1 >= g2, c(g2) < c(g1) <= T1 would make g2 a point at most T1 earlier than g1, a contradiction. `diversity=1` is
   the unpruned sample, `diversity=0` the smallest coverage the chain reaches. Samples are computed when the dial
   first needs them and kept for the pool (a `diversity_series` samples each point once).

**Length** (`length=`). The sampling greedy prefers long rows (they hold more types), so with `length="free"` (the
paper's main experiments, the default) the mean response length rises with `diversity`. `length="matched"` (the
paper's length-controlled ablation, Section 4.2) keeps the subset's mean length within `length_tolerance` (10%) of
a random subset of k rows (`numpy.random.default_rng(seed).choice(N, k, replace=False)`, the random baseline of
`diversity_report` with the same seed) at every point: rows fall in length bins (pool quantiles, up to 10), the
subset takes as many rows from each bin as the random subset does, and a row is taken only while the rest can still
complete the subset inside the band (`LengthBudget`).

Everything is deterministic for a `seed` (it orders ties). The subset is in pick order; `selection_gain` is the number
of kept types new to the subset that a row covered.
"""

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
from .base import Method, SelectionContext, SelectionResult
from .config import MethodConfig, diversity_option, option
from .token_sampling import TokenPlan, length_plan

logger = get_logger(__name__)

PAPER_LOW, PAPER_HIGH = 10, 500
# 117K responses x ~500 tokens: the paper's thresholds were set at this scale (see the module docstring)
REFERENCE_TOKENS = 58_500_000
LENGTHS = ("free", "matched")


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
    """Mid-band token types of a pool: counts, thresholds and the row x type matrix of occurrence counts.

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
        data = np.ones(int(keep.sum()), dtype=np.int64)
        # duplicates are summed: entry (i, j) is how often row i holds mid-band type j
        self.csr = sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(self.n_rows, len(self.mid_types)))
        self.csr.sum_duplicates()
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

    def covered_types(self, rows) -> int:
        """How many of the pool's mid-band types occur in `rows`."""
        if self.n_mid == 0 or len(rows) == 0:
            return 0
        return int((np.asarray(self.csr[np.asarray(rows, dtype=np.int64)].sum(axis=0)).ravel() > 0).sum())

    def coverage(self, rows) -> float:
        """Fraction of the pool's mid-band types that occur in `rows`."""
        return self.covered_types(rows) / self.n_mid if self.n_mid else 0.0


_PLAN_CACHE: dict = {}
_INC_CACHE: dict = {}
PLANS_KEPT = 4


_CACHE: dict = {}


def pool_token_lists(dataset, what: str, tokenizer, text_columns=None, show_progress: bool = False, turns="first"):
    """Token ids of the `what` view of every row, cached for the last (dataset fingerprint, what,
    tokenizer, text columns) so that a `diversity_series` tokenizes the pool once. Returns `(token lists, tokenizer,
    cache key)`."""

    tok = get_tokenizer(tokenizer)
    key = (dataset._fingerprint, what, tokenizer_name(tok), repr(text_columns), turns)
    if _CACHE.get("key") == key:
        return _CACHE["value"], tok, key
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
    return lists, tok, key


def _view_columns(view: TextView) -> set:
    if view.text_columns is not None:
        return {c for cols in view.text_columns.values() for c in cols}

    extra = {"alpaca": {"input"}}.get(view.format, set())
    return set(_REQUIRED[view.format]) | extra


@dataclass
class TokensConfig(MethodConfig):
    """Options of `method="tokens"` (the text view is `select_diverse`'s `what=`, responses by default)."""

    diversity: float = diversity_option(
        "0 prunes the pool to the fewest mid-band token types k rows can come from, 1 samples the whole pool (the "
        "paper's Algorithm 1, pruning, then Algorithm 2, token-aware sampling); coverage is monotone in between."
    )
    length: str = option(
        "free",
        "'free' (the paper's main setting: mean length follows the dial) or 'matched' (the paper's length-controlled "
        "ablation: mean response length within length_tolerance of a random subset's at every point).",
        choices=LENGTHS,
    )
    length_tolerance: float = option(
        0.1, "Relative band around the random subset's mean length with length='matched'.", bounds=(0, 1)
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


def _plan(ctx: SelectionContext, config: TokensConfig, inc: TokenIncidence, tokens_key) -> TokenPlan:
    """The pool's `TokenPlan`, cached for the last few (pool, tokenizer, bands, k, seed, length) so that a
    `diversity_series` prunes the pool once and samples each point of the dial once."""
    matched = config.length == "matched"
    key = (tokens_key, inc.low, inc.high, ctx.k, ctx.seed, config.length, config.length_tolerance if matched else None)
    if key not in _PLAN_CACHE:
        lengths = length_plan(inc.lengths, ctx.k, ctx.seed, config.length_tolerance) if matched else None
        _PLAN_CACHE[key] = TokenPlan(inc, ctx.k, ctx.seed, lengths, ctx.show_progress)
        while len(_PLAN_CACHE) > PLANS_KEPT:
            del _PLAN_CACHE[next(iter(_PLAN_CACHE))]  # the oldest
    return _PLAN_CACHE[key]


def select_tokens(ctx: SelectionContext, config: TokensConfig) -> SelectionResult:
    """Micro diversity: k rows whose mid-band token coverage is set by `diversity` (see the module docstring).

    Args:
        ctx (`SelectionContext`): from `select_diverse`; `ctx.what` is the text view tokenized (`"response"`, the
            paper's best, by default) and `text_columns=` of `select_diverse` applies.
        config (`TokensConfig`): the dial, the length control, the tokenizer and the band thresholds.

    Returns:
        `SelectionResult`; `objective` has `mid_band_coverage`, `mid_band_types_covered`, `token_entropy_bits`,
        `kept_type_entropy_bits`, `mean_tokens` and `total_tokens`.

    Example:
    ```py
    >>> from hf_diverse import get_provenance, select_diverse
    >>> subset = select_diverse(pool, k=10, method="tokens", diversity=1.0)
    >>> round(get_provenance(subset)["objective"]["mid_band_coverage"], 4)
    0.6052
    ```
    """
    t0 = time.perf_counter()
    lists, tok, tokens_key = pool_token_lists(
        ctx.dataset, ctx.what, config.tokenizer, ctx.text_columns, ctx.show_progress, ctx.turns
    )
    t_tok = time.perf_counter() - t0
    inc_key = (tokens_key, config.low_threshold, config.high_threshold, config.reference_tokens)
    if _INC_CACHE.get("key") != inc_key:  # the cached plans of this pool share one incidence matrix
        _INC_CACHE.clear()
        _INC_CACHE.update(key=inc_key, value=TokenIncidence(lists, *inc_key[1:]))
    inc = _INC_CACHE["value"]
    if inc.n_mid == 0:
        raise InvalidParameterError(
            f"The pool's {ctx.what} texts have no mid-band token types: none of the {inc.n_types_pool} token types "
            f"of its {inc.total_tokens} tokens occurs between low_threshold={inc.low} and "
            f"high_threshold={inc.high} times ({inc.n_high} high-band, {inc.n_low} low-band types). Use a larger "
            "pool, or set `low_threshold` / `high_threshold` explicitly."
        )
    t1 = time.perf_counter()
    plan = _plan(ctx, config, inc, tokens_key)
    t_plan = time.perf_counter() - t1
    g, target = plan.landing(config.diversity)
    rows, sample = plan.sample(g)
    t_sample = time.perf_counter() - t1 - t_plan
    if len(rows) != ctx.k:  # cannot happen: the chain keeps >= k rows and the budget starts feasible
        raise InvalidParameterError(f"tokens: the sample has {len(rows)} rows instead of k={ctx.k}.")
    t_total = time.perf_counter() - t0
    objective = {
        "mid_band_coverage": inc.coverage(rows),
        "mid_band_types_covered": inc.covered_types(rows),
        "mid_band_types": inc.n_mid,
        "kept_types": int(plan.chain.sizes[plan.grid[g]]),
        "kept_types_covered": sample.covered,
        "token_entropy_bits": token_entropy(inc.subset_counts(rows)),
        "kept_type_entropy_bits": sample.entropy / math.log(2),
        "mean_tokens": float(inc.lengths[rows].mean()),
        "total_tokens": int(inc.lengths[rows].sum()),
    }
    if not math.isfinite(objective["token_entropy_bits"]):
        objective["token_entropy_bits"] = 0.0
    details = _details(ctx, config, inc, plan, g, target)
    details["timings_s"] = {
        "tokenize": round(t_tok, 3),
        "prune": round(t_plan, 3),
        "sample": round(t_sample, 3),
        "total": round(t_total, 3),
    }
    details["models"] = {
        "tokenizer": {"name": tokenizer_name(tok), "source": "user" if config.tokenizer else "default"}
    }
    return SelectionResult(
        indices=rows.astype(np.int64), gains=sample.new_types.astype(np.float64), objective=objective, details=details
    )


def _details(ctx, config, inc, plan: TokenPlan, g: int, target: float) -> dict:
    details = {
        "what": ctx.what,
        "diversity": config.diversity,
        "order": "prune the pool (Algorithm 1), then sample k rows (Algorithm 2)",
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
        "chain_length": plan.end,
        "chain_step": int(plan.grid[g]),
        "pruned_pool_rows": int(plan.chain.alive[plan.grid[g]]),
        "target_types": target,
        "coverage_max": plan.coverage(0) / inc.n_mid,
        "coverage_min": plan.coverage(len(plan.grid) - 1) / inc.n_mid,
        "grid_points": len(plan.grid),
        "length": config.length,
        "procedure": "inverse greedy pruning of the pool to the target number of mid-band types, then token-aware "
        "sampling (greedy on the entropy of the kept types' counts); see hf_diverse.selection.tokens",
    }
    if plan.lengths is not None:
        lp = plan.lengths
        rows, sample = plan.sample(g)
        mean = float(inc.lengths[rows].mean())
        met = lp.low - 1e-9 <= mean <= lp.high + 1e-9
        if not met or sample.budget_misses:
            logger.warning(
                "tokens: length='matched' mean %.1f tokens vs the band [%.1f, %.1f] (%d picks without an eligible "
                "row).",
                mean,
                lp.low,
                lp.high,
                sample.budget_misses,
            )
        details["length_control"] = {
            "band_met": met,
            "picks_without_eligible_row": sample.budget_misses,
            "target_mean_tokens": lp.target,
            "band": [lp.low, lp.high],
            "tolerance": config.length_tolerance,
            "reference": f"numpy default_rng({ctx.seed}).choice(N, k, replace=False)",
            "bin_edges": lp.edges,
            "bin_quotas": lp.quotas.tolist(),
        }
    return details


METHOD = Method(
    name="tokens",
    select=select_tokens,
    config=TokensConfig,
    label="tokens: micro diversity over mid-band response tokens (diversity dial)",
    summary="Micro diversity (macro-to-micro paper): coverage of the mid-frequency token types of the responses, "
    "tokenized with the tokenizer of the model to be fine-tuned, in the paper's order: inverse greedy pruning of the "
    "pool to the target number of types, then token-aware sampling of k rows that covers and evens out the kept "
    "types.",
    choices=(
        "The frequency bands (high / mid / low) are parameters: the paper's thresholds were set for a 117K pool. The "
        "paper's full pseudo-code was not available, so the procedure is hf_diverse's design of its two algorithms: "
        "pruning drops the type held by the fewest rows; sampling takes the row that raises the entropy of the kept "
        "types' counts most; the dial lands on the first point of a fixed grid of the chain whose sample covers at "
        "most its target, so coverage is monotone in `diversity`.",
        "`length='matched'` keeps the subset's mean response length within 10% of a random subset's (bin quotas and "
        "an exact length budget); `length='free'` (default, the paper's main setting) lets length follow the dial. "
        "`details.length` says which ran.",
    ),
    default_what="response",
)
