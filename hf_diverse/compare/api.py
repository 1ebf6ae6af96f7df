"""`compare_methods`: which method (and k, alpha) for this pool? Every method on the same candidates, measured on a
held-out split no selection ever sees, against a random subset of the same size."""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from .. import metrics as M
from ..embeddings import compute_embeddings, read_embeddings_chunked
from ..errors import InvalidParameterError
from ..io import atomic_directory
from ..provenance import get_provenance, jsonable
from ..report.result import COMPONENTS
from ..report.sets import read_texts
from ..selection import get_method, select_diverse
from ..selection.api import resolve_k
from ..textviews import TextView
from ..tokens import get_tokenizer, tokenize_texts, tokenizer_name
from ..utils.logging import get_logger
from ..utils.progress import are_progress_bars_enabled, tqdm
from .measure import CandidateData, measure_subsets
from .result import ComparisonResult, optimises
from .split import heldout_split
from .training import BUDGETS, train_subsets

logger = get_logger(__name__)

REFERENCE = "random"
# a column added to the candidates so that each subset row maps back to its candidate row (removed afterwards)
_ROW = "__hf_diverse_candidate_row__"


def compare_methods(
    pool: Dataset,
    k: int | float,
    methods=("qdit", "random"),
    *,
    quality_column: str | None = None,
    holdout: float | int = 0.05,
    seed: int = 0,
    alphas=None,
    train: bool = False,
    budget: str = "examples",
    model=None,
    method_options: dict | None = None,
    train_options: dict | None = None,
    embedding_column: str = "embedding",
    embedding_model: str | None = None,
    response_embedding_column: str = "response_embedding",
    compute_response_embeddings: bool = False,
    text_columns=None,
    tokenizer=None,
    components=COMPONENTS,
    self_bleu_samples: int = 1000,
    n_clusters: int = 100,
    device: str | None = None,
    batch_size: int = 64,
    output_dir: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> ComparisonResult:
    """Select `k` rows with each method from the same candidates and measure every subset on held-out data.

    A held-out split is drawn once by content hash (`holdout` of the pool, seeded; `hf_diverse.compare.split`), taken
    out of the candidates of every method and never seen by any selection. A random subset of the same size is always
    measured (it is added when `methods` lacks it): held-out wins count against it and the plots draw it as the
    reference. The metrics are listed in `hf_diverse.compare.measure`; the table says which direction is better and
    what each method maximises (facility location is representativeness, not spread: QDIT need not beat random on
    distinct-n or Self-BLEU).

    Args:
        pool (`datasets.Dataset`): the pool, in any format `TextView` reads.
        k (`int` or `float`): rows per subset, or a fraction of the candidates.
        methods (`list[str]` or `str`, defaults to `("qdit", "random")`): methods to run (a comma-separated string
            works too), e.g. `["qdit", "adg", "tokens", "clusters", "quality", "random"]`.
        quality_column (`str`, *optional*): numeric column, higher is better; passed to every method and measured.
        holdout (`float` or `int`, defaults to 0.05): held-out fraction in (0, 1), or a row count.
        seed (`int`, defaults to 0): seeds the split, every method, the random subset, k-means and training.
        alphas (`list[float]`, *optional*): run every method that has an `alpha` option (QDIT) once per value, e.g.
            `methods=["qdit"], alphas=[0, 0.3, 0.5, 0.7, 1]` for an alpha sweep in one call.
        train (`bool`, defaults to `False`): fine-tune `model` on every subset and report the held-out loss
            (`hf_diverse.compare.training`; needs `pip install 'hf_diverse[train]'`).
        budget (`str`, defaults to `"examples"`): training budget, `"examples"` (all k rows) or `"tokens"` (every
            subset cut to the same number of tokens, counted with `tokenizer`).
        model (*optional*): the causal LM to fine-tune (default: the offline SmolLM2-135M-Instruct).
        method_options (`dict`, *optional*): `{method: {option: value}}`, e.g. `{"tokens": {"diversity": 0.5}}`.
        train_options (`dict`, *optional*): `SFTConfig` fields for every run, e.g. `{"max_steps": 100}`.
        embedding_column (`str`, defaults to `"embedding"`): instruction embeddings; computed once for the whole pool
            when missing, so every method and the held-out coverage use the same ones.
        embedding_model (`str`, *optional*): sentence-transformers model for that (default all-MiniLM-L6-v2).
        response_embedding_column (`str`, defaults to `"response_embedding"`): response embeddings, used when present.
        compute_response_embeddings (`bool`, defaults to `False`): embed the responses when that column is missing
            (otherwise the response embedding metrics are skipped, with a note).
        text_columns (*optional*): columns to read instead of the detected format (see `TextView`).
        tokenizer (*optional*): tokenizer of the token metrics and the token budget (default: SmolLM2's).
        components (`tuple[str]`, defaults to `("instruction", "response")`): text views of the diversity metrics.
        self_bleu_samples (`int`, defaults to 1000): texts sampled per subset for Self-BLEU (0 skips it).
        n_clusters (`int`, defaults to 100): k-means clusters of the candidates for cluster coverage.
        device (`str`, *optional*): device for embeddings and selection (`None`: auto).
        batch_size (`int`, defaults to 64): encoder batch size.
        output_dir (`str`, *optional*): write `comparison.json`, `comparison.md` (the card section) and the PNGs
            there, atomically.
        overwrite (`bool`, defaults to `False`): replace an existing `output_dir`.
        show_progress (`bool`, defaults to `True`): progress bars.

    Returns:
        `ComparisonResult`: `print(result)` is the table; `to_json`, `to_markdown`, `plot`; `result.datasets[label]`
        is each selected subset (with its provenance).

    Example:
    ```py
    >>> from hf_diverse import compare_methods
    >>> result = compare_methods(pool, k=10, methods=["qdit", "tokens"], quality_column="reward", holdout=10,
    ...                          self_bleu_samples=0, n_clusters=5, show_progress=False)
    >>> result.labels
    ['qdit (alpha=0.7)', 'tokens', 'random']
    >>> print(result)  # doctest: +ELLIPSIS
    Comparison of 3 subsets of k=10 rows from 50 candidates; 10 held-out rows never selected (seed 0)
    ...
    >>> sweep = compare_methods(pool, k=10, methods=["qdit"], alphas=[0, 0.5, 1], quality_column="reward",
    ...                         holdout=10, show_progress=False)  # doctest: +SKIP
    ```
    """
    methods, alphas = _check(pool, methods, alphas, budget, components, method_options)
    tok = get_tokenizer(tokenizer)  # a bad tokenizer fails before any expensive work
    opts = _Options(
        quality_column=quality_column, holdout=holdout, seed=seed, train=train, budget=budget, model=model,
        method_options=method_options or {}, train_options=train_options, embedding_column=embedding_column,
        embedding_model=embedding_model, response_embedding_column=response_embedding_column,
        compute_response_embeddings=compute_response_embeddings, text_columns=text_columns, tokenizer=tok,
        tokenizer_name=tokenizer_name(tokenizer, tok), components=tuple(components),
        self_bleu_samples=self_bleu_samples, n_clusters=n_clusters, device=device, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip
    if output_dir is None:
        return _compare(pool, k, methods, alphas, opts)
    with atomic_directory(output_dir, overwrite=overwrite) as tmp:  # an existing output fails before any work
        result = _compare(pool, k, methods, alphas, opts)
        write_comparison(result, tmp)
    return result


@dataclass
class _Options:
    """The options of `compare_methods` (see there), handed to its stages."""

    quality_column: str | None
    holdout: float | int
    seed: int
    train: bool
    budget: str
    model: object
    method_options: dict
    train_options: dict | None
    embedding_column: str
    embedding_model: str | None
    response_embedding_column: str
    compute_response_embeddings: bool
    text_columns: object
    tokenizer: object
    tokenizer_name: str
    components: tuple
    self_bleu_samples: int
    n_clusters: int
    device: str | None
    batch_size: int
    show_progress: bool

    @property
    def progress(self) -> bool:
        return self.show_progress and are_progress_bars_enabled()


def _compare(pool: Dataset, k, methods: list, alphas: list | None, opts: _Options) -> ComparisonResult:
    """The stages of `compare_methods`: split, embeddings, selections, metrics, training."""
    t_start = time.perf_counter()
    notes, timings = [], {}
    texts = read_texts(pool, TextView.for_columns(pool.column_names, text_columns=opts.text_columns))
    split = heldout_split(texts["instruction"], texts["response"], holdout=opts.holdout, seed=opts.seed)
    t0 = time.perf_counter()
    pool, embeddings, embedding_info = _embeddings(pool, opts, notes)
    timings["embedding_s"] = time.perf_counter() - t0
    candidates = pool.select(split.candidates).flatten_indices()
    candidates = candidates.add_column(_ROW, list(range(len(candidates))))
    k = resolve_k(k, len(candidates))
    t0 = time.perf_counter()
    runs = _select_all(candidates, k, methods, alphas, opts, notes)
    timings["selection_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cand_texts = {c: [texts[c][i] for i in split.candidates] for c in COMPONENTS}
    tokens = {c: tokenize_texts(cand_texts[c], opts.tokenizer, show_progress=opts.progress) for c in COMPONENTS}
    data = CandidateData(
        texts=cand_texts,
        tokens=tokens,
        vocab_size=len(opts.tokenizer),
        embeddings={c: _take(embeddings[c], split.candidates) for c in COMPONENTS},
        heldout=_take(embeddings["instruction"], split.heldout),
        quality=np.asarray(candidates[opts.quality_column], dtype=np.float64) if opts.quality_column else None,
        components=opts.components,
        n_clusters=opts.n_clusters,
        seed=opts.seed,
        self_bleu_samples=opts.self_bleu_samples,
    )
    measured = measure_subsets(data, {label: run["rows"] for label, run in runs.items()}, reference=REFERENCE)
    timings["metrics_s"] = time.perf_counter() - t0
    if opts.quality_column is None:
        notes.append("No quality column: mean quality is not measured and the coverage-quality plot is left out.")
    training = None
    if opts.train:
        t0 = time.perf_counter()
        training = _train(runs, measured, tokens, pool.select(split.heldout), opts)
        timings["training_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    settings = {
        "pool_rows": len(pool),
        "k": k,
        "seed": opts.seed,
        "split": split.to_dict(),
        "quality_column": opts.quality_column,
        "methods": methods,
        "alphas": alphas,
        "components": list(opts.components),
        "tokenizer": opts.tokenizer_name,
        "embedding": embedding_info,
        "self_bleu_samples": opts.self_bleu_samples,
        "n_clusters": opts.n_clusters,
        "training": training,
    }
    result = _result(runs, measured, settings, notes, timings)
    result.heldout_rows = split.heldout
    return result


def _train(runs: dict, measured: dict, tokens: dict, heldout: Dataset, opts: _Options) -> dict:
    """Fine-tune on every subset (`train_subsets`); the held-out loss goes into `measured`, the run into `runs`."""
    counts = {
        label: np.array([len(tokens["instruction"][i]) + len(tokens["response"][i]) for i in run["rows"]])
        for label, run in runs.items()
    }
    trained, settings = train_subsets(
        {label: run["dataset"] for label, run in runs.items()},
        heldout,
        counts,
        model=opts.model,
        budget=opts.budget,
        seed=opts.seed,
        text_columns=opts.text_columns,
        train_options=opts.train_options,
        show_progress=opts.progress,
    )
    for label, run in trained.items():
        measured[label]["heldout_loss"] = run["heldout_loss"]
        runs[label]["training"] = run
    return settings


def write_comparison(result: ComparisonResult, folder) -> list[str]:
    """Write `comparison.json`, `comparison.md` (the card section) and the plots into `folder`; return the files."""
    folder = Path(folder)
    result.to_json(folder / "comparison.json")
    (folder / "comparison.md").write_text(result.to_markdown() + "\n")
    plots = result.plot(folder / "plots")
    return ["comparison.json", "comparison.md", *(f"plots/{Path(p).name}" for p in plots)]


def _check(pool, methods, alphas, budget, components, method_options):
    if isinstance(pool, DatasetDict):
        raise InvalidParameterError(
            f"Pass one split, e.g. `pool['train']`; got a DatasetDict with splits {list(pool)}."
        )
    if not isinstance(pool, Dataset):
        raise InvalidParameterError(f"`pool` must be a `datasets.Dataset`, got {type(pool).__name__}.")
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise InvalidParameterError("methods is empty: name at least one method, e.g. ['qdit'].")
    for name in methods:
        get_method(name)  # an unknown name raises, naming the valid ones
    if alphas is not None:
        alphas = [float(a) for a in alphas]
        if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
            raise InvalidParameterError(f"alphas must be numbers in [0, 1], got {alphas!r}.")
    if budget not in BUDGETS:
        raise InvalidParameterError(f"Unknown budget {budget!r}. Valid values of budget: {list(BUDGETS)}.")
    bad = [c for c in components if c not in COMPONENTS]
    if bad or not components:
        raise InvalidParameterError(
            f"Unknown component(s) {bad or list(components)}. Valid components: {list(COMPONENTS)}."
        )
    unknown = sorted(set(method_options or {}) - set(methods) - {REFERENCE})
    if unknown:
        raise InvalidParameterError(f"method_options names method(s) {unknown} that are not compared: {methods}.")
    return methods, alphas


def _embeddings(pool: Dataset, opts: _Options, notes: list) -> tuple[Dataset, dict, dict]:
    """`(pool with its embedding column, {component: L2-normalised embeddings or None}, embedding model record)`:
    the instruction embeddings are read or computed once for the whole pool (held-out rows included)."""
    column = opts.embedding_column
    if column in pool.column_names:
        record = get_provenance(pool) or {}
        info = (record.get("models") or {}).get("embedding") or {"name": f"precomputed column {column!r}"}
    else:
        pool, info = compute_embeddings(pool, column, opts.embedding_model, opts.text_columns, "instruction",
                                        opts.device, opts.batch_size, None, opts.progress)  # fmt: skip
    out = {"instruction": M.normalize_rows(read_embeddings_chunked(pool, column)), "response": None}
    column = opts.response_embedding_column
    if "response" not in opts.components:
        return pool, out, info
    if column not in pool.column_names and opts.compute_response_embeddings:
        pool, _ = compute_embeddings(pool, column, opts.embedding_model, opts.text_columns, "response", opts.device,
                                     opts.batch_size, None, opts.progress)  # fmt: skip
    if column in pool.column_names:
        out["response"] = M.normalize_rows(read_embeddings_chunked(pool, column))
    else:
        notes.append(
            f"No {column!r} column: the response embedding metrics (embedding distance, coverage, cluster coverage) "
            "are skipped; pass compute_response_embeddings=True (CLI: --response-embeddings)."
        )
    return pool, out, info


def _take(x: torch.Tensor | None, rows: np.ndarray) -> torch.Tensor | None:
    return None if x is None else x[torch.as_tensor(rows, dtype=torch.long, device=x.device)]


def _plan(methods: list, alphas, opts: _Options, notes: list) -> list[tuple[str, str, dict]]:
    """`(method, label, options)` of every subset to select: each method once, or once per alpha when it has an
    `alpha` option and `alphas` is given; the random reference is added when missing."""
    if REFERENCE not in methods:
        methods = [*methods, REFERENCE]
        notes.append("random was added as the reference subset (held-out wins count against it).")
    plan = []
    for name in methods:
        method = get_method(name)
        has_alpha = any(opt.name == "alpha" for opt in method.config.options())
        options = dict(opts.method_options.get(name, {}))
        if not has_alpha:
            if alphas is not None:
                notes.append(f"alphas do not apply to {name!r} (it has no alpha option).")
            plan.append((name, name, options))
            continue
        for alpha in alphas if alphas is not None else [options.get("alpha", method.config().alpha)]:
            plan.append((name, f"{name} (alpha={float(alpha):g})", {**options, "alpha": float(alpha)}))
    return plan


def _select_all(candidates: Dataset, k: int, methods: list, alphas, opts: _Options, notes: list) -> dict[str, dict]:
    """Every (method, alpha) subset, plus the random reference: `{label: {"method", "rows", "dataset", ...}}`."""
    runs = {}
    plan = _plan(methods, alphas, opts, notes)
    for name, label, options in tqdm(plan, desc="compare_methods: selections", disable=not opts.progress):
        logger.info("compare_methods: selecting %s", label)
        subset = select_diverse(
            candidates, k, method=name, quality_column=opts.quality_column, embedding_column=opts.embedding_column,
            text_columns=opts.text_columns, seed=opts.seed, device=opts.device, show_progress=opts.show_progress,
            **options,
        )  # fmt: skip
        record = get_provenance(subset) or {}
        effective = (record.get("details") or {}).get("alpha_effective")
        if "alpha" in options and effective is not None and effective != options["alpha"]:
            # the label names the alpha that ran (tables, plots and cards show labels)
            asked, label = label, f"{name} (alpha={float(effective):g}; {options['alpha']:g} asked)"
            notes.append(f"{label} ran with alpha={float(effective):g}, not {options['alpha']:g}: no quality column.")
            logger.info("compare_methods: %s ran as %s (no quality column).", asked, label)
        runs[label] = {
            "method": name,
            "rows": np.asarray(subset[_ROW], dtype=np.int64),
            "dataset": subset.remove_columns(_ROW),
            "parameters": {key: v for key, v in (record.get("parameters") or {}).items() if v is not None},
            "provenance": record,
        }
    return runs


def _result(runs: dict, measured: dict, settings: dict, notes: list, timings: dict) -> ComparisonResult:
    subsets = []
    for label, run in runs.items():
        keys, text = optimises(run["method"])
        entry = {
            "label": label,
            "method": run["method"],
            "parameters": jsonable(run["parameters"]),
            "optimises": {"metrics": keys, "text": text},
            "metrics": measured[label],
            "provenance": jsonable(run["provenance"]),
        }
        if "training" in run:
            entry["training"] = run["training"]
        subsets.append(entry)
    timings = {name: round(seconds, 3) for name, seconds in timings.items()}
    datasets = {label: run["dataset"] for label, run in runs.items()}
    return ComparisonResult(subsets, jsonable(settings), notes, timings, datasets)
