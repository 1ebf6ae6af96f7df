"""hf_diverse Space: pick a diverse instruction-tuning subset in the browser.

A thin Gradio layer over hf_diverse's public API: `load_pool` reads the source, `select_diverse` selects,
`diversity_report` compares subset vs pool vs random, `plots.projection` / `plots.adg` draw the figures,
`render_card` writes the dataset card and `push_curated` publishes. The page only collects inputs, shows outputs and
turns errors into readable messages.

Run locally (from the repository root, after `bash .ci/setup` or `pip install -e ".[space]"`):

    .venv/bin/python space/app.py            # then open http://127.0.0.1:7860

The `gr.Blocks` is built at import time (`demo`) and launched only under `__main__`, so tests can import this file.
"""

import os

# no analytics or version check calls from the server (a Space or a test machine may have no internet)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# gradio's run history would keep every call's inputs (the push token too) in the browser
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

import hf_diverse
from hf_diverse import (
    METHODS,
    EmbeddingScorer,
    HfDiverseError,
    InvalidParameterError,
    TextView,
    detect_format,
    load_pool,
    score,
    select_diverse,
)
from hf_diverse.provenance import get_provenance
from hf_diverse.selection import resolve_k
from hf_diverse.utils.logging import get_logger

logger = get_logger("hf_diverse.space")

# limits that keep a free CPU Space (2 vCPU, 16 GB) responsive; raise them on bigger hardware
MAX_ROWS = int(os.environ.get("HF_DIVERSE_SPACE_MAX_ROWS", "2000"))
ADG_MAX_ROWS = int(os.environ.get("HF_DIVERSE_SPACE_ADG_MAX_ROWS", "64"))
# tagging with SmolLM2-135M runs at ~0.8 rows/s on 2 CPU cores (benchmarks/RESULTS.md, issue 15): ~4 min for 200
TAGS_MAX_ROWS = int(os.environ.get("HF_DIVERSE_SPACE_TAGS_MAX_ROWS", "200"))
# ADG answers: the paper's K=5 samples, but up to 64 new tokens each instead of 256 (CPU time); None = SmolLM2
ADG_MODEL = os.environ.get("HF_DIVERSE_SPACE_ADG_MODEL") or None
ADG_NUM_SAMPLES = 5
ADG_MAX_NEW_TOKENS = int(os.environ.get("HF_DIVERSE_SPACE_ADG_MAX_NEW_TOKENS", "64"))
TABLE_TEXT_CHARS = 300
# report settings for CPU: Self-BLEU on this many sampled texts per set; response embeddings only on request
SELF_BLEU_SAMPLES = int(os.environ.get("HF_DIVERSE_SPACE_SELF_BLEU_SAMPLES", "50"))
EMBEDDING_COLUMN = "embedding"

SOURCES = ("Embedded sample", "Hub dataset", "Upload a file")
# the method menu and its controls come from the registry: every method, and a slider for each option whose config
# field asks for one (`option(..., space={...})`)
METHOD_LABELS = {name: m.label for name, m in METHODS.items()}
SPACE_OPTIONS = {}
for _method in METHODS.values():
    for _opt in _method.config.options():
        if _opt.space is not None:
            SPACE_OPTIONS.setdefault(_opt.name, _opt)
NO_QUALITY = "(none)"

LIMITS_MD = f"""
**Limits of this Space (free CPU hardware).** Pools are capped at **{MAX_ROWS} rows** (the first rows of the source
are kept; a row limit lower than that is honoured). Embeddings: **all-MiniLM-L6-v2** (fixed here, fast on CPU).
ADG samples {ADG_NUM_SAMPLES} answers of up to {ADG_MAX_NEW_TOKENS} new tokens (the paper: 256) per row with
**{ADG_MODEL or "SmolLM2-135M-Instruct"}**, so it is limited to **{ADG_MAX_ROWS} rows** here. `tags` on a pool
without a `tags` column first tags every row with SmolLM2-135M-Instruct, so it is limited to **{TAGS_MAX_ROWS} rows**.
The diversity report samples {SELF_BLEU_SAMPLES} texts per set for Self-BLEU and embeds responses only when asked.
For bigger pools or other models run the library or `hf-diverse select` on your own machine.
Downloads and pushes leave out heavy columns (embeddings, ADG answers).
"""


