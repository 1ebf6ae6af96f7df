"""`diversity_report`: the posterior diversity metrics of a pool, a subset of it and a random subset of equal size.

How the subset relates to the pool (hf_diverse's choice):
- The subset is just another dataset: its text metrics (NR, SL, CR, Self-BLEU, IE, kurtosis, Gini) come from its own
  rows, whatever made it. Without a pool, the pool its provenance names is loaded again (an error says what is
  missing when it cannot be).
- Coverage d(A)/N and cluster coverage measure how the subset's *embeddings* cover the pool's, so they are defined
  even when some subset rows are not pool rows.
- Subset embeddings: its own embedding column when it has one (a `select_diverse` subset carries it); otherwise its
  rows are linked to pool rows (by `source_index` for a `select_diverse` subset, checked against the texts; by
  exact text otherwise), the pool's embeddings re-used, and only unlinked rows embedded. The report says how many
  rows matched, and a warning is logged when some do not.
- If the subset's provenance (from `select_diverse`) names a pool size different from this pool's, a note says so.

Embeddings per component: instructions use `embedding_column` (the column `select_diverse` writes, an embedding of
the instruction by default), responses `response_embedding_column`. A missing column is computed with
`hf_diverse.embeddings.compute_embeddings` (`embedding_model`, default all-MiniLM-L6-v2, kept in memory, not written)
unless `compute_embeddings=False`, in which case the embedding metrics of that component are `None` with a note.

The stages, each returning a value: `collect_sets` (texts, row matching, random subset), then per component
`measure_component` (`tokenize_sets`, `token_metrics`, `compression_metrics`, `self_bleu_metrics`,
`component_embeddings`, `embedding_metrics`), then `assemble_report`.
"""

import time
from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict

from ..data import load_source_pool
from ..errors import EmptyDatasetError, InvalidParameterError
from ..provenance import get_provenance
from ..textviews import TextView
from ..tokens import get_tokenizer, tokenizer_name
from ..utils.device import resolve_device
from .embedding_metrics import KMEANS_SETTINGS, component_embeddings, embedding_metrics
from .options import ReportOptions
from .result import COMPONENTS, LABELS, DiversityReport
from .sets import ReportSets, collect_sets
from .tag_metrics import tag_metrics
from .text_metrics import compression_metrics, self_bleu_metrics, token_budget, token_metrics, tokenize_sets

# the metric labels table lives in `hf_diverse.metrics`; this name stays for `card.py` and the Space

__all__ = [
    "COMPONENTS",
    "KMEANS_SETTINGS",
    "LABELS",
    "ComponentResult",
    "DiversityReport",
    "ReportOptions",
    "assemble_report",
    "diversity_report",
    "measure_component",
]


