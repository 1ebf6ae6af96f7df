"""`diversity_report`: the posterior diversity metrics of a pool, a subset of it and a random subset of equal size.

How the subset relates to the pool (hf_diverse's choice):
- The subset is just another dataset: its text metrics (NR, SL, CR, Self-BLEU, IE, kurtosis, Gini) come from its own
  rows, whatever made it.
- Coverage d(A)/N and cluster coverage measure how the subset's *embeddings* cover the pool's, so they are defined
  even when some subset rows are not pool rows.
- Subset embeddings: its own embedding column when it has one (a `select_diverse` subset carries it); otherwise its
  rows are matched to pool rows by exact text (instruction and response), the pool's embeddings re-used, and only
  unmatched rows embedded. The report says how many rows matched.
- If the subset's provenance (from `select_diverse`) names a pool size different from this pool's, a note says so.

Embeddings per component: instructions use `embedding_column` (the column `select_diverse` writes, an embedding of
the instruction by default), responses `response_embedding_column`. A missing column is computed with
`EmbeddingScorer` (`embedding_model`, default all-MiniLM-L6-v2, kept in memory, not written) unless
`compute_embeddings=False`, in which case the embedding metrics of that component are `None` with a note.
"""

import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from .. import metrics as M
from ..clustering import fit_kmeans
from ..errors import EmbeddingError, EmptyDatasetError, InvalidParameterError
from ..provenance import get_provenance
from ..textviews import _REQUIRED, TextView
from ..tokens import get_tokenizer, token_frequencies, tokenize_texts, tokenizer_name
from ..utils.device import resolve_device
from ..utils.logging import get_logger
from ..utils.progress import are_progress_bars_enabled, tqdm

logger = get_logger(__name__)

COMPONENTS = ("instruction", "response")
LABELS = ("subset", "pool", "random")
# metric key -> (label in the table, short name in the papers)
METRICS = {
    "distinct_1": ("distinct-1", "NR"),
    "distinct_2": ("distinct-2", "NR"),
    "distinct_3": ("distinct-3", "NR"),
    "distinct_4": ("distinct-4", "NR"),
    "embedding_distance": ("embedding distance", "ED"),
    "mean_length_tokens": ("mean length (tokens)", "SL"),
    "compression_ratio": ("gzip compression ratio", "CR"),
    "self_bleu": ("Self-BLEU", "BL"),
    "entropy_bits": ("token entropy (bits)", "IE"),
    "kurtosis": ("token-frequency kurtosis", ""),
    "gini": ("token-frequency Gini", ""),
    "coverage": ("coverage d(A)/N", ""),
    "cluster_coverage": ("cluster coverage", ""),
}
_RANK_POINTS = 200
KMEANS_SETTINGS = {
    "algorithm": "sklearn MiniBatchKMeans on L2-normalised pool embeddings, single-threaded",
    "n_init": 1,
    "batch_size": 4096,
    "init": "k-means++",
}


def _clean(value):
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else value


