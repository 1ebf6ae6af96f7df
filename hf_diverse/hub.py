"""Publishing a curated subset to the Hugging Face Hub: data, card and plots in one commit.

`push_curated` writes everything locally first (Parquet shards under `data/`, the card `README.md`, the plots under
`images/`, `provenance.json`), then creates the repo if needed and sends all files in a single
`HfApi.create_commit`. A reader therefore never sees data without its card or a card describing other data, and a
failure at any step leaves the repo as it was. The layout is the one `Dataset.push_to_hub` writes
(`data/{split}-00000-of-00001.parquet` plus `configs` / `dataset_info` in the README YAML), so
`load_dataset(repo_id)` reads it back.

The token is resolved the usual `huggingface_hub` way (the `token=` argument, else `HF_TOKEN`, else the token saved
by `hf auth login`). It is only ever handed to `HfApi`: it is never logged, printed or written into a file.
"""

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from datasets import Dataset, DatasetDict

from .card import redact_home
from .errors import HfDiverseError, HubError, InvalidParameterError
from .provenance import get_provenance
from .utils.logging import get_logger

logger = get_logger(__name__)

# columns dropped by default: embeddings and sampled answers are large and can be recomputed
HEAVY_COLUMNS = ("adg_answers",)
IMAGES_DIR = "images"
_SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")