def diversity_report(
    dataset: Dataset | None,
    subset: Dataset | None = None,
    *,
    tokenizer=None,
    components: tuple[str, ...] | list[str] = COMPONENTS,
    embedding_column: str = "embedding",
    response_embedding_column: str = "response_embedding",
    embedding_model: str | None = None,
    compute_embeddings: bool = True,
    text_columns=None,
    turns: str = "first",
    seed: int = 0,
    self_bleu_samples: int = 1000,
    n_clusters: int = 100,
    random_baseline: bool = True,
    device: str | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
    tag_column: str | None = None,
    response_tag_column: str | None = None,
) -> DiversityReport:
    """Diversity metrics of `dataset` (the pool) and, when given, of `subset` and of a random pool subset of the same
    size, for instructions and responses separately.

    Args:
        dataset (`datasets.Dataset`): the pool, in any format `TextView` understands. `None` with a `subset` made by
            `select_diverse`: the pool its provenance names, loaded again (`hf_diverse.data.load_source_pool`).
        subset (`datasets.Dataset`, *optional*): e.g. the output of `select_diverse(dataset, ...)`. Its rows need not
            be pool rows (see the module docstring for how rows are matched).
        tokenizer (`str` or tokenizer, *optional*): for the token metrics; defaults to the SmolLM2-135M-Instruct
            tokenizer shipped offline. A name that cannot be loaded raises `ModelLoadError` before any work.
        components (`tuple[str]`, defaults to `("instruction", "response")`): text views to measure.
        embedding_column (`str`, defaults to `"embedding"`): instruction embeddings, used when present.
        response_embedding_column (`str`, defaults to `"response_embedding"`): response embeddings, used when present.
        embedding_model (`str`, *optional*): sentence-transformers model for missing embeddings (all-MiniLM-L6-v2).
        compute_embeddings (`bool`, defaults to `True`): compute missing embeddings; `False` skips the embedding
            metrics (ED, coverage, cluster coverage) of components without a column, with a note.
        text_columns (`list[str]` or `dict`, *optional*): override format detection (see `TextView`).
        turns (`str`, defaults to `"first"`): which turns of multi-turn rows make the views (see `TextView`).
        seed (`int`, defaults to 0): seeds the random subset, the Self-BLEU sample and k-means.
        self_bleu_samples (`int`, defaults to 1000): texts sampled per set for Self-BLEU, each scored against the other
            sampled texts (0 skips Self-BLEU). Self-BLEU grows with the sample, so every set uses the same number.
        n_clusters (`int`, defaults to 100): k-means clusters of the pool for cluster coverage (capped at the pool
            size); the QDIT paper's cluster variant also uses 100.
        random_baseline (`bool`, defaults to `True`): add a random subset of the subset's size (needs `subset`).
        device (`str`, *optional*): device for embeddings and coverage (`None`: auto).
        batch_size (`int`, defaults to 64): encoder batch size when embeddings are computed.
        show_progress (`bool`, defaults to `True`): progress bars.
        tag_column (`str`, *optional*): instruction tags for the tag diversity row (distinct tag categories / total
            tags); default `tags_normalized`, else `tags`, when the pool or subset has it (`TagScorer`). No tag column,
            no row.
        response_tag_column (`str`, *optional*): response tags; default `response_tags_normalized`, else
            `response_tags`.

    Returns:
        `DiversityReport`: prints as a table; `to_dict()`, `to_json()`, `plot(dir)`.

    Example:
    ```py
    >>> from hf_diverse import diversity_report, select_diverse
    >>> subset = select_diverse(pool, k=10)
    >>> report = diversity_report(pool, subset)
    >>> print(report)
    Diversity report (subset 10 rows, pool 60 rows, random 10 rows; tokenizer ...)
    <BLANKLINE>
    instruction                            subset        pool      random
    distinct-1 [NR] (+)                    0.5493       0.317      0.4686
    distinct-2 [NR] (+)                    0.8947      0.6408      0.7673
    ...
    Subset rows matched to pool rows: 10 of 10.
    ```
    """
    t_start = time.perf_counter()
    if dataset is None and subset is not None:
        dataset = load_source_pool(subset)  # the pool the subset's provenance names (a clear error when it cannot)
    _check_datasets(dataset, subset)
    options = ReportOptions(
        tokenizer=tokenizer,
        components=components,
        embedding_column=embedding_column,
        response_embedding_column=response_embedding_column,
        embedding_model=embedding_model,
        compute_embeddings=compute_embeddings,
        text_columns=text_columns,
        turns=turns,
        seed=seed,
        self_bleu_samples=self_bleu_samples,
        n_clusters=n_clusters,
        random_baseline=random_baseline,
        device=device,
        batch_size=batch_size,
        show_progress=show_progress,
        tag_column=tag_column,
        response_tag_column=response_tag_column,
    )
    _check_not_empty(dataset, subset)
    return _run_stages(dataset, subset, options, t_start)


def _check_datasets(dataset, subset) -> None:
    for name, ds in (("dataset", dataset), ("subset", subset)):
        if isinstance(ds, DatasetDict):
            raise InvalidParameterError(f"Pass one split as `{name}`, e.g. `{name}['train']`; got splits {list(ds)}.")
        if ds is not None and not isinstance(ds, Dataset):
            raise InvalidParameterError(f"`{name}` must be a `datasets.Dataset`, got {type(ds).__name__}.")


def _check_not_empty(dataset: Dataset, subset: Dataset | None) -> None:
    if len(dataset) == 0:
        raise EmptyDatasetError("The pool is empty: no diversity to measure.")
    if subset is not None and len(subset) == 0:
        raise EmptyDatasetError("The subset is empty: no diversity to measure.")


def _run_stages(dataset: Dataset, subset: Dataset | None, options: ReportOptions, t_start: float) -> DiversityReport:
    """Every stage in order, timed; the cheap checks (text views, tokenizer) come before any expensive work."""
    pool_view = TextView.for_columns(dataset.column_names, text_columns=options.text_columns, turns=options.turns)
    subset_view = (
        TextView.for_columns(subset.column_names, text_columns=options.text_columns, turns=options.turns)
        if subset is not None
        else None
    )
    tok = get_tokenizer(options.tokenizer)  # fail on a bad tokenizer name before any expensive work
    device = resolve_device(options.device)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sets = collect_sets(
        dataset, subset, pool_view, subset_view, seed=options.seed, random_baseline=options.random_baseline
    )
    timings["texts_s"] = time.perf_counter() - t0
    results = {
        component: measure_component(dataset, subset, sets, component, tok, options, device)
        for component in options.components
    }
    for component, result in results.items():
        timings.update({f"{component}_{stage}": seconds for stage, seconds in result.timings.items()})
    timings["total_s"] = time.perf_counter() - t_start
    settings = _settings(options, tok, len(dataset), subset)
    return assemble_report(sets, results, settings, timings, self_bleu=bool(options.self_bleu_samples))


@dataclass
class ComponentResult:
    """Everything measured on one component.

    Attributes:
        rows (`dict`): `{label: {metric: value}}`, metric keys in table order.
        rank_frequency (`dict`): `{label: {"rank": [...], "frequency": [...]}}`.
        self_bleu_sampled (`dict`): texts sampled for Self-BLEU per label (empty when skipped).
        embedding_sources (`dict`): where the pool and subset embeddings came from.
        notes (`list[str]`): caveats of this component.
        timings (`dict`): seconds per stage (`tokenize_s`, `token_metrics_s`, ...).
        token_budget (`int`): the equal token budget at which kurtosis and Gini were measured.
    """

    rows: dict
    rank_frequency: dict
    self_bleu_sampled: dict = field(default_factory=dict)
    embedding_sources: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    token_budget: int | None = None


