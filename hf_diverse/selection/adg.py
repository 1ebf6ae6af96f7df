"""`method="adg"`: answer-divergence scores, selected by proportional quota inside semantic bins (ADG).

1. Scores: the `adg_score` column when present; else recomputed from `adg_divergence` / `adg_isotropy` with `lam`
   when those are present; else computed with `AnswerDivergenceScorer` (an LM sampling K answers per row: the
   expensive step, logged with its size).
2. Bins: MiniBatchKMeans over the instruction-embedding column (`n_bins` defaults to `min(1000, N // 50)`, at least
   1; `random_state=seed`, `n_init=3`). The reference uses 1000 bins and random_state 42 whatever the pool size.
3. Quota: bin b of size n_b gets `floor(n_b * k / N)` rows plus one more for the `k - sum floor(...)` bins with the
   largest remainders (largest-remainder apportionment, exact integer arithmetic), so the subset has exactly k rows.
   Ties in remainder go to the bin whose next candidate scores higher, then to the bin holding the lower row index.
   Bins of any size take part (the reference drops bins under 3 items, forces at least 1 per bin and never tops up).
4. Within a bin: highest score first, ties to the lower row index. Everything is keyed by row index (the reference
   aligns scores and bin labels by position, which shifts every later label when one item fails).

The subset comes in pick order: score descending, ties to the lower row.
"""

from dataclasses import dataclass

import numpy as np

from ..clustering import kmeans_labels
from ..embeddings import datasets_progress
from ..errors import ColumnNotFoundError
from ..quota import binned_quota
from ..scorers.adg import ANSWERS_COLUMN, COLUMNS, AnswerDivergenceScorer, combined_score
from ..scoring import score, store_enabled
from ..utils.logging import get_logger
from .base import Method, SelectionContext, SelectionResult, read_quality
from .config import MethodConfig, option

logger = get_logger(__name__)

QUOTA_RULE = (
    "largest remainder: floor(n_b * k / N) per bin, +1 for the bins with the largest remainders "
    "(ties: higher next score, then lower row index); within a bin by score, ties to the lower row"
)


