"""Publishing a curated subset to the Hugging Face Hub: data, card and plots in one commit.

`push_curated` checks its arguments and finds the token, has `hf_diverse.publish.build_repo_folder` write everything
locally (Parquet shards under `data/`, the card `README.md`, the plots under `images/`, `provenance.json`), then
creates the repo if needed and sends all files in a single `HfApi.create_commit` on top of the head it read. A reader
therefore never sees data without its card or a card describing other data, and a failure at any step leaves the repo
as it was. The layout is the one `Dataset.push_to_hub` writes (`data/{split}-00000-of-00001.parquet` plus `configs` /
`dataset_info` in the README YAML), so `load_dataset(repo_id)` reads it back.

The token is resolved the usual `huggingface_hub` way (the `token=` argument, else `HF_TOKEN`, else the token saved
by `hf auth login`). It is only ever handed to `HfApi`: it is never logged, printed or written into a file.
"""

import contextlib
import os
import re
import tempfile
from pathlib import Path

from datasets import Dataset
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from . import __version__
from .errors import HubError, InvalidParameterError
from .provenance import get_provenance
from .publish import DATA_DIR, IMAGES_DIR, build_repo_folder, check_split, check_subset
from .utils.logging import get_logger

__all__ = ["check_push_target", "push_curated"]

logger = get_logger(__name__)


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
    comparison=None,
):
    """Publish a curated subset to the Hub as a dataset repo: Parquet data, lineage card and plots in one commit.

    Args:
        subset (`datasets.Dataset`): the subset, usually from `select_diverse` (its provenance fills the card).
        repo_id (`str`): `"user/name"` or `"org/name"` (a bare `"name"` goes to your namespace).
        pool (`datasets.Dataset`, *optional*): the pool the subset was selected from. With it the card gets the
            diversity report (subset vs pool vs random) and a 2-D projection of the pool with the selected rows
            highlighted. The pool's embedding column is used when present; otherwise embeddings are computed with
            the model the selection recorded (pass a pool that has the column to skip that).
        private (`bool`, *optional*): make the repo private (`True`) or public (`False`). `None` creates new repos
            with the Hub's default visibility and leaves an existing repo's visibility as it is. A repo going private
            is switched before the commit; a repo going public after it, so the data is never public by mistake.
        token (`str`, *optional*): a Hub token with write access. Defaults to `HF_TOKEN`, else the token saved by
            `hf auth login`. Never logged or written anywhere.
        keep_heavy_columns (`bool`, defaults to `False`): keep the embedding column, `adg_answers` and other
            list-of-floats columns (see `hf_diverse.publish.heavy_columns`) instead of dropping them.
        report (*optional*): a precomputed diversity report (`DiversityReport` or its `to_dict()`) to put in the
            card; `None` computes one when `pool` is given; `False` leaves it out.
        report_options (`dict`, *optional*): keyword arguments for `diversity_report` when it is computed here,
            e.g. `{"self_bleu_samples": 20}` (Self-BLEU dominates its cost on long responses).
        plots (`bool`, defaults to `True`): add the plots (projection, D-I quadrant for ADG, report plots).
        commit_message (`str`, *optional*): defaults to `"Upload <k>-row <method> subset (hf_diverse)"`.
        commit_description (`str`, *optional*): longer commit description.
        split (`str`, defaults to `"train"`): split name of the data files.
        max_shard_size (`int` or `str`, defaults to `"500MB"`): largest Parquet shard (in-memory Arrow size).
        comparison (*optional*): a `ComparisonResult` of `compare_methods` (or its Markdown): the card gets a section
            comparing the methods on held-out data.

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
    >>> subset = select_diverse(pool, k=3000, method="qdit")  # doctest: +SKIP
    >>> push_curated(subset, "me/alpaca-qdit-3k", pool=pool)  # data + card + plots in one commit  # doctest: +SKIP
    >>> push_curated(subset, "me/alpaca-qdit-3k", private=True)  # a private repo  # doctest: +SKIP
    ```
    """
    _check_arguments(subset, repo_id, split, pool)
    if private is not None and not isinstance(private, bool):
        raise InvalidParameterError(f"`private` must be True, False or None, got {private!r}.")
    token = _resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="hf_diverse_push_") as tmp:
        # everything is built locally before the first network call: a failure there pushes nothing
        built = build_repo_folder(
            subset,
            Path(tmp) / "repo",
            pool=pool,
            repo_id=repo_id,
            split=split,
            keep_heavy_columns=keep_heavy_columns,
            report=report,
            report_options=report_options,
            plots=plots,
            max_shard_size=max_shard_size,
            comparison=comparison,
        )
        message = commit_message or _default_message(get_provenance(subset), built.num_rows)
        return _commit(repo_id, token, private, built.local_files(), split, message, commit_description)


def check_push_target(repo_id: str, token: str | None = None) -> None:
    """Fail early (before any expensive work) when `repo_id` is malformed or no Hub token can be found.

    Args:
        repo_id (`str`): `"user/name"` or `"org/name"`.
        token (`str`, *optional*): a Hub token; defaults to `HF_TOKEN`, else the token saved by `hf auth login`.

    Example:
    ```py
    >>> check_push_target("me/alpaca-qdit-3k")  # logged in: returns None  # doctest: +SKIP
    >>> check_push_target("me/alpaca/qdit-3k")  # checked before the token
    Traceback (most recent call last):
    ...
    hf_diverse.errors.InvalidParameterError: repo_id must look like 'user/name' or 'org/name', got 'me/alpaca/qdit-3k'.
    >>> check_push_target("me/alpaca-qdit-3k")  # not logged in
    Traceback (most recent call last):
    ...
    hf_diverse.errors.HubError: No Hugging Face token found: log in with `hf auth login`, ...
    ```
    """
    _check_repo_id(repo_id)
    _resolve_token(token)


def _check_arguments(subset, repo_id, split, pool):
    check_subset(subset, pool)
    _check_repo_id(repo_id)
    check_split(split)


def _check_repo_id(repo_id):
    if not isinstance(repo_id, str) or repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise InvalidParameterError(f"repo_id must look like 'user/name' or 'org/name', got {repo_id!r}.")
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
    found = get_token()
    if not found:
        raise HubError(
            "No Hugging Face token found: log in with `hf auth login`, set the HF_TOKEN environment variable, or pass "
            "token=... (a token with write access, https://huggingface.co/settings/tokens). Nothing was pushed."
        )
    return found


def _default_message(record, k) -> str:
    method = (record or {}).get("method")
    return f"Upload {k}-row {method} subset (hf_diverse)" if method else f"Upload {k}-row subset (hf_diverse)"


def _commit(repo_id, token, private, files, split, message, description):
    """Create the repo if needed, then add `files` (`(path in repo, local path)`) and delete this split's stale shards
    and plots in one commit on top of the head just read."""
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
        if re.match(rf"^{DATA_DIR}/{re.escape(split)}-\d{{5}}-of-\d{{5}}\.parquet$", p)
        or p.startswith(IMAGES_DIR + "/")
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
    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
