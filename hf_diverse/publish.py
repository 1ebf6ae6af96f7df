"""The repository folder of a curated subset, built locally: nothing is sent anywhere.

`build_repo_folder` writes everything a Hub dataset repo of the subset holds: the Parquet shards under `data/` (the
layout `Dataset.push_to_hub` writes, `data/{split}-00000-of-00001.parquet`, so `load_dataset(repo_id)` reads it back),
the lineage card `README.md` (with `configs` / `dataset_info` in its YAML), the plots under `images/` and
`provenance.json`. Heavy columns (`heavy_columns`) are left out by default. It writes into a temporary folder that
becomes the target only once every file is written, so a failure leaves nothing half-built. `hf_diverse.hub` sends
the folder to the Hub in one commit.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Array2D, Array3D, Array4D, Array5D, Dataset, DatasetDict, LargeList, List, Value
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import DatasetCard

from .card import dataset_nbytes, redact_home, render_card
from .embeddings import compute_embeddings, read_embeddings_chunked
from .errors import HfDiverseError, InvalidParameterError
from .io import atomic_directory
from .models import DEFAULT_EMBEDDING_MODEL
from .plots.adg import plot_divergence_quadrant
from .plots.projection import plot_projection
from .provenance import get_provenance
from .report import DiversityReport, diversity_report
from .textviews import TextView
from .utils.logging import get_logger

logger = get_logger(__name__)

# columns dropped by default: embeddings and sampled answers are large and can be recomputed
HEAVY_COLUMNS = ("adg_answers",)
DATA_DIR = "data"
IMAGES_DIR = "images"
SPLIT_PATTERN = re.compile(r"^\w+(\.\w+)*$")


@dataclass
class PublishedFolder:
    """What `build_repo_folder` wrote: a folder laid out as the Hub dataset repo.

    Attributes:
        folder (`pathlib.Path`): the repository folder.
        files (`list[str]`): every file in it, as paths inside the repo: `README.md`, `provenance.json`, the Parquet
            shards, then the plots. The folder holds these files and nothing else.
        card (`huggingface_hub.DatasetCard`): the card written as `README.md`.
        split (`str`): split name of the data files.
        num_rows (`int`): rows of the published data.
        download_size (`int`): total bytes of the Parquet shards.
        dropped_columns (`list[str]`): heavy columns left out of the data.
        images (`list[dict]`): the plots, each `{"path", "title", "caption"}` (paths inside the repo).
        report: the diversity report in the card (`DiversityReport` or its `to_dict()`), or `None`.
    """

    folder: Path
    files: list[str]
    card: DatasetCard
    split: str
    num_rows: int
    download_size: int
    dropped_columns: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    report: object = None

    def local_files(self) -> list[tuple[str, Path]]:
        """`(path in repo, local path)` of every file, in `files` order."""
        return [(name, self.folder / name) for name in self.files]


def heavy_columns(dataset: Dataset, embedding_column: str | None = None) -> list[str]:
    """Columns left out of the published data by default: the embedding column, `adg_answers`, and any
    list-of-floats column.

    Args:
        dataset (`datasets.Dataset`): the subset.
        embedding_column (`str`, *optional*): defaults to the one its provenance records, else `"embedding"`.

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> subset = select_diverse(pool, k=10)  # carries the pool's `embedding` column
    >>> heavy_columns(subset)
    ['embedding']
    ```
    """
    record = get_provenance(dataset) or {}
    embedding_column = embedding_column or (record.get("parameters") or {}).get("embedding_column") or "embedding"
    return [
        name
        for name, feature in dataset.features.items()
        if name == embedding_column or name in HEAVY_COLUMNS or _is_float_list(feature)
    ]


def _is_float_list(feature) -> bool:
    if isinstance(feature, (Array2D, Array3D, Array4D, Array5D)):
        return str(feature.dtype).startswith("float")
    if isinstance(feature, (List, LargeList)):
        inner = feature.feature
        while isinstance(inner, (List, LargeList)):
            inner = inner.feature
        return isinstance(inner, Value) and inner.dtype in ("float16", "float32", "float64", "bfloat16")
    return False


def check_subset(subset, pool=None) -> None:
    """Raise `InvalidParameterError` unless `subset` is a non-empty `Dataset` and `pool` a `Dataset` or `None`."""
    if isinstance(subset, DatasetDict):
        raise InvalidParameterError(f"Pass one split, e.g. `subset['train']`; got a DatasetDict with {list(subset)}.")
    if not isinstance(subset, Dataset):
        raise InvalidParameterError(f"`subset` must be a `datasets.Dataset`, got {type(subset).__name__}.")
    if len(subset) == 0:
        raise InvalidParameterError("The subset is empty: there is nothing to publish.")
    if pool is not None and not isinstance(pool, Dataset):
        raise InvalidParameterError(f"`pool` must be a `datasets.Dataset`, got {type(pool).__name__}.")


def check_split(split) -> None:
    """Raise `InvalidParameterError` unless `split` is a valid split name for the data files."""
    if not SPLIT_PATTERN.match(split):
        raise InvalidParameterError(f"Split name must match {SPLIT_PATTERN.pattern!r} (e.g. 'train'), got {split!r}.")


def build_repo_folder(
    subset: Dataset,
    folder: str | os.PathLike,
    *,
    pool: Dataset | None = None,
    repo_id: str | None = None,
    split: str = "train",
    keep_heavy_columns: bool = False,
    report=None,
    report_options: dict | None = None,
    plots: bool = True,
    max_shard_size: int | str = "500MB",
    overwrite: bool = False,
    comparison=None,
) -> PublishedFolder:
    """Write the Hub dataset repo of a curated subset into a local folder: Parquet data, lineage card and plots.

    Nothing is uploaded: embeddings the plots or the report need and the pool lacks are computed with the model the
    selection recorded (the only download, when that model is not cached). Everything is written into a temporary
    folder that becomes `folder` only once complete, so a failure leaves nothing there.

    Args:
        subset (`datasets.Dataset`): the subset, usually from `select_diverse` (its provenance fills the card).
        folder (`str` or `os.PathLike`): where the repository folder goes.
        pool (`datasets.Dataset`, *optional*): the pool the subset was selected from: adds the diversity report and
            the 2-D projection of the pool with the selected rows (see `push_curated`).
        repo_id (`str`, *optional*): the Hub repo, used in the card's `load_dataset` snippet.
        split (`str`, defaults to `"train"`): split name of the data files.
        keep_heavy_columns (`bool`, defaults to `False`): keep the columns `heavy_columns` lists.
        report (*optional*): a precomputed diversity report (`DiversityReport` or its `to_dict()`); `None` computes
            one when `pool` is given; `False` leaves it out.
        report_options (`dict`, *optional*): keyword arguments for `diversity_report` when it is computed here.
        plots (`bool`, defaults to `True`): add the plots (projection, D-I quadrant for ADG, report plots).
        max_shard_size (`int` or `str`, defaults to `"500MB"`): largest Parquet shard (in-memory Arrow size).
        overwrite (`bool`, defaults to `False`): replace `folder` when it exists.
        comparison (*optional*): a `ComparisonResult` of `compare_methods` (or its Markdown) for the card.

    Returns:
        `PublishedFolder`: the folder, its files, the card and what was dropped.

    Example:
    ```py
    >>> from hf_diverse import select_diverse
    >>> from hf_diverse.publish import build_repo_folder
    >>> subset = select_diverse(pool, k=10)
    >>> built = build_repo_folder(subset, "pool-qdit-10/", pool=pool, repo_id="me/pool-qdit-10", report=False)
    >>> built.files  # with the report (`report=None`, the default) also its plots, images/report_*.png
    ['README.md', 'provenance.json', 'data/train-00000-of-00001.parquet', 'images/projection.png']
    ```
    """
    check_subset(subset, pool)
    check_split(split)
    record = _provenance(subset)
    data, dropped = _without_heavy_columns(subset, keep_heavy_columns)
    limit = _shard_limit(max_shard_size)

    with atomic_directory(folder, overwrite=overwrite) as tmp:
        data_files = _write_parquet_shards(data, tmp, split, limit)
        download_size = sum((tmp / name).stat().st_size for name in data_files)
        report, images = _report_and_plots(subset, pool, record, report, report_options, plots, tmp / IMAGES_DIR)
        card = render_card(
            data,
            repo_id=repo_id,
            report=report,
            images=images,
            split=split,
            dropped_columns=dropped,
            download_size=download_size,
            comparison=comparison,
        )
        (tmp / "README.md").write_text(str(card), encoding="utf-8")
        provenance = json.dumps(redact_home(record), indent=2, sort_keys=True, default=str)
        (tmp / "provenance.json").write_text(provenance + "\n")
        files = ["README.md", "provenance.json", *data_files, *(image["path"] for image in images)]
        _keep_only(tmp, files)
    return PublishedFolder(
        folder=Path(folder),
        files=files,
        card=card,
        split=split,
        num_rows=len(data),
        download_size=download_size,
        dropped_columns=dropped,
        images=images,
        report=report if report is not False else None,
    )


# ---- data ----------------------------------------------------------------------------------------------------------
def _provenance(subset: Dataset) -> dict:
    record = get_provenance(subset) or {}
    if not record.get("method"):
        logger.warning(
            "The subset has no hf_diverse provenance (not made by select_diverse): the card cannot record its lineage."
        )
    return record


def _without_heavy_columns(subset: Dataset, keep_heavy_columns: bool) -> tuple[Dataset, list[str]]:
    dropped = [] if keep_heavy_columns else heavy_columns(subset)
    if not dropped:
        return subset, dropped
    logger.info("Dropping heavy column(s) %s before upload (keep_heavy_columns=True keeps them).", dropped)
    return subset.remove_columns(dropped), dropped


def _shard_limit(max_shard_size) -> int:
    limit = convert_file_size_to_int(max_shard_size)
    if limit <= 0:
        raise InvalidParameterError(f"max_shard_size must be positive, got {max_shard_size!r}.")
    return limit


def _write_parquet_shards(dataset: Dataset, root: Path, split: str, limit: int) -> list[str]:
    """Write `data/{split}-XXXXX-of-YYYYY.parquet` under `root`; return their paths inside the repo."""
    num_shards = min(max(1, int(dataset_nbytes(dataset) / limit) + 1), len(dataset))
    (root / DATA_DIR).mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(num_shards):
        shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True) if num_shards > 1 else dataset
        name = f"{DATA_DIR}/{split}-{index:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(str(root / name))
        files.append(name)
    return files


def _keep_only(root: Path, files: list[str]) -> None:
    """Remove what the plot functions left besides `files` (scratch folders, a failed plot's partial PNG)."""
    images = root / IMAGES_DIR
    if not images.exists():
        return
    keep = {root / name for name in files}
    for path in sorted(images.rglob("*"), reverse=True):  # deepest first: a folder is emptied before it is reached
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif path not in keep:
            path.unlink()
    if not any(images.iterdir()):
        images.rmdir()


# ---- embeddings and report -----------------------------------------------------------------------------------------
def _embedding_column(record: dict) -> str:
    return (record.get("parameters") or {}).get("embedding_column") or "embedding"


def _with_embedding_column(ds: Dataset, record: dict) -> Dataset | None:
    """`ds` with the selection's embedding column: as it is, or computed with the model the selection recorded
    (`compute_embeddings`, configured as `select_diverse`'s own embedding step, so a file-backed pool hits the
    `datasets` cache). `None` when the selection used a precomputed column this dataset lacks: no model can
    reproduce it."""
    column = _embedding_column(record)
    if column in ds.column_names:
        return ds
    info = (record.get("models") or {}).get("embedding") or {}
    model = info.get("name")
    if info and (info.get("source") == "precomputed" or model in (None, "precomputed")):
        return None
    params = record.get("parameters") or {}
    embedded, _ = compute_embeddings(
        ds,
        column,
        model=None if model in (None, DEFAULT_EMBEDDING_MODEL) else model,
        text_columns=params.get("text_columns"),
        what=params.get("what") or "instruction",
        device=None,
        batch_size=64,
        num_proc=None,
        show_progress=True,
        turns=info.get("turns") or params.get("turns") or "first",
        max_seq_length=info.get("max_seq_length"),
        long_text=info.get("long_text") or "truncate",
    )
    return embedded


def _compute_report(pool, subset, record, options):
    params = record.get("parameters") or {}
    column = _embedding_column(record)
    if column in subset.column_names and column not in pool.column_names:
        # the subset's vectors come from a model that cannot be re-run on the pool: let the report embed both sides
        subset = subset.remove_columns(column)
    kwargs = {
        "embedding_column": column,
        "text_columns": params.get("text_columns"),
        "turns": params.get("turns") or "first",
        "seed": record.get("seed", 0),
    }
    kwargs.update(options or {})
    try:
        return diversity_report(pool, subset, **kwargs)
    except Exception as e:
        logger.warning(
            "The diversity report could not be computed (%s: %s): the card leaves it out.", type(e).__name__, e
        )
        return None


def _report_and_plots(subset, pool, record, report, report_options, plots: bool, folder: Path) -> tuple:
    """The report for the card (given, computed against `pool`, or `None`) and the plots written into `folder`."""
    if pool is not None and (plots or report is None):
        # embedded once, shared by the projection plot and the report
        pool = _with_embedding_column(pool, record) or pool
    if report is None and pool is not None:
        report = _compute_report(pool, subset, record, report_options)
    images = _make_plots(subset, pool, record, report, folder) if plots else []
    return report, images


# ---- plots ---------------------------------------------------------------------------------------------------------
def _make_plots(subset, pool, record, report, folder: Path) -> list:
    """Write the plots that apply and return `[{"path", "title", "caption"}]` (paths relative to the repo root)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    if pool is not None:
        image = _projection_plot(subset, pool, record, folder)
        if image:
            images.append(image)
    if record.get("method") == "adg":
        image = _adg_plot(subset, pool, record, folder)
        if image:
            images.append(image)
    report = _as_report_object(report)
    if report is not None:
        images += _report_plots(report, folder)
    return images


def _as_report_object(report):
    """A `DiversityReport` for plotting: as given, or rebuilt from its `to_dict()` form; otherwise `None`."""
    if report is None or report is False:
        return None
    if hasattr(report, "plot"):
        return report
    if isinstance(report, dict) and "metrics" in report and "rank_frequency" in report:
        return DiversityReport.from_dict(report)
    return None


def _pool_rows(subset, pool, record) -> list[int] | None:
    """The pool rows of the subset by its `source_index` when `pool` is the pool it was selected from (same size, and
    the texts of the rows it names are the subset's), else `None`."""
    if "source_index" not in subset.column_names or record.get("pool_size") != len(pool):
        return None
    rows = [int(i) for i in subset["source_index"]]
    if not rows or max(rows) >= len(pool) or min(rows) < 0:
        return None
    params = record.get("parameters") or {}
    try:
        view = TextView.for_columns(pool.column_names, text_columns=params.get("text_columns"))
        names = view.columns(pool.column_names)
        if not names or not set(names) <= set(subset.column_names):
            return None
        picked, own = pool.select(rows).select_columns(names)[:], subset.select_columns(names)[:]
    except HfDiverseError:
        return None
    return rows if all(picked[c] == own[c] for c in names) else None


def _projection_plot(subset, pool, record, folder: Path) -> dict | None:
    column = _embedding_column(record)
    model = ((record.get("models") or {}).get("embedding") or {}).get("name") or "all-MiniLM-L6-v2"
    rows = _pool_rows(subset, pool, record)  # linked by `source_index`: no subset embeddings needed
    selected = rows if rows is not None else _with_embedding_column(subset, record)
    if selected is None:
        logger.warning(
            "No projection plot: the selection used a precomputed embedding column %r that the pool or "
            "the subset lacks (pass them with that column).",
            column,
        )
        return None
    path = folder / "projection.png"
    try:
        plot_projection(
            read_embeddings_chunked(pool, column),
            selected if rows is not None else read_embeddings_chunked(selected, column),
            path=path,
            seed=record.get("seed", 0) or 0,
            title=f"{record.get('method', 'subset')}: {len(subset):,} of {len(pool):,} rows",
        )
    except HfDiverseError as e:
        logger.warning("No projection plot (%s).", e)
        return None
    return {
        "path": f"{IMAGES_DIR}/{path.name}",
        "title": "2-D projection of the pool",
        "caption": f"The pool in the first two principal components of its embeddings ({model}); the selected "
        "rows are highlighted. The PCA is fitted on the pool; selected rows are placed with the same "
        "projection.",
    }


def _adg_plot(subset, pool, record, folder: Path) -> dict | None:
    columns = {"adg_divergence", "adg_isotropy"}
    if not columns <= set(subset.column_names):
        logger.warning("No D-I quadrant plot: the subset has no adg_divergence / adg_isotropy columns.")
        return None
    path = folder / "adg_quadrant.png"
    with_pool = pool is not None and columns <= set(pool.column_names)
    try:
        if with_pool:
            plot_divergence_quadrant(pool, subset, path=path, seed=record.get("seed", 0) or 0)
        else:  # the scores were computed during the selection: only the selected rows have them
            plot_divergence_quadrant(subset, path=path, title="ADG quadrants of the selected rows")
    except (HfDiverseError, KeyError, TypeError, ValueError) as e:
        logger.warning("No D-I quadrant plot (%s).", e)
        return None
    caption = (
        "Each instruction by the divergence D and the isotropy I of its sampled answers, split at the pool "
        "medians; the selected rows are highlighted."
        if with_pool
        else "The selected rows by the divergence D and the isotropy I of their sampled answers (the pool passed "
        "had no ADG scores; pass a scored pool for the full quadrant view)."
    )
    return {"path": f"{IMAGES_DIR}/{path.name}", "title": "Answer divergence: D-I quadrants", "caption": caption}


def _report_plots(report, folder: Path) -> list:
    sub = folder / "report"
    sub.mkdir(exist_ok=True)
    try:
        written = report.plot(sub)
    except (HfDiverseError, OSError, ValueError) as e:
        logger.warning("No diversity report plots (%s).", e)
        return []
    paths = [Path(p) for p in written] if isinstance(written, (list, tuple)) else sorted(sub.glob("*.png"))
    images = []
    for path in paths:
        if path.suffix.lower() != ".png" or not path.exists():
            continue
        target = folder / f"report_{path.name}"
        path.replace(target)
        title = path.stem.replace("_", " ").replace("-", " ")
        images.append(
            {
                "path": f"{IMAGES_DIR}/{target.name}",
                "title": f"Diversity report: {title}",
                "caption": "Subset vs pool (vs random), from `hf_diverse.report.diversity_report`.",
            }
        )
    return images