def default_n_bins(n: int) -> int:
    """`min(1000, N // 50)`, at least 1: the reference's 1000 bins, scaled down for small pools."""
    return max(1, min(1000, n // 50))


def bin_embeddings(embeddings, n_bins: int, seed: int = 0) -> np.ndarray:
    """Bin labels (int64, one per row): k-means with `n_init=3`, `random_state=seed`, batches of 1024 rows."""
    return kmeans_labels(embeddings, min(n_bins, max(len(embeddings), 1)), seed, n_init=3, batch_size=1024)[0]


@dataclass
class AdgConfig(MethodConfig):
    """Options of `method="adg"`; the answer-sampling ones only matter when the scores are computed here."""

    n_bins: int | None = option(
        None, "k-means bins of the instruction embeddings; default min(1000, N // 50), at least 1.", bounds=(1, None)
    )
    score_column: str = option("adg_score", "Column of ADG scores, used as is when present (else computed).")
    lam: float = option(
        0.4, "Weight of isotropy I in the score (1 - lam) * D + lam * I (the reference: 0.4).", bounds=(0, 1)
    )
    model: str | None = option(None, "Causal LM that samples the answers; default the embedded SmolLM2-135M-Instruct.")
    num_samples: int = option(5, "K, answers sampled per instruction (the reference: 5).", bounds=(2, None))
    temperature: float = option(1.4, "Sampling temperature (the reference: 1.4).", bounds=(0, None))
    top_p: float = option(0.9, "Nucleus sampling top_p (the reference: 0.9).", bounds=(0, 1))
    max_new_tokens: int = option(256, "Longest sampled answer in tokens (the reference: 256).", bounds=(1, None))
    pooling: str = option(
        "answer",
        "What each answer vector pools: 'answer' (the answer tokens of a teacher-forced pass) or "
        "'instruction+answer' (the reference code's pooling).",
        choices=("answer", "instruction+answer"),
    )
    backend: str = option(
        "transformers", "Generation backend: 'transformers' or 'vllm'.", choices=("transformers", "vllm")
    )
    lm_batch_size: int = option(64, "Sequences (instructions x K) sampled together.", bounds=(1, None))
    keep_answers: bool = option(False, "Keep the sampled answers in an `adg_answers` column.")


def select_adg(ctx: SelectionContext, config: AdgConfig) -> SelectionResult:
    """ADG: top answer-divergence rows inside instruction-embedding bins, with a proportional quota (exactly k).

    Args:
        ctx (`SelectionContext`): from `select_diverse`.
        config (`AdgConfig`): bins, score column and, when the scores are computed here, the answer sampling (see
            `AnswerDivergenceScorer`).

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> # computes adg_score with the default LM when the pool has none (slow on a CPU)
    >>> subset = select_diverse(pool, k=1000, method="adg")  # doctest: +SKIP
    >>> # a pool scored once with `AnswerDivergenceScorer`: re-uses its adg_score column
    >>> subset = select_diverse(scored_pool, k=1000, method="adg", n_bins=200)  # doctest: +SKIP
    ```
    """
    n, k = ctx.n, ctx.k
    n_bins, score_column, lam = config.n_bins, config.score_column, config.lam
    dataset = ctx.dataset
    details: dict = {"score_column": score_column, "lam": lam}
    new_columns: dict = {}
    if score_column in dataset.column_names:
        scores = read_quality(dataset, score_column)
        details["scores"] = "precomputed"
    elif score_column == "adg_score" and {"adg_divergence", "adg_isotropy"} <= set(dataset.column_names):
        scores = combined_score(read_quality(dataset, "adg_divergence"), read_quality(dataset, "adg_isotropy"), lam)
        details["scores"] = f"recomputed from adg_divergence and adg_isotropy with lam={lam}"
        new_columns["adg_score"] = scores
    elif score_column != "adg_score":
        raise ColumnNotFoundError(
            f"Score column {score_column!r} not in the dataset. Current columns in the dataset: "
            f"{dataset.column_names}. Leave score_column='adg_score' to compute ADG scores."
        )
    else:
        scored, info = _compute_scores(
            ctx,
            model=config.model,
            num_samples=config.num_samples,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
            lam=lam,
            pooling=config.pooling,
            backend=config.backend,
            batch_size=config.lm_batch_size,
            keep_answers=config.keep_answers,
        )
        scores = np.asarray(scored["adg_score"], dtype=np.float64)
        new_columns.update(scored)
        details["scores"] = "computed"
        details["models"] = {"lm": info}

    n_bins_used = default_n_bins(n) if n_bins is None else min(int(n_bins), n)
    if n_bins is not None and n_bins > n:
        logger.warning("n_bins=%d is more than the %d rows of the pool; using %d bins.", n_bins, n, n)
    labels = bin_embeddings(ctx.embeddings().cpu().numpy(), n_bins_used, seed=ctx.seed)
    indices = binned_quota(scores, labels, k)

    _, sizes = np.unique(labels, return_counts=True)
    picked_bins = len(np.unique(labels[indices]))
    details.update(
        n_bins=n_bins_used,
        nonempty_bins=len(sizes),
        bins_represented=picked_bins,
        bin_size_min=int(sizes.min()),
        bin_size_median=float(np.median(sizes)),
        bin_size_max=int(sizes.max()),
        clustering=f"MiniBatchKMeans(n_clusters={n_bins_used}, n_init=3, random_state={ctx.seed})",
        quota=QUOTA_RULE,
    )
    objective = {
        "adg_score_mean": float(scores[indices].mean()),
        "adg_score_pool_mean": float(scores.mean()),
    }
    columns = {name: [values[i] for i in indices] for name, values in new_columns.items()}
    columns["adg_bin"] = labels[indices].tolist()
    for name, key in (("adg_divergence", "divergence"), ("adg_isotropy", "isotropy")):
        values = new_columns.get(name)
        if values is None and name in dataset.column_names:
            values = read_quality(dataset, name)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            objective[f"{key}_mean"] = float(values[indices].mean())
    return SelectionResult(
        indices=indices, gains=scores[indices], objective=objective, details=details, columns=columns
    )


def _compute_scores(ctx: SelectionContext, batch_size: int, **scorer_kwargs):
    """Run `AnswerDivergenceScorer` over the pool with `Dataset.map`; returns `(columns, lm_info)`."""
    scorer = AnswerDivergenceScorer(seed=ctx.seed, device=str(ctx.device), batch_size=batch_size, **scorer_kwargs)
    info = scorer.model_info
    logger.warning(
        "No `adg_score` column: computing ADG scores for %d rows with %s on %s: %d sampled answers of up to %d "
        "tokens each (%d generations). This is the expensive step: it is kept in the score store (checkpoint_dir), "
        "so an interrupted call resumes and rows scored before are found again; or score once with "
        "`hf_diverse.score(pool, AnswerDivergenceScorer(...))` and select from the scored pool.",
        ctx.n,
        info["name"],
        ctx.device,
        scorer.num_samples,
        scorer.max_new_tokens,
        ctx.n * scorer.num_samples,
    )
    rows_per_call = max(1, batch_size // scorer.num_samples)
    keep = [*COLUMNS, ANSWERS_COLUMN] if scorer.keep_answers else list(COLUMNS)
    drop = [c for c in ctx.dataset.column_names if c not in keep]
    if ctx.checkpoint_dir is not None or store_enabled():  # resumable, and rows scored before are found again
        scored = score(
            ctx.dataset,
            scorer,
            checkpoint_dir=ctx.checkpoint_dir,
            batch_size=rows_per_call * 4,
            show_progress=ctx.show_progress,
            desc="ADG answer divergence",
        )
        return scored.remove_columns(drop).to_dict(), info
    kwargs = dict(
        batched=True,
        batch_size=rows_per_call * 4,
        with_indices=True,
        features=scorer.features(ctx.dataset),
        desc="ADG answer divergence",
    )
    with datasets_progress(ctx.show_progress):
        scored = ctx.dataset.map(scorer, **kwargs)
    return scored.remove_columns(drop).to_dict(), info


METHOD = Method(
    name="adg",
    select=select_adg,
    config=AdgConfig,
    label="ADG: answer divergence (samples answers with SmolLM2; slow on CPU)",
    summary="Answer divergence (ADG): several sampled answers per instruction, scored by how far (D) and in how many "
    "directions (I) they spread; the top rows of each instruction cluster are kept.",
    choices=(
        "Bins get their quota by largest-remainder apportionment with deterministic tie-breaking, so the subset has "
        "exactly k rows (the reference forces one row per bin, drops small bins and never tops up).",
        "Scores, bins and rows are keyed by row, never by position.",
        "When hf_diverse computes the scores, each answer vector pools the answer tokens of one teacher-forced pass "
        "over prompt + answer by default (the reference pools instruction + answer).",
    ),
    needs_embeddings=True,
)