@dataclass
class DiversityReport:
    """Diversity metrics of a pool (and a subset and a random subset of the same size), per component.

    Attributes:
        metrics (`dict`): `metrics[component][label][metric]`, a float or `None` (undefined or skipped); component in
            `("instruction", "response")`, label in `("subset", "pool", "random")`, metric keys as in `METRICS`.
        sizes (`dict`): rows per label.
        settings (`dict`): everything needed to read the numbers (tokenizer, seed, Self-BLEU samples, k-means
            settings, embedding sources, entropy base, ...).
        notes (`list[str]`): skipped metrics and other caveats.
        matching (`dict`): how subset rows were matched to pool rows (`matched`, `unmatched`).
        rank_frequency (`dict`): `rank_frequency[component][label] = {"rank": [...], "frequency": [...]}`, relative
            token frequencies at up to 200 log-spaced ranks (what `plot` draws).
        timings (`dict`): seconds per stage.

    Example:
    ```py
    >>> report = diversity_report(pool, subset)
    >>> print(report)                                  # table
    >>> report.metrics["response"]["subset"]["entropy_bits"]
    >>> report.to_json("report.json"); report.plot("plots/")
    ```
    """

    metrics: dict
    sizes: dict
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    matching: dict = field(default_factory=dict)
    rank_frequency: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [label for label in LABELS if label in self.sizes]

    @property
    def components(self) -> list[str]:
        return list(self.metrics)

    def to_dict(self) -> dict:
        """A JSON-ready dict (`from_dict` inverts it)."""
        return {
            "metrics": self.metrics,
            "sizes": self.sizes,
            "settings": self.settings,
            "notes": list(self.notes),
            "matching": self.matching,
            "rank_frequency": self.rank_frequency,
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DiversityReport":
        return cls(
            **{
                key: data.get(key, {} if key != "notes" else [])
                for key in ("metrics", "sizes", "settings", "notes", "matching", "rank_frequency", "timings")
            }
        )

    def to_json(self, path: str | None = None, indent: int = 2) -> str:
        """The report as JSON; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> "DiversityReport":
        """Read a report from a JSON string or a file written by `to_json`."""
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        return cls.from_dict(json.loads(text))

    def plot(self, path_dir) -> list[str]:
        """Write PNGs into `path_dir` (created): per component, `token_frequency_<component>.png` (rank-frequency,
        log-log, one line per label) and `metrics_<component>.png` (one bar panel per metric). Returns the paths."""
        from ..plots.report import plot_report

        return plot_report(self, path_dir)

    def __str__(self) -> str:
        labels = self.labels
        head = ", ".join(f"{label} {self.sizes[label]} rows" for label in labels)
        lines = [
            f"Diversity report ({head}; tokenizer {self.settings.get('tokenizer')}, seed {self.settings.get('seed')})"
        ]
        width = max(len(_row_name(key)) for key in METRICS) + 2
        for component, by_label in self.metrics.items():
            lines.append("")
            lines.append(f"{component:<{width}}" + "".join(f"{label:>12}" for label in labels))
            for key in METRICS:
                values = [by_label.get(label, {}).get(key) for label in labels]
                cells = "".join(f"{_fmt(v):>12}" for v in values)
                lines.append(f"{_row_name(key):<{width}}{cells}")
        lines.append("")
        lines.append(
            "(+) higher = more diverse, (-) lower = more diverse. Self-BLEU on "
            f"{self.settings.get('self_bleu_samples')} sampled texts per set; entropy in bits."
        )
        if self.matching:
            lines.append(
                f"Subset rows matched to pool rows: {self.matching.get('matched')} of {self.sizes.get('subset')}."
            )
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def __repr__(self):
        return f"DiversityReport(sizes={self.sizes}, components={self.components})"


def _row_name(key: str) -> str:
    name, short = METRICS[key]
    sign = {True: " (+)", False: " (-)", None: ""}[M.HIGHER_IS_MORE_DIVERSE[key]]
    return f"{name}{' [' + short + ']' if short else ''}{sign}"


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


# --- the report -----------------------------------------------------------------------------------------------
def diversity_report(
    dataset: Dataset,
    subset: Dataset | None = None,
    *,
    tokenizer=None,
    components: tuple[str, ...] | list[str] = COMPONENTS,
    embedding_column: str = "embedding",
    response_embedding_column: str = "response_embedding",
    embedding_model: str | None = None,
    compute_embeddings: bool = True,
    text_columns=None,
    seed: int = 0,
    self_bleu_samples: int = 1000,
    n_clusters: int = 100,
    random_baseline: bool = True,
    device: str | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
) -> DiversityReport:
    """Diversity metrics of `dataset` (the pool) and, when given, of `subset` and of a random pool subset of the same
    size, for instructions and responses separately.

    Args:
        dataset (`datasets.Dataset`): the pool, in any format `TextView` understands.
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
        seed (`int`, defaults to 0): seeds the random subset, the Self-BLEU sample and k-means.
        self_bleu_samples (`int`, defaults to 1000): texts sampled per set for Self-BLEU, each scored against the other
            sampled texts (0 skips Self-BLEU). Self-BLEU grows with the sample, so every set uses the same number.
        n_clusters (`int`, defaults to 100): k-means clusters of the pool for cluster coverage (capped at the pool
            size); the QDIT paper's cluster variant also uses 100.
        random_baseline (`bool`, defaults to `True`): add a random subset of the subset's size (needs `subset`).
        device (`str`, *optional*): device for embeddings and coverage (`None`: auto).
        batch_size (`int`, defaults to 64): encoder batch size when embeddings are computed.
        show_progress (`bool`, defaults to `True`): progress bars.

    Returns:
        `DiversityReport`: prints as a table; `to_dict()`, `to_json()`, `plot(dir)`.

    Example:
    ```py
    >>> from hf_diverse import diversity_report, load_pool, select_diverse
    >>> pool = load_pool()
    >>> subset = select_diverse(pool, k=30)
    >>> report = diversity_report(pool, subset)
    >>> print(report)
    ```
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    for name, ds in (("dataset", dataset), ("subset", subset)):
        if isinstance(ds, DatasetDict):
            raise InvalidParameterError(f"Pass one split as `{name}`, e.g. `{name}['train']`; got splits {list(ds)}.")
        if ds is not None and not isinstance(ds, Dataset):
            raise InvalidParameterError(f"`{name}` must be a `datasets.Dataset`, got {type(ds).__name__}.")
    components = tuple(components)
    bad = [c for c in components if c not in COMPONENTS]
    if bad or not components:
        raise InvalidParameterError(f"Unknown component(s) {bad or components}. Valid components: {list(COMPONENTS)}.")
    if self_bleu_samples != 0 and self_bleu_samples < 2:
        raise InvalidParameterError(f"self_bleu_samples must be 0 (skip) or >= 2, got {self_bleu_samples}.")
    if n_clusters < 1:
        raise InvalidParameterError(f"n_clusters must be >= 1, got {n_clusters}.")
    if len(dataset) == 0:
        raise EmptyDatasetError("The pool is empty: no diversity to measure.")
    if subset is not None and len(subset) == 0:
        raise EmptyDatasetError("The subset is empty: no diversity to measure.")
    progress = show_progress and are_progress_bars_enabled()
    pool_view = TextView.for_columns(dataset.column_names, text_columns=text_columns)
    sub_view = TextView.for_columns(subset.column_names, text_columns=text_columns) if subset is not None else None
    tok = get_tokenizer(tokenizer)  # fail on a bad tokenizer name before any expensive work
    vocab_size = len(tok)
    dev = resolve_device(device)
    notes: list[str] = []

    t0 = time.perf_counter()
    pool_texts = _all_texts(dataset, pool_view)
    sub_texts = _all_texts(subset, sub_view) if subset is not None else None
    timings["texts_s"] = time.perf_counter() - t0

    n, m = len(dataset), (len(subset) if subset is not None else 0)
    sizes = {"pool": n}
    matching: dict = {}
    match_idx = None
    random_idx = None
    if subset is not None:
        sizes = {"subset": m, "pool": n}
        match_idx = _match_rows(pool_texts, sub_texts)
        matching = {
            "matched": int((match_idx >= 0).sum()),
            "unmatched": int((match_idx < 0).sum()),
            "by": "exact (instruction, response) text",
        }
        record = get_provenance(subset) or {}
        if record.get("pool_size") is not None and record["pool_size"] != n:
            notes.append(
                f"The subset's provenance says it was selected from a pool of {record['pool_size']} rows; "
                f"this pool has {n}."
            )
        if random_baseline:
            if m > n:
                notes.append(f"No random baseline: the subset ({m} rows) is larger than the pool ({n}).")
            else:
                random_idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
                sizes["random"] = m
    labels = [label for label in LABELS if label in sizes]

    settings = {
        "tokenizer": tokenizer_name(tokenizer, tok),
        "vocab_size": vocab_size,
        "seed": seed,
        "components": list(components),
        "self_bleu_samples": self_bleu_samples,
        "self_bleu": "sacrebleu BLEU(effective_order=True), 13a, 0-100",
        "entropy_base": 2,
        "kurtosis": "scipy.stats.kurtosis(fisher=True, bias=True) of counts of occurring types",
        "gini": "over counts of occurring token types",
        "distinct_n": "token n-grams within each text",
        "compression": "gzip level 9, texts joined by newline, UTF-8",
        "embedding_distance": "exact mean over all pairs of 1 - cosine",
        "clusters": {**KMEANS_SETTINGS, "n_clusters": min(n_clusters, n), "random_state": seed},
        "embeddings": {},
        "subset_provenance": _subset_summary(subset),
    }

    result: dict = {c: {label: {} for label in labels} for c in components}
    scorers: dict = {}
    rank_frequency: dict = {c: {} for c in components}
    for component in components:
        texts = {"pool": pool_texts[component]}
        if subset is not None:
            texts["subset"] = sub_texts[component]
        if random_idx is not None:
            texts["random"] = [pool_texts[component][i] for i in random_idx]

        t0 = time.perf_counter()
        pool_tokens = tokenize_texts(texts["pool"], tok, show_progress=progress)
        tokens = {"pool": pool_tokens}
        if subset is not None:
            tokens["subset"] = _subset_tokens(texts["subset"], pool_tokens, match_idx, tok)
        if random_idx is not None:
            tokens["random"] = [pool_tokens[i] for i in random_idx]
        timings[f"{component}_tokenize_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for label in labels:
            counts = token_frequencies(tokens[label], vocab_size=max(vocab_size, _max_id(tokens[label]) + 1))
            row = result[component][label]
            for order, value in M.distinct_ns(tokens[label], (1, 2, 3, 4)).items():
                row[f"distinct_{order}"] = _clean(value)
            row["mean_length_tokens"] = _clean(M.mean_length(tokens[label]))
            row["entropy_bits"] = _clean(M.token_entropy(counts, base=2))
            row["kurtosis"] = _clean(M.token_kurtosis(counts))
            row["gini"] = _clean(M.gini_index(counts))
            rank_frequency[component][label] = _rank_frequency(counts)
        timings[f"{component}_token_metrics_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for label in labels:
            result[component][label]["compression_ratio"] = _clean(M.compression_ratio(texts[label]))
        timings[f"{component}_compression_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for label in labels:
            if self_bleu_samples:
                score, used = M.self_bleu(texts[label], samples=self_bleu_samples, seed=seed)
                result[component][label]["self_bleu"] = _clean(score)
                settings.setdefault("self_bleu_sampled", {}).setdefault(component, {})[label] = used
            else:
                result[component][label]["self_bleu"] = None
        timings[f"{component}_self_bleu_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        column = embedding_column if component == "instruction" else response_embedding_column
        emb = _component_embeddings(
            component,
            column,
            dataset,
            subset,
            pool_view,
            sub_view,
            match_idx,
            embedding_model,
            compute_embeddings,
            text_columns,
            dev,
            batch_size,
            progress,
            settings,
            notes,
            scorers,
        )
        timings[f"{component}_embeddings_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _embedding_metrics(result[component], emb, random_idx, match_idx, n_clusters, seed, notes, component)
        timings[f"{component}_embedding_metrics_s"] = time.perf_counter() - t0

    timings["total_s"] = time.perf_counter() - t_start
    return DiversityReport(
        metrics=result,
        sizes=sizes,
        settings=settings,
        notes=notes,
        matching=matching,
        rank_frequency=rank_frequency,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


# --- helpers --------------------------------------------------------------------------------------------------
def _needed_columns(view: TextView, column_names: list[str]) -> list[str]:
    if view.text_columns is not None:
        named = {c for cols in view.text_columns.values() for c in cols}
    else:
        named = set(_REQUIRED[view.format]) | ({"input"} if view.format == "alpaca" else set())
    return [c for c in column_names if c in named]


def _all_texts(dataset: Dataset, view: TextView, chunk: int = 10_000) -> dict[str, list[str]]:
    """Instruction and response text of every row (only the text columns are read: no embedding lists)."""
    ds = dataset.select_columns(_needed_columns(view, dataset.column_names))
    out: dict[str, list[str]] = {c: [] for c in COMPONENTS}
    for start in range(0, len(ds), chunk):
        batch = ds[start : start + chunk]
        rows = range(start, min(start + chunk, len(ds)))
        for component in COMPONENTS:
            out[component].extend(view.texts(batch, what=component, indices=rows))
    return out


def _match_rows(pool_texts: dict, sub_texts: dict) -> np.ndarray:
    """Pool row of each subset row by exact (instruction, response) text, -1 when absent. Duplicates in the pool
    are matched in order (the i-th copy in the subset gets the i-th copy in the pool)."""
    where: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(pool_texts["instruction"], pool_texts["response"], strict=True)):
        where.setdefault(key, []).append(i)
    used: dict[tuple[str, str], int] = {}
    out = np.full(len(sub_texts["instruction"]), -1, dtype=np.int64)
    for j, key in enumerate(zip(sub_texts["instruction"], sub_texts["response"], strict=True)):
        rows = where.get(key)
        if rows:
            taken = used.get(key, 0)
            if taken < len(rows):
                out[j] = rows[taken]
                used[key] = taken + 1
    return out


def _subset_tokens(texts: list[str], pool_tokens: list, match_idx: np.ndarray, tok) -> list:
    """Tokens of the subset: rows matched to the pool re-use the pool's tokens, the rest are tokenized."""
    missing = np.flatnonzero(match_idx < 0)
    extra = dict(zip(missing.tolist(), tokenize_texts([texts[i] for i in missing], tok), strict=True))
    return [pool_tokens[j] if j >= 0 else extra[i] for i, j in enumerate(match_idx.tolist())]


def _max_id(token_lists) -> int:
    return max((int(t.max()) for t in token_lists if len(t)), default=-1)


def _rank_frequency(counts: np.ndarray) -> dict:
    """Relative frequencies sorted descending, at up to `_RANK_POINTS` log-spaced ranks (1-based)."""
    freq = np.sort(counts[counts > 0])[::-1].astype(np.float64)
    if freq.size == 0:
        return {"rank": [], "frequency": []}
    freq /= freq.sum()
    ranks = np.unique(np.round(np.logspace(0, np.log10(freq.size), _RANK_POINTS)).astype(np.int64))
    return {"rank": ranks.tolist(), "frequency": freq[ranks - 1].tolist()}


def _subset_summary(subset: Dataset | None) -> dict | None:
    record = get_provenance(subset) if subset is not None else None
    if not record or "method" not in record:
        return None
    return {key: record.get(key) for key in ("method", "k", "pool_size", "seed")}


def _read_column(dataset: Dataset, column: str, device) -> torch.Tensor:
    from ..embeddings import read_embeddings

    return M.normalize_rows(read_embeddings(dataset, column)).to(device)


def _encode(
    dataset: Dataset, view_columns, component, model, text_columns, device, batch_size, progress, desc, scorers: dict
):
    from ..scorers.embedding import EmbeddingScorer

    # one scorer (one loaded model) for every component: only its text view changes
    scorer = scorers.get("scorer")
    if scorer is None:
        scorer = scorers["scorer"] = EmbeddingScorer(
            model=model, text_columns=text_columns, device=str(device), batch_size=batch_size
        )
    scorer.what = component
    ds = dataset.select_columns(view_columns)
    chunk = max(batch_size, 256)
    parts = []
    for start in tqdm(range(0, len(ds), chunk), desc=desc, disable=not progress):
        batch = ds[start : start + chunk]
        parts.append(scorer(batch, list(range(start, start + len(next(iter(batch.values())))))))
    array = np.concatenate([p[scorer.output_column] for p in parts]).astype(np.float32, copy=False)
    return torch.from_numpy(array).to(device), scorer.model_info


def _component_embeddings(
    component,
    column,
    dataset,
    subset,
    pool_view,
    sub_view,
    match_idx,
    model,
    compute,
    text_columns,
    device,
    batch_size,
    progress,
    settings,
    notes,
    scorers,
) -> dict | None:
    """`{"pool": (N, d), "subset": (m, d) or None}` normalised embeddings, or `None` when unavailable."""
    info = settings["embeddings"].setdefault(component, {})
    if column in dataset.column_names:
        pool_emb = _read_column(dataset, column, device)
        info["pool"] = f"column {column!r}"
    elif compute:
        pool_emb, model_info = _encode(
            dataset,
            _needed_columns(pool_view, dataset.column_names),
            component,
            model,
            text_columns,
            device,
            batch_size,
            progress,
            f"Embedding pool {component}s",
            scorers,
        )
        pool_emb = M.normalize_rows(pool_emb)
        info["pool"] = f"computed with {model_info['name']}"
    else:
        notes.append(
            f"No {component} embeddings (column {column!r} missing, compute_embeddings=False): "
            f"embedding distance, coverage and cluster coverage of {component}s are skipped."
        )
        info["pool"] = None
        return None
    out = {"pool": pool_emb, "subset": None}
    if subset is None:
        return out
    if column in subset.column_names:
        sub_emb = _read_column(subset, column, device)
        info["subset"] = f"column {column!r}"
    else:
        sub_emb = torch.zeros((len(subset), pool_emb.shape[1]), dtype=torch.float32, device=device)
        found = match_idx >= 0
        if found.any():
            sub_emb[torch.from_numpy(np.flatnonzero(found)).to(device)] = pool_emb[
                torch.from_numpy(match_idx[found]).to(device)
            ]
        missing = np.flatnonzero(~found)
        info["subset"] = f"pool rows matched by text ({int(found.sum())} of {len(subset)})"
        if missing.size:
            if not compute:
                notes.append(
                    f"{missing.size} subset rows are not pool rows and have no {column!r} column "
                    f"(compute_embeddings=False): {component} embedding metrics are skipped."
                )
                return {"pool": pool_emb, "subset": None, "skip_subset": True}
            extra, model_info = _encode(
                subset.select(missing),
                _needed_columns(sub_view, subset.column_names),
                component,
                model,
                text_columns,
                device,
                batch_size,
                progress,
                f"Embedding subset {component}s",
                scorers,
            )
            if extra.shape[1] != pool_emb.shape[1]:
                raise EmbeddingError(
                    f"The pool's {component} embeddings ({column!r}) have dimension {pool_emb.shape[1]} but "
                    f"{model_info['name']} gives {extra.shape[1]}; pass the subset with its own {column!r} column "
                    "or the same `embedding_model`."
                )
            sub_emb[torch.from_numpy(missing).to(device)] = M.normalize_rows(extra)
            info["subset"] += f", {missing.size} embedded with {model_info['name']}"
            if column in dataset.column_names:
                notes.append(
                    f"{missing.size} subset rows were embedded with {model_info['name']} while the pool's "
                    f"{component} embeddings come from column {column!r}: make sure it is the same model."
                )
    if sub_emb.shape[1] != pool_emb.shape[1]:
        raise EmbeddingError(
            f"Subset {component} embeddings ({column!r}) have dimension {sub_emb.shape[1]}, the pool's "
            f"{pool_emb.shape[1]}: they must come from the same model."
        )
    out["subset"] = sub_emb
    return out


def _embedding_metrics(result, emb, random_idx, match_idx, n_clusters, seed, notes, component):
    keys = ("embedding_distance", "coverage", "cluster_coverage")
    for row in result.values():
        for key in keys:
            row[key] = None
    if emb is None:
        return
    pool = emb["pool"]
    result["pool"]["embedding_distance"] = _clean(M.mean_pairwise_cosine_distance(pool))
    # A = V: every pool row covers itself (cos = 1), and every cluster is hit
    result["pool"]["coverage"] = 1.0
    result["pool"]["cluster_coverage"] = 1.0
    others = {}
    if "subset" in result and emb.get("subset") is not None:
        whole = match_idx is not None and bool((match_idx >= 0).all())
        others["subset"] = (emb["subset"], match_idx if whole else None)
    if random_idx is not None:
        others["random"] = (pool[torch.from_numpy(random_idx).to(pool.device)], random_idx)
    if not others:
        return
    model = fit_kmeans(M.normalize_rows(pool), min(n_clusters, pool.shape[0]), seed=seed, n_init=1, batch_size=4096)
    pool_labels = model.labels
    for label, (sub, idx) in others.items():
        result[label]["embedding_distance"] = _clean(M.mean_pairwise_cosine_distance(sub))
        if idx is not None:
            result[label]["coverage"] = _clean(M.facility_location_coverage(pool, indices=idx))
            labels = pool_labels[idx]
        else:
            result[label]["coverage"] = _clean(M.facility_location_coverage(pool, subset=sub))
            labels = model.predict(M.normalize_rows(sub))
        result[label]["cluster_coverage"] = _clean(M.cluster_coverage(pool_labels, labels))