# --- helpers ------------------------------------------------------------------------------------------------------
def _message(exc: BaseException, secret: str | None = None) -> str:
    """One readable line for the page: the library's messages already name the bad value and the valid ones."""
    text = str(exc).strip() or type(exc).__name__
    if not isinstance(exc, HfDiverseError):
        text = f"{type(exc).__name__}: {text}"
    if secret:
        text = text.replace(secret, "***")
    text = text.splitlines()[0] if len(text) > 600 else text
    return text[:600]


def _fail(exc: BaseException, n_outputs: int, status_index: int, secret: str | None = None) -> tuple:
    """Outputs for a failed callback: every component unchanged except the status message."""
    msg = _message(exc, secret)
    logger.warning("Space callback failed: %s", msg)
    gr.Warning(msg)
    out = [gr.update() for _ in range(n_outputs)]
    out[status_index] = f"**Error:** {msg}"
    return tuple(out)


def parse_k(value) -> int | float:
    """The k box: a whole number is a count of rows, a number in (0, 1) a fraction of the pool."""
    if value is None or value == "":
        raise InvalidParameterError("Enter k: a number of rows (e.g. 100) or a fraction of the pool (e.g. 0.1).")
    value = float(value)
    if 0 < value < 1:
        return value
    if value != int(value) or value < 1:
        raise InvalidParameterError(
            f"k must be a whole number of rows (>= 1) or a fraction of the pool in (0, 1), got {value:g}."
        )
    return int(value)


def parse_text_columns(instruction: str | None, response: str | None):
    """`text_columns` for the library: `None` (detected format), a list, or `{"instruction", "response"}`."""
    instr = [c.strip() for c in (instruction or "").split(",") if c.strip()]
    resp = [c.strip() for c in (response or "").split(",") if c.strip()]
    if not instr and not resp:
        return None
    if instr and not resp:
        return instr
    if resp and not instr:
        raise InvalidParameterError("Name the instruction column(s) too when you name response column(s).")
    return {"instruction": instr, "response": resp}


def _describe_pool(pool, note: str = "") -> str:
    cols = ", ".join(f"`{c}`" for c in pool.column_names)
    try:
        fmt = f"detected format **`{detect_format(pool.column_names)}`**"
    except HfDiverseError:
        fmt = "**no known format detected**: name the text columns below"
    source = (get_provenance(pool) or {}).get("source") or {}
    where = source.get("id") or "uploaded data"
    return f"**Pool:** {len(pool)} rows from `{where}`, {fmt}.{note}\n\nColumns: {cols}"


def _numeric_columns(pool) -> list[str]:
    from datasets import Value

    return [
        name
        for name, feat in pool.features.items()
        if isinstance(feat, Value) and (feat.dtype.startswith(("int", "uint", "float")))
    ]


_OUTPUT_ROOT = Path(tempfile.gettempdir()) / "hf_diverse_space"
OUTPUT_MAX_AGE_S = 3600


def _new_output_dir() -> Path:
    """A fresh folder for one selection's files; folders older than an hour are removed (a long-running Space)."""
    _OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    for old in _OUTPUT_ROOT.iterdir():
        if time.time() - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=_OUTPUT_ROOT))