def measure_component(
    dataset: Dataset,
    subset: Dataset | None,
    sets: ReportSets,
    component: str,
    tokenizer,
    options: ReportOptions,
    device,
) -> ComponentResult:
    """Run the text and embedding stages of one component on every set of `sets`.

    Args:
        dataset (`datasets.Dataset`) and subset (`datasets.Dataset`, *optional*): the pool and the subset.
        sets (`ReportSets`): from `collect_sets`.
        component (`str`): `"instruction"` or `"response"`.
        tokenizer: a loaded tokenizer.
        options (`ReportOptions`): the report's options.
        device (`torch.device`): device of the embeddings.
    """
    timings = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    texts = sets.texts(component)
    tokens = tokenize_sets(sets, component, tokenizer, show_progress=options.progress)
    lap("tokenize_s")
    token_rows, curves = token_metrics(tokens, len(tokenizer), seed=options.seed)
    lap("token_metrics_s")
    tag_rows, tag_notes = tag_metrics(dataset, subset, sets, component, options.tag_column_of(component))
    lap("tag_metrics_s")
    ratios = compression_metrics(texts)
    lap("compression_s")
    bleu, sampled = self_bleu_metrics(texts, options.self_bleu_samples, seed=options.seed)
    lap("self_bleu_s")
    emb = component_embeddings(dataset, subset, sets, component, options, device)
    lap("embeddings_s")
    emb_rows = embedding_metrics(emb, sets, options.n_clusters, seed=options.seed)
    lap("embedding_metrics_s")
    rows = {
        label: {
            **token_rows[label],
            **tag_rows.get(label, {}),
            "compression_ratio": ratios[label],
            "self_bleu": bleu[label],
            **emb_rows[label],
        }
        for label in sets.labels
    }
    return ComponentResult(
        rows, curves, sampled, emb.sources, emb.notes + tag_notes, timings, token_budget=token_budget(tokens)
    )


def _settings(options: ReportOptions, tok, n: int, subset: Dataset | None) -> dict:
    """What is needed to read the numbers (the per-component embedding sources are added by `assemble_report`)."""
    return {
        "tokenizer": tokenizer_name(options.tokenizer, tok),
        "vocab_size": len(tok),
        "seed": options.seed,
        "components": list(options.components),
        "self_bleu_samples": options.self_bleu_samples,
        "self_bleu": "sacrebleu BLEU(effective_order=True), 13a, 0-100",
        "entropy_base": 2,
        "kurtosis": "Appendix E: frequency-sorted rank index weighted by p_i (Pearson), at the equal token budget",
        "gini": "over counts of occurring token types, at the equal token budget",
        "token_budget": "fewest tokens of any set; larger sets subsampled without replacement (seeded)",
        "distinct_n": "token n-grams within each text",
        "compression": "gzip level 9, texts joined by newline, UTF-8",
        "embedding_distance": "exact mean over all pairs of 1 - cosine",
        "clusters": {**KMEANS_SETTINGS, "n_clusters": min(options.n_clusters, n), "random_state": options.seed},
        "embeddings": {},
        "subset_provenance": _subset_summary(subset),
    }


def _subset_summary(subset: Dataset | None) -> dict | None:
    record = get_provenance(subset) if subset is not None else None
    if not record or "method" not in record:
        return None
    return {key: record.get(key) for key in ("method", "k", "pool_size", "seed")}


def assemble_report(
    sets: ReportSets, results: dict[str, ComponentResult], settings: dict, timings: dict, self_bleu: bool = True
) -> DiversityReport:
    """The `DiversityReport` of the stages' values.

    Args:
        sets (`ReportSets`): sizes, matching and the notes of `collect_sets`.
        results (`dict[str, ComponentResult]`): `measure_component` per component, in report order.
        settings (`dict`): from `_settings`; gets `embeddings` (per component) and `self_bleu_sampled`.
        timings (`dict`): seconds per stage (rounded to ms here).
        self_bleu (`bool`, defaults to `True`): whether Self-BLEU ran (then `settings["self_bleu_sampled"]` is set).
    """
    settings = {
        **settings,
        "embeddings": {c: r.embedding_sources for c, r in results.items()},
        "token_budgets": {c: r.token_budget for c, r in results.items()},
    }
    if self_bleu:
        settings["self_bleu_sampled"] = {c: r.self_bleu_sampled for c, r in results.items()}
    notes = list(sets.notes) + [note for r in results.values() for note in r.notes]
    return DiversityReport(
        metrics={c: r.rows for c, r in results.items()},
        sizes=sets.sizes,
        settings=settings,
        notes=notes,
        matching=sets.matching,
        rank_frequency={c: r.rank_frequency for c, r in results.items()},
        timings={k: round(v, 3) for k, v in timings.items()},
    )