def heavy_columns(dataset: Dataset, embedding_column: str | None = None) -> list[str]:
    """Columns `push_curated` drops by default: the embedding column, `adg_answers`, and any list-of-floats column.

    Example:
    ```py
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
    from datasets import Array2D, Array3D, Array4D, Array5D, LargeList, List, Value

    if isinstance(feature, (Array2D, Array3D, Array4D, Array5D)):
        return str(feature.dtype).startswith("float")
    if isinstance(feature, (List, LargeList)):
        inner = feature.feature
        while isinstance(inner, (List, LargeList)):
            inner = inner.feature
        return isinstance(inner, Value) and inner.dtype in ("float16", "float32", "float64", "bfloat16")
    return False


def push_curated(
    subset: Dataset,
    repo_id: str,
    *,
    pool: Dataset | None = None,
    private: bool | None = None,
    token: str | None = None,
    keep_heavy_columns: bool = False,
    report=None,
    report_options: dict | None = None,
    plots: bool = True,
    commit_message: str | None = None,
    commit_description: str | None = None,
    split: str = "train",
    max_shard_size: int | str = "500MB",
):
    """Publish a curated subset to the Hub as a dataset repo: Parquet data, lineage card and plots in one commit.

    Args:
        subset (`datasets.Dataset`): the subset, usually from `select_diverse` (its provenance fills the card).
        repo_id (`str`): `"user/name"` or `"org/name"` (a bare `"name"` goes to your namespace).
        pool (`datasets.Dataset`, *optional*): the pool the subset was selected from. With it the card gets the
            diversity report (subset vs pool vs random, when `hf_diverse.report` is available) and a 2-D projection
            of the pool with the selected rows highlighted. The pool's embedding column is used when present;
            otherwise embeddings are computed with the model the selection recorded (pass a pool that has the
            column to skip that).
        private (`bool`, *optional*): make the repo private (`True`) or public (`False`). `None` creates new repos
            with the Hub's default visibility and leaves an existing repo's visibility as it is. A repo going private
            is switched before the commit; a repo going public after it, so the data is never public by mistake.
        token (`str`, *optional*): a Hub token with write access. Defaults to `HF_TOKEN`, else the token saved by
            `hf auth login`. Never logged or written anywhere.
        keep_heavy_columns (`bool`, defaults to `False`): keep the embedding column, `adg_answers` and other
            list-of-floats columns (see `heavy_columns`) instead of dropping them.
        report (*optional*): a precomputed diversity report (`DiversityReport` or its `to_dict()`) to put in the
            card; `None` computes one when `pool` is given; `False` leaves it out.
        report_options (`dict`, *optional*): keyword arguments for `diversity_report` when it is computed here,
            e.g. `{"self_bleu_samples": 20}` (Self-BLEU dominates its cost on long responses).
        plots (`bool`, defaults to `True`): add the plots (projection, D-I quadrant for ADG, report plots).
        commit_message (`str`, *optional*): defaults to `"Upload <k>-row <method> subset (hf_diverse)"`.
        commit_description (`str`, *optional*): longer commit description.
        split (`str`, defaults to `"train"`): split name of the data files.
        max_shard_size (`int` or `str`, defaults to `"500MB"`): largest Parquet shard (in-memory Arrow size).

    Returns:
        `huggingface_hub.CommitInfo` of the commit (`.commit_url`, `.oid`, `.repo_url`). Re-pushing the same subset
        makes no new commit and returns the current head.

    Raises:
        `HubError`: no token, no network, 401/403 (bad token, no write access, someone else's repo), server error;
            the message says what happened and what to do. Nothing is committed in that case.
        `InvalidParameterError`: a bad argument (checked before any network call).

    Example:
    ```py
    >>> from hf_diverse import push_curated, select_diverse
    >>> subset = select_diverse(pool, k=3000, method="qdit")
    >>> push_curated(subset, "me/alpaca-qdit-3k", pool=pool)          # data + card + plots in one commit
    >>> push_curated(subset, "me/alpaca-qdit-3k", private=True)       # a private repo
    ```
    """
    _check_arguments(subset, repo_id, split, pool)
    if private is not None and not isinstance(private, bool):
        raise InvalidParameterError(f"`private` must be True, False or None, got {private!r}.")
    record = get_provenance(subset) or {}
    if not record.get("method"):
        logger.warning(
            "The subset has no hf_diverse provenance (not made by select_diverse): the card cannot record its lineage."
        )
    token = _resolve_token(token)

    dropped = [] if keep_heavy_columns else heavy_columns(subset)
    published = subset.remove_columns(dropped) if dropped else subset
    if dropped:
        logger.info("Dropping heavy column(s) %s before upload (keep_heavy_columns=True keeps them).", dropped)

    with tempfile.TemporaryDirectory(prefix="hf_diverse_push_") as tmp:
        tmp = Path(tmp)
        # everything is built locally before the first network call: a failure here pushes nothing
        data_files = _write_parquet_shards(published, tmp / "data", split, max_shard_size)
        download_size = sum(path.stat().st_size for _, path in data_files)
        if pool is not None and (plots or report is None):
            # embedded once, shared by the projection plot and the report
            pool = _with_embeddings(pool, record) or pool
        if report is None and pool is not None:
            report = _compute_report(pool, subset, record, report_options)
        images = _make_plots(subset, pool, record, report, tmp / IMAGES_DIR) if plots else []
        card = _render(published, repo_id, report, images, split, dropped, download_size)
        (tmp / "README.md").write_text(str(card), encoding="utf-8")
        provenance = json.dumps(redact_home(record), indent=2, sort_keys=True, default=str)
        (tmp / "provenance.json").write_text(provenance + "\n")
        files = [("README.md", tmp / "README.md"), ("provenance.json", tmp / "provenance.json")] + data_files
        files += [(image["path"], tmp / image["path"]) for image in images]
        return _commit(
            repo_id,
            token,
            private,
            files,
            split,
            commit_message or _default_message(record, len(published)),
            commit_description,
        )


def check_push_target(repo_id: str, token: str | None = None) -> None:
    """Fail early (before any expensive work) when `repo_id` is malformed or no Hub token can be found.

    Example:
    ```py
    >>> check_push_target("me/alpaca-qdit-3k")     # raises HubError when not logged in
    ```
    """
    _check_repo_id(repo_id)
    _resolve_token(token)


def _check_arguments(subset, repo_id, split, pool):
    if isinstance(subset, DatasetDict):
        raise InvalidParameterError(f"Pass one split, e.g. `subset['train']`; got a DatasetDict with {list(subset)}.")
    if not isinstance(subset, Dataset):
        raise InvalidParameterError(f"`subset` must be a `datasets.Dataset`, got {type(subset).__name__}.")
    if len(subset) == 0:
        raise InvalidParameterError("The subset is empty: there is nothing to publish.")
    if pool is not None and not isinstance(pool, Dataset):
        raise InvalidParameterError(f"`pool` must be a `datasets.Dataset`, got {type(pool).__name__}.")
    _check_repo_id(repo_id)
    if not _SPLIT_RE.match(split):
        raise InvalidParameterError(f"Split name must match {_SPLIT_RE.pattern!r} (e.g. 'train'), got {split!r}.")


def _check_repo_id(repo_id):
    if not isinstance(repo_id, str) or repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise InvalidParameterError(f"repo_id must look like 'user/name' or 'org/name', got {repo_id!r}.")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise InvalidParameterError(f"Invalid repo_id {repo_id!r}: {e}") from None


def _resolve_token(token):
    if token is False:
        raise HubError("Publishing needs a Hub token, but token=False was passed.")
    if token is not None:
        if not isinstance(token, str) or not token.strip():
            raise InvalidParameterError("`token` must be a non-empty string (a Hub access token) or None.")
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError(
            "No Hugging Face token found: log in with `hf auth login`, set the HF_TOKEN environment variable, or pass "
            "token=... (a token with write access, https://huggingface.co/settings/tokens). Nothing was pushed."
        )
    return found


def _write_parquet_shards(dataset: Dataset, folder: Path, split: str, max_shard_size) -> list:
    from datasets.utils.py_utils import convert_file_size_to_int

    limit = convert_file_size_to_int(max_shard_size)
    if limit <= 0:
        raise InvalidParameterError(f"max_shard_size must be positive, got {max_shard_size!r}.")
    from .card import _nbytes

    num_shards = max(1, int(_nbytes(dataset) / limit) + 1)
    num_shards = min(num_shards, len(dataset))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(num_shards):
        shard = dataset.shard(num_shards=num_shards, index=index, contiguous=True) if num_shards > 1 else dataset
        name = f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        shard.to_parquet(str(folder / name))
        files.append((f"data/{name}", folder / name))
    return files


def _with_embeddings(ds: Dataset, record: dict) -> Dataset | None:
    """`ds` with the selection's embedding column: as it is, or computed with the model the selection recorded
    (configured as `select_diverse`'s own embedding step, so a file-backed pool hits the `datasets` cache). `None`
    when the selection used a precomputed column this dataset lacks: no model can reproduce it."""
    params = record.get("parameters") or {}
    column = params.get("embedding_column") or "embedding"
    if column in ds.column_names:
        return ds
    model = ((record.get("models") or {}).get("embedding") or {}).get("name")
    if model == "precomputed":
        return None
    from .models import DEFAULT_EMBEDDING_MODEL
    from .scorers.embedding import EmbeddingScorer

    scorer = EmbeddingScorer(
        model=None if model in (None, DEFAULT_EMBEDDING_MODEL) else model,
        what=params.get("what") or "instruction",
        text_columns=params.get("text_columns"),
        output_column=column,
        batch_size=64,
    )
    return ds.map(
        scorer, batched=True, batch_size=256, with_indices=True, features=scorer.features(ds), desc="Embedding"
    )


def _compute_report(pool, subset, record, options):
    try:
        from .report import diversity_report
    except ImportError:
        logger.info("hf_diverse.report.diversity_report is not available: the card has no diversity report.")
        return None
    params = record.get("parameters") or {}
    column = params.get("embedding_column") or "embedding"
    if column in subset.column_names and column not in pool.column_names:
        # the subset's vectors come from a model that cannot be re-run on the pool: let the report embed both sides
        subset = subset.remove_columns(column)
    kwargs = {"embedding_column": column, "text_columns": params.get("text_columns"), "seed": record.get("seed", 0)}
    kwargs.update(options or {})
    try:
        return diversity_report(pool, subset, **kwargs)
    except Exception as e:
        logger.warning(
            "The diversity report could not be computed (%s: %s): the card leaves it out.", type(e).__name__, e
        )
        return None


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
    if report is not None and hasattr(report, "plot"):
        images += _report_plots(report, folder)
    return images


def _as_report_object(report):
    """A `DiversityReport` for plotting: as given, or rebuilt from its `to_dict()` form; otherwise `None`."""
    if report is None or report is False or hasattr(report, "plot"):
        return report or None
    if isinstance(report, dict) and "metrics" in report and "rank_frequency" in report:
        try:
            from .report.diversity import DiversityReport
        except ImportError:
            return None
        return DiversityReport.from_dict(report)
    return None


def _projection_plot(subset, pool, record, folder: Path) -> dict | None:
    from .plots.projection import plot_projection

    column = (record.get("parameters") or {}).get("embedding_column") or "embedding"
    model = ((record.get("models") or {}).get("embedding") or {}).get("name") or "all-MiniLM-L6-v2"
    sub = subset if column in subset.column_names else _with_embeddings(subset, record)
    if pool is None or sub is None:
        logger.warning(
            "No projection plot: the selection used a precomputed embedding column %r that the pool or "
            "the subset lacks (pass them with that column).",
            column,
        )
        return None
    path = folder / "projection.png"
    try:
        plot_projection(
            pool,
            sub,
            embedding_column=column,
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
    try:
        from .plots.adg import plot_divergence_quadrant
    except ImportError:
        return None
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


def _render(published, repo_id, report, images, split, dropped, download_size):
    from .card import render_card

    return render_card(
        published,
        repo_id=repo_id,
        report=report,
        images=images,
        split=split,
        dropped_columns=dropped,
        download_size=download_size,
    )


def _default_message(record, k) -> str:
    method = (record or {}).get("method")
    return f"Upload {k}-row {method} subset (hf_diverse)" if method else f"Upload {k}-row subset (hf_diverse)"


def _commit(repo_id, token, private, files, split, message, description):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from . import __version__

    api = HfApi(token=token, library_name="hf_diverse", library_version=__version__)
    with _hub_errors("creating the repository", repo_id, api):
        repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    repo_id = repo_url.repo_id or repo_id
    with _hub_errors("reading the repository", repo_id, api):
        info = api.repo_info(repo_id, repo_type="dataset")
    existing = {s.rfilename for s in (info.siblings or [])}

    operations = [CommitOperationAdd(path_in_repo, str(path)) for path_in_repo, path in files]
    new_paths = {op.path_in_repo for op in operations}
    # a clean update: shards of this split and plots from an earlier push that this push does not rewrite
    stale = sorted(
        p
        for p in existing - new_paths
        if re.match(rf"^data/{re.escape(split)}-\d{{5}}-of-\d{{5}}\.parquet$", p) or p.startswith(IMAGES_DIR + "/")
    )
    operations += [CommitOperationDelete(p) for p in stale]

    if private is True and not info.private:
        _set_visibility(api, repo_id, True)  # before the data goes in: it is never public
    with _hub_errors("committing the files", repo_id, api):
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            commit_description=description,
            repo_type="dataset",
            parent_commit=info.sha,
        )
    if private is False and info.private:
        _set_visibility(api, repo_id, False)  # after the commit: a failed commit leaves the repo private
    if commit.oid == info.sha:
        logger.info("Nothing changed since the last push to %s: no new commit.", repo_id)
    else:
        logger.info("Pushed %d file(s) to %s in commit %s.", len(operations), commit.commit_url, commit.oid[:8])
    return commit


def _set_visibility(api, repo_id, private: bool):
    with _hub_errors("changing the repository visibility", repo_id, api):
        api.update_repo_settings(repo_id, repo_type="dataset", private=private)


@contextlib.contextmanager
def _hub_errors(action: str, repo_id: str, api):
    """Turn `huggingface_hub` / network errors into one `HubError` saying what happened and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise HubError(
            f"Cannot publish {repo_id}: HF_HUB_OFFLINE is set. Unset it (or set HF_HUB_OFFLINE=0) and retry. "
            "Nothing was committed."
        ) from None
    except HfHubHTTPError as e:
        status = e.response.status_code if getattr(e, "response", None) is not None else None
        raise HubError(_http_message(status, action, repo_id, e, api)) from None
    except ValueError as e:  # e.g. invalid README metadata reported by the Hub's validator
        raise HubError(
            f"The Hub rejected the upload while {action} ({repo_id}): {e}. Nothing was committed."
        ) from None
    except Exception as e:
        if _is_network_error(e):
            raise HubError(
                f"Could not reach the Hub ({_endpoint()}) while {action} ({repo_id}): {type(e).__name__}: {e}. Check "
                "your network connection (or HF_ENDPOINT) and retry. Nothing was committed."
            ) from None
        raise


def _http_message(status, action, repo_id, error, api) -> str:
    server = (getattr(error, "server_message", None) or "").strip().rstrip(".")
    said = f" The Hub said: {server}." if server else ""
    namespace = repo_id.split("/")[0] if "/" in repo_id else None
    if status == 401:
        return (
            f"Authentication failed (401 Unauthorized) while {action} ({repo_id}): the token is invalid or "
            f"expired.{said} Log in again with `hf auth login`, set HF_TOKEN, or pass token=... with a valid "
            "write token. Nothing was committed."
        )
    if status == 403:
        who = _whoami(api)
        owner = ""
        if who is not None and namespace is not None:
            names = [who.get("name")] + [o.get("name") for o in who.get("orgs") or []]
            if namespace not in names:
                owner = (
                    f" You are logged in as {who.get('name')!r}, who cannot write to the namespace "
                    f"{namespace!r} (yours: {[n for n in names if n]}): the repo belongs to someone else."
                )
        return (
            f"Permission denied (403 Forbidden) while {action} ({repo_id}).{said}{owner} Use a token with write "
            "access to this namespace (a fine-grained token needs write permission on it), or publish under "
            "your own namespace. Nothing was committed."
        )
    if status == 404:
        return (
            f"Repository {repo_id} not found (404) while {action}.{said} Check the repo id and that your token "
            "can see it. Nothing was committed."
        )
    if status in (409, 412):
        return (
            f"The repository {repo_id} changed while publishing ({status}, {action}).{said} Another commit landed "
            "in between; retry the push. Nothing was committed."
        )
    if status == 429:
        return (
            f"Rate limited by the Hub (429) while {action} ({repo_id}).{said} Wait a little and retry. Nothing "
            "was committed."
        )
    if status is not None and status >= 500:
        return (
            f"The Hub had a server error ({status}) while {action} ({repo_id}).{said} The files go in one commit, "
            "so nothing was committed; retry later."
        )
    return f"The Hub refused the request ({status}) while {action} ({repo_id}).{said} Nothing was committed."


def _whoami(api) -> dict | None:
    try:
        return api.whoami()
    except Exception:
        return None


def _is_network_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    module = type(error).__module__ or ""
    return module.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3") and any(
        word in type(error).__name__ for word in ("Connect", "Timeout", "Network", "Protocol", "Transport")
    )


def _endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