# --- callbacks ----------------------------------------------------------------------------------------------------
def load_source(kind: str, hub_id: str, split: str, limit, upload):
    """The Load button: read the pool with `load_pool`, capped at `MAX_ROWS`.

    Args:
        kind (`str`): one of `SOURCES`.
        hub_id (`str`), split (`str`): the Hub dataset and split (for `"Hub dataset"`).
        limit (`int`, *optional*): keep the first rows only; 0 or empty means up to `MAX_ROWS`.
        upload (`str`, *optional*): path of the uploaded file (for `"Upload a file"`).

    Returns:
        `(pool state, pool description, quality-column choices, status)`; on error every output but the status is
        left unchanged and the status holds the message.

    Example:
    ```py
    >>> state, description, _, status = load_source("Embedded sample", "", "train", 0, None)
    ```
    """
    try:
        limit = int(limit) if limit not in (None, "", 0) else None
        cap = min(limit, MAX_ROWS) if limit else MAX_ROWS
        if kind == "Hub dataset":
            if not (hub_id or "").strip():
                raise InvalidParameterError("Enter a Hub dataset id, e.g. `tatsu-lab/alpaca`.")
            pool = load_pool(hub_id.strip(), split=(split or "train").strip(), limit=cap)
        elif kind == "Upload a file":
            if not upload:
                raise InvalidParameterError("Upload a .json, .jsonl, .parquet or .csv file first.")
            pool = load_pool(str(upload), limit=cap)
        elif kind == "Embedded sample":
            pool = load_pool(None, limit=cap)
        else:
            raise InvalidParameterError(f"Unknown source {kind!r}. Valid sources: {list(SOURCES)}.")
        note = f" Capped at {cap} rows." if len(pool) == cap and cap == MAX_ROWS else ""
        choices = [NO_QUALITY, *_numeric_columns(pool)]
        return (
            {"pool": pool, "cache": {}},
            _describe_pool(pool, note),
            gr.update(choices=choices, value=NO_QUALITY),
            f"Loaded {len(pool)} rows.",
        )
    except Exception as e:
        return _fail(e, 4, 3)


def _pool_with_embeddings(state: dict, text_columns, progress):
    """The pool with its `embedding` column, computed once per text-column choice with `EmbeddingScorer`."""
    pool = state["pool"]
    key = ("embedding", repr(text_columns))
    if key not in state["cache"]:
        TextView.for_columns(pool.column_names, text_columns=text_columns)  # unknown columns fail before the model
        if EMBEDDING_COLUMN in pool.column_names:
            pool = pool.remove_columns(EMBEDDING_COLUMN)
        progress(0.05, desc="Embedding the pool (all-MiniLM-L6-v2)")
        scorer = EmbeddingScorer(text_columns=text_columns)
        # through the shared store: rows embedded before (here, in Python or by the CLI) are not embedded again;
        # the provenance gets the model under `models.embedding`
        state["cache"][key] = score(pool, scorer, batch_size=256, show_progress=False)
    return state["cache"][key]


def _pool_with_adg_scores(state: dict, pool, text_columns, seed: int, progress):
    """The pool with the ADG columns from `AnswerDivergenceScorer` (the documented way to score once, then select),
    so the D-I quadrant can show the whole pool. The LM and its sampling settings go into the provenance."""
    from hf_diverse.scorers import AnswerDivergenceScorer

    key = ("adg", repr(text_columns), seed, ADG_MODEL, ADG_NUM_SAMPLES, ADG_MAX_NEW_TOKENS)
    if key not in state["cache"]:
        progress(0.1, desc=f"ADG: sampling {ADG_NUM_SAMPLES} answers per row")
        scorer = AnswerDivergenceScorer(
            model=ADG_MODEL,
            num_samples=ADG_NUM_SAMPLES,
            max_new_tokens=ADG_MAX_NEW_TOKENS,
            seed=seed,
            text_columns=text_columns,
        )
        # resumable and stored: a page reload or another visitor with the same rows finds the scores again
        state["cache"][key] = score(pool, scorer, batch_size=16, show_progress=False)
    return state["cache"][key]


def run_selection(
    state,
    method,
    k,
    seed,
    quality_column,
    instruction_columns,
    response_columns,
    embed_responses: bool = False,
    options: dict | None = None,
    progress=gr.Progress(track_tqdm=True),  # noqa: B008 - gradio's way of asking for progress
):
    """The Select button: `select_diverse` on the loaded pool, then the report, the plots and the downloads.

    Args:
        state (`dict`): from `load_source`.
        method (`str`): one of `METHODS`.
        k (`int` or `float`): rows, or a fraction of the pool in (0, 1).
        seed (`int`): the seed.
        quality_column (`str`): a numeric column, or `NO_QUALITY`.
        instruction_columns (`str`), response_columns (`str`): comma-separated text-column override (empty: the
            detected format).
        embed_responses (`bool`, defaults to `False`): let the report embed the responses too (slower).
        options (`dict`, *optional*): values of the `SPACE_OPTIONS` sliders; each is passed on when the method has
            that option (alpha only with a quality column).

    Returns:
        `(result state, rows table, map PNG, report table, quadrant update, download paths, status)`; on error
        every output but the status is left unchanged.

    Example:
    ```py
    >>> outputs = run_selection(state, "qdit", 20, 0, NO_QUALITY, "", "", options={"alpha": 0.7})
    ```
    """
    n_out, status = 7, 6
    try:
        if not state or state.get("pool") is None:
            raise InvalidParameterError("Load a source first (step 1: choose a source and click Load).")
        if method not in METHODS:
            raise InvalidParameterError(f"Unknown method {method!r}. Valid methods: {list(METHODS)}.")
        k = resolve_k(parse_k(k), len(state["pool"]))  # k too large fails here, before any model runs
        seed = int(seed or 0)
        text_columns = parse_text_columns(instruction_columns, response_columns)
        quality = None if quality_column in (None, "", NO_QUALITY) else quality_column
        n = len(state["pool"])
        if method == "adg" and n > ADG_MAX_ROWS:
            raise InvalidParameterError(
                f"ADG samples answers with a language model: this Space allows it on at most {ADG_MAX_ROWS} rows, "
                f"the pool has {n}. Reload with a row limit of {ADG_MAX_ROWS} or less."
            )
        needs_tagging = not {"tags", "tags_normalized"} & set(state["pool"].column_names)
        if method == "tags" and needs_tagging and n > TAGS_MAX_ROWS:
            raise InvalidParameterError(
                f"tags first tags every row with a language model: this Space allows that on at most {TAGS_MAX_ROWS} "
                f"rows, the pool has {n}. Reload with a row limit of {TAGS_MAX_ROWS} or less, or upload a pool with a "
                "`tags` column (`pool.map(TagScorer(), batched=True)`)."
            )
        kwargs = _method_kwargs(method, options or {}, quality)
        pool = _pool_with_embeddings(state, text_columns, progress)
        if method == "adg":
            pool = _pool_with_adg_scores(state, pool, text_columns, seed, progress)
            # recorded in the provenance as the settings the scores were computed with
            kwargs.update(model=ADG_MODEL, num_samples=ADG_NUM_SAMPLES, max_new_tokens=ADG_MAX_NEW_TOKENS)
        progress(0.3, desc=f"Selecting with {method}")
        subset = select_diverse(
            pool,
            k,
            method=method,
            quality_column=quality,
            text_columns=text_columns,
            seed=seed,
            embedding_column=EMBEDDING_COLUMN,
            **kwargs,
        )
        progress(0.6, desc="Diversity report")
        out_dir = _new_output_dir()
        report = _report(pool, subset, text_columns, seed, embed_responses)
        progress(0.8, desc="Plots and downloads")
        map_png = _projection_png(pool, subset, out_dir)
        quadrant = _quadrant_png(pool, subset, out_dir) if method == "adg" else None
        files = _downloads(subset, report, out_dir)
        result = {"subset": subset, "pool": pool, "report": report}
        record = get_provenance(subset) or {}
        cov = (record.get("objective") or {}).get("coverage")
        done = f"Selected **{len(subset)}** of {n} rows with `{method}` (seed {seed})"
        done += f", facility-location coverage {cov:.4f}." if isinstance(cov, float) else "."
        details = record.get("details") or {}
        if details.get("alpha_requested") is not None:
            alpha = details.get("alpha_effective")
            done += f"\n\n*No quality column: alpha ran as {alpha} (diversity only), not the slider's value.*"
        empty = ((record.get("inputs") or {}).get("texts") or {}).get("empty_rows")
        if empty:
            done += f"\n\n*{empty} rows with an empty text were left out of the candidates.*"
        if report is not None and report.notes:
            done += "\n\n" + "\n".join(f"*Report note: {note}*" for note in report.notes)
        return (
            result,
            _table(subset, text_columns),
            map_png,
            _report_table(report),
            gr.update(value=quadrant, visible=quadrant is not None),
            files,
            done,
        )
    except Exception as e:
        return _fail(e, n_out, status)


def push_to_hub(result, repo_id: str, token: str, private: bool):
    """The Push button: `push_curated` of the last subset, with its pool and report.

    The token is the visitor's (a machine token such as a Space's `HF_TOKEN` is never used), for this call only,
    never shown, stored or logged, and scrubbed from error messages.

    Args:
        result (`dict`): from `run_selection`.
        repo_id (`str`): the dataset repository, e.g. `"me/alpaca-qdit-3k"`.
        token (`str`): a Hub token with write access.
        private (`bool`): make the repository private.

    Returns:
        `str`: the commit URL, or the error message.

    Example:
    ```py
    >>> push_to_hub(result, "me/ifbench-qdit-20", "hf_...", True)
    ```
    """
    token = (token or "").strip() or None
    try:
        if not result or result.get("subset") is None:
            raise InvalidParameterError("Select a subset first, then push it.")
        if not (repo_id or "").strip():
            raise InvalidParameterError("Enter a dataset repository id, e.g. `your-name/alpaca-qdit-3k`.")
        # never fall back to a token of the machine (a Space's own HF_TOKEN secret): the visitor's token only
        if token is None:
            raise InvalidParameterError("Enter your Hugging Face token (write access) to push.")
        from hf_diverse.hub import check_push_target

        check_push_target(repo_id.strip(), token)  # a malformed id fails before the report and plots are built
        info = hf_diverse.push_curated(
            result["subset"],
            repo_id.strip(),
            pool=result["pool"],
            private=bool(private),
            token=token,
            report=result.get("report") or False,
        )
        return f"Pushed to {getattr(info, 'commit_url', None) or info}"
    except Exception as e:
        return _fail(e, 1, 0, secret=token)[0]


# --- thin wrappers over the report, plot and card APIs -----------------------------------------------------------
def _report(pool, subset, text_columns, seed, embed_responses):
    from hf_diverse.report import diversity_report

    # the instruction embeddings are the pool's column; response embeddings are computed only when asked
    return diversity_report(
        pool,
        subset,
        text_columns=text_columns,
        embedding_column=EMBEDDING_COLUMN,
        seed=seed,
        compute_embeddings=bool(embed_responses),
        self_bleu_samples=SELF_BLEU_SAMPLES,
        show_progress=False,
    )


def _report_table(report) -> pd.DataFrame:
    """One row per (text view, metric), one column per set (subset, pool, random)."""
    if report is None:
        return pd.DataFrame({"note": ["no diversity report"]})
    from hf_diverse.metrics import HIGHER_IS_MORE_DIVERSE, METRIC_LABELS

    direction = {True: "higher", False: "lower", None: ""}
    rows = []
    for component, by_label in report.metrics.items():
        for key, (name, short) in METRIC_LABELS.items():
            row = {
                "text": component,
                "metric": f"{name} [{short}]" if short else name,
                "more diverse": direction[HIGHER_IS_MORE_DIVERSE.get(key)],
            }
            for label in report.labels:
                value = by_label.get(label, {}).get(key)
                row[f"{label} ({report.sizes[label]})"] = None if value is None else round(value, 4)
            rows.append(row)
    return pd.DataFrame(rows)


def _projection_png(pool, subset, out_dir: Path):
    from hf_diverse.plots.projection import plot_projection

    title = f"{len(subset)} of {len(pool)} rows selected"
    return str(
        plot_projection(  # the subset's rows are pool rows: highlighted by their `source_index`
            pool,
            list(subset["source_index"]),
            embedding_column=EMBEDDING_COLUMN,
            path=out_dir / "projection.png",
            title=title,
        )
    )


def _quadrant_png(pool, subset, out_dir: Path):
    from hf_diverse.plots.adg import plot_divergence_quadrant

    return str(
        plot_divergence_quadrant(
            pool, subset, path=out_dir / "adg_quadrant.png", title=f"ADG: {len(subset)} of {len(pool)} rows selected"
        )
    )


def _downloads(subset, report, out_dir: Path) -> list[str]:
    """Subset as JSONL and Parquet plus its card, without the heavy columns (as `push_curated` publishes it)."""
    from hf_diverse.publish import heavy_columns

    light = subset.remove_columns(heavy_columns(subset, EMBEDDING_COLUMN))
    files = [out_dir / "subset.jsonl", out_dir / "subset.parquet"]
    light.to_json(str(files[0]), lines=True, force_ascii=False)
    light.to_parquet(str(files[1]))
    card = hf_diverse.render_card(
        light, report=report, dropped_columns=[c for c in subset.column_names if c not in light.column_names]
    )
    files.append(out_dir / "README.md")
    files[-1].write_text(str(card), encoding="utf-8")
    return [str(f) for f in files]


def _table(subset, text_columns) -> pd.DataFrame:
    view = TextView.for_columns(subset.column_names, text_columns=text_columns)
    batch = subset.to_dict()

    def short(texts):
        return [t if len(t) <= TABLE_TEXT_CHARS else t[: TABLE_TEXT_CHARS - 1] + "…" for t in texts]

    table = {
        "rank": batch["selection_rank"],
        "gain": [round(g, 6) for g in batch["selection_gain"]],
        "instruction": short(view.texts(batch, what="instruction")),
    }
    # a plain list of text columns (or the `text` format) has no separate response
    if isinstance(text_columns, dict) or (text_columns is None and view.format != "text"):
        table["response"] = short(view.texts(batch, what="response"))
    for col in _numeric_columns(subset):
        if col not in ("selection_rank", "selection_gain"):
            table[col] = batch[col]
    return pd.DataFrame(table)


def _method_kwargs(method: str, options: dict, quality) -> dict:
    """The slider values that apply to `method` (alpha only with a quality column: without one QDIT uses 0)."""
    names = {opt.name for opt in METHODS[method].config.options()}
    return {
        name: float(value)
        for name, value in options.items()
        if name in names and value is not None and not (name == "alpha" and quality is None)
    }


# --- the page -----------------------------------------------------------------------------------------------------
def _method_controls(method: str):
    """Show the sliders of the options `method` has, hide the others (one update per `SPACE_OPTIONS` entry)."""
    names = {opt.name for opt in METHODS[method].config.options()} if method in METHODS else set()
    return [gr.update(visible=name in names) for name in SPACE_OPTIONS]


def _option_slider(opt, visible: bool) -> gr.Slider:
    """A slider for a config option with `space=` settings; its label is the option's help text."""
    label = f"{opt.name}: {opt.help}"
    return gr.Slider(value=opt.default, label=label, visible=visible, elem_id=opt.name, **opt.space)


def _source_controls(kind: str):
    hub = kind == "Hub dataset"
    return gr.update(visible=hub), gr.update(visible=hub), gr.update(visible=kind == "Upload a file")


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="hf_diverse: diverse instruction-tuning subsets") as demo:
        gr.Markdown(
            "# hf_diverse: pick a diverse instruction-tuning subset\n"
            "Load a pool, pick a method and k, click **Select**: you get the selected rows, a map of the pool, a "
            "diversity report (subset vs pool vs a random subset of the same size), downloads and a dataset card."
        )
        gr.Markdown(LIMITS_MD, elem_id="limits")
        pool_state = gr.State(None)
        result_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                gr.Markdown("### 1. Source")
                source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Source", elem_id="source")
                with gr.Row():
                    hub_id = gr.Textbox(
                        label="Hub dataset id", placeholder="tatsu-lab/alpaca", visible=False, elem_id="hub-id"
                    )
                    split = gr.Textbox(value="train", label="Split", visible=False, elem_id="split")
                upload = gr.File(
                    label="JSON / JSONL / Parquet / CSV",
                    visible=False,
                    elem_id="upload",
                    file_types=[".json", ".jsonl", ".parquet", ".csv"],
                )
                limit = gr.Number(
                    value=0,
                    label=f"Row limit (0 = up to the cap of {MAX_ROWS} rows)",
                    precision=0,
                    minimum=0,
                    elem_id="limit",
                )
                load_btn = gr.Button("Load", elem_id="load")
                pool_md = gr.Markdown("No pool loaded yet.", elem_id="pool-info")
                with gr.Accordion("Text columns (override the detected format)", open=False):
                    instr_cols = gr.Textbox(label="Instruction column(s), comma-separated", elem_id="instr-cols")
                    resp_cols = gr.Textbox(label="Response column(s), comma-separated", elem_id="resp-cols")
                gr.Markdown("### 2. Method")
                method = gr.Dropdown(
                    [(METHOD_LABELS[m], m) for m in METHODS],
                    value=next(iter(METHODS)),
                    label="Method",
                    elem_id="method",
                )
                default_options = {opt.name for opt in METHODS[next(iter(METHODS))].config.options()}
                sliders = {
                    name: _option_slider(opt, visible=name in default_options) for name, opt in SPACE_OPTIONS.items()
                }
                quality_column = gr.Dropdown(
                    [NO_QUALITY], value=NO_QUALITY, label="Quality column (numeric)", elem_id="quality"
                )
                with gr.Row():
                    k = gr.Number(value=100, label="k (rows, or a fraction in (0, 1))", elem_id="k")
                    seed = gr.Number(value=0, label="Seed", precision=0, elem_id="seed")
                embed_responses = gr.Checkbox(
                    value=False, label="Report: also embed the responses (slower)", elem_id="embed-responses"
                )
                select_btn = gr.Button("Select", variant="primary", elem_id="select")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status")
                table = gr.Dataframe(label="Selected rows (pick order)", wrap=True, max_height=420, elem_id="table")
                with gr.Row():
                    pool_map = gr.Image(
                        label="The pool in 2-D, selected rows highlighted",
                        type="filepath",
                        interactive=False,
                        elem_id="map",
                    )
                    quadrant = gr.Image(
                        label="ADG: divergence D vs isotropy I",
                        type="filepath",
                        interactive=False,
                        visible=False,
                        elem_id="quadrant",
                    )
                report = gr.Dataframe(label="Diversity report: subset vs pool vs random", wrap=True, elem_id="report")
                downloads = gr.File(
                    label="Downloads: subset (JSONL, Parquet) and dataset card",
                    file_count="multiple",
                    interactive=False,
                    elem_id="downloads",
                )
                with gr.Accordion("3. Push to the Hub", open=False):
                    repo_id = gr.Textbox(
                        label="Dataset repository id", placeholder="your-name/my-subset", elem_id="repo-id"
                    )
                    token = gr.Textbox(
                        label="Hugging Face token (write access; used for this push only, not stored)",
                        type="password",
                        elem_id="token",
                    )
                    private = gr.Checkbox(value=True, label="Private repository", elem_id="private")
                    push_btn = gr.Button("Push", elem_id="push")
                    push_md = gr.Markdown("", elem_id="push-status")

        source.change(_source_controls, source, [hub_id, split, upload])
        method.change(_method_controls, method, list(sliders.values()))
        load_btn.click(
            load_source, [source, hub_id, split, limit, upload], [pool_state, pool_md, quality_column, status]
        )
        fixed = [pool_state, method, k, seed, quality_column, instr_cols, resp_cols, embed_responses]

        def on_select(values: dict, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - gradio's progress
            # gradio passes a set of inputs as one dict {component: value}
            options = {name: values[slider] for name, slider in sliders.items()}
            return run_selection(*(values[c] for c in fixed), options=options, progress=progress)

        select_btn.click(
            on_select,
            {*fixed, *sliders.values()},
            [result_state, table, pool_map, report, quadrant, downloads, status],
        )
        push_btn.click(push_to_hub, [result_state, repo_id, token, private], push_md)
    return demo


demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
