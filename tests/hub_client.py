"""Client side of the publishing tests, run in a subprocess by `tests/test_hub.py`.

`huggingface_hub` and `datasets` read `HF_ENDPOINT` and `HF_HUB_OFFLINE` when they are imported, and the test
process has imported them already in offline mode; a fresh interpreter started with the fake Hub's endpoint in its
environment is the reliable way to talk to it. This script runs every step (push, read back, re-push, update,
private, org, failures, CLI), records each step's outcome as JSON, and logs everything at DEBUG level to a file the
test then scans for the tokens.

Usage: `python tests/hub_client.py <config.json> <results.json>`
"""

import json
import logging
import os
import socket
import sys
import time
import traceback
import warnings

# the same guard as tests/conftest.py: this process must only ever talk to 127.0.0.1
_real_getaddrinfo, _real_connect = socket.getaddrinfo, socket.socket.connect


def _loopback(host) -> bool:
    host = host.decode() if isinstance(host, bytes) else str(host)
    return host.startswith(("127.", "::1", "localhost")) or host in ("", "0.0.0.0")


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host):
        raise AssertionError(f"hub client tried to resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self, address):
    if isinstance(address, tuple) and not _loopback(address[0]):
        raise AssertionError(f"hub client tried to connect to {address!r}")
    return _real_connect(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect

CONFIG = json.load(open(sys.argv[1]))
RESULTS: dict = {}
T0 = time.perf_counter()

_handler = logging.FileHandler(CONFIG["log_file"])
_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
for _name in ("", "huggingface_hub", "datasets", "hf_diverse", "httpx2", "httpx", "httpcore", "filelock"):
    logging.getLogger(_name).addHandler(_handler)
    logging.getLogger(_name).setLevel(logging.DEBUG)
logging.captureWarnings(True)
warnings.simplefilter("always")

import numpy as np  # noqa: E402
from datasets import load_dataset  # noqa: E402
from huggingface_hub import DatasetCard, HfApi, constants, hf_hub_download  # noqa: E402

from hf_diverse import VALID_METHODS, HfDiverseError, push_curated, select_diverse  # noqa: E402
from hf_diverse.cli import main as cli_main  # noqa: E402
from hf_diverse.data import load_embedded_default  # noqa: E402

API = HfApi()
RESULTS["_imports_s"] = round(time.perf_counter() - T0, 2)
REPORT = {
    "response": {
        "subset": {"entropy_bits": 9.5, "distinct_2": 0.61},
        "pool": {"entropy_bits": 9.1, "distinct_2": 0.55},
        "random": {"entropy_bits": 9.0, "distinct_2": 0.54},
    }
}


def step(name):
    def wrap(fn):
        start = time.perf_counter()
        try:
            out = fn() or {}
            RESULTS[name] = {"ok": True, "seconds": round(time.perf_counter() - start, 2), **out}
        except Exception as e:
            RESULTS[name] = {
                "ok": False,
                "error_type": type(e).__name__,
                "error": str(e),
                "is_hf_diverse_error": isinstance(e, HfDiverseError),
                "traceback": traceback.format_exc(),
            }
        return fn

    return wrap


def n_commits(repo_id):
    return len(API.list_repo_commits(repo_id, repo_type="dataset"))


def rows(ds):
    return [{k: (round(v, 12) if isinstance(v, float) else v) for k, v in row.items()} for row in ds]


# ---- the pool: the embedded IFBench sample with a seeded 16-d embedding column and a quality column ---------------
pool = load_embedded_default()
rng = np.random.default_rng(0)
emb = rng.normal(size=(len(pool), 16)).astype("float32")
emb /= np.linalg.norm(emb, axis=1, keepdims=True)
pool = pool.add_column("embedding", [list(map(float, v)) for v in emb])
pool = pool.add_column("score", rng.random(len(pool)).round(6).tolist())
subset = select_diverse(pool, k=24, method="qdit", quality_column="score", show_progress=False)
RESULTS["_setup_s"] = round(time.perf_counter() - T0, 2)
MAIN = "alice/ifbench-qdit"


@step("push")
def _():
    before = None
    commit = push_curated(subset, MAIN, pool=pool, report=REPORT)
    return {"oid": commit.oid, "url": commit.commit_url, "commits": n_commits(MAIN), "before": before}


@step("read_back")
def _():
    back = load_dataset(MAIN, split="train")
    expected = subset.remove_columns(["embedding"])
    return {
        "num_rows": len(back),
        "columns": back.column_names,
        "rows_equal": rows(back) == rows(expected),
        "features_equal": back.features == expected.features,
    }


@step("card")
def _():
    card = DatasetCard.load(MAIN, repo_type="dataset")
    return {"data": card.data.to_dict(), "text": card.text, "content": card.content}


@step("files")
def _():
    files = API.list_repo_files(MAIN, repo_type="dataset")
    images = {}
    for path in files:
        if path.endswith(".png"):
            local = hf_hub_download(MAIN, path, repo_type="dataset")
            with open(local, "rb") as f:
                head = f.read(8)
            images[path] = {"png": head == b"\x89PNG\r\n\x1a\n", "size": os.path.getsize(local)}
    provenance = json.load(open(hf_hub_download(MAIN, "provenance.json", repo_type="dataset")))
    return {
        "files": sorted(files),
        "images": images,
        "provenance_method": provenance.get("method"),
        "private": API.repo_info(MAIN, repo_type="dataset").private,
    }


@step("repush_same")
def _():
    before = n_commits(MAIN)
    commit = push_curated(subset, MAIN, pool=pool, report=REPORT)
    return {"before": before, "after": n_commits(MAIN), "oid": commit.oid}


@step("update")
def _():
    smaller = select_diverse(pool, k=12, method="random", seed=1, show_progress=False)
    before = n_commits(MAIN)
    push_curated(smaller, MAIN)  # no pool: no projection plot this time
    back = load_dataset(MAIN, split="train")
    card = DatasetCard.load(MAIN, repo_type="dataset")
    return {
        "before": before,
        "after": n_commits(MAIN),
        "num_rows": len(back),
        "files": sorted(API.list_repo_files(MAIN, repo_type="dataset")),
        "tags": card.data.tags,
        "rows_equal": rows(back)
        == rows(smaller.remove_columns(["embedding"]) if "embedding" in smaller.column_names else smaller),
    }


@step("keep_heavy")
def _():
    push_curated(subset, "alice/with-embeddings", keep_heavy_columns=True, plots=False, report=False)
    back = load_dataset("alice/with-embeddings", split="train")
    return {"columns": back.column_names, "dim": len(back[0]["embedding"])}


@step("private")
def _():
    commit = push_curated(subset, "alice/private-subset", private=True, report=False, plots=False)
    anonymous = HfApi(token=False)
    try:
        anonymous.dataset_info("alice/private-subset")
        visible_anonymously = True
    except Exception:
        visible_anonymously = False
    back = load_dataset("alice/private-subset", split="train")  # the owner can read it
    return {
        "private": API.repo_info("alice/private-subset", repo_type="dataset").private,
        "visible_anonymously": visible_anonymously,
        "num_rows": len(back),
        "oid": commit.oid,
    }


@step("org")
def _():
    commit = push_curated(subset, "alice-org/shared-subset", report=False, plots=False)
    return {"oid": commit.oid, "commits": n_commits("alice-org/shared-subset")}


@step("adg")
def _():
    if "adg" not in VALID_METHODS:
        return {"skipped": True}
    scored = pool.add_column("adg_divergence", rng.random(len(pool)).tolist())
    scored = scored.add_column("adg_isotropy", (0.75 * rng.random(len(pool))).tolist())
    adg_subset = select_diverse(scored, k=10, method="adg", n_bins=4, show_progress=False)  # precomputed D and I
    push_curated(adg_subset, "alice/adg-subset", pool=scored, report=False)
    card = DatasetCard.load("alice/adg-subset", repo_type="dataset")
    return {
        "files": sorted(API.list_repo_files("alice/adg-subset", repo_type="dataset")),
        "text": card.text,
        "tags": card.data.tags,
    }


@step("visibility_changes")
def _():
    # same subset: no new commit, but the requested visibility is applied to the existing repos
    before = n_commits("alice/private-subset")
    push_curated(subset, "alice/private-subset", private=False, report=False, plots=False)
    push_curated(subset, "alice-org/shared-subset", private=True, report=False, plots=False)
    return {
        "before": before,
        "after": n_commits("alice/private-subset"),
        "now_public": not API.repo_info("alice/private-subset", repo_type="dataset").private,
        "now_private": API.repo_info("alice-org/shared-subset", repo_type="dataset").private,
    }


def failure(name, fn):
    @step(name)
    def _():
        try:
            fn()
        except HfDiverseError as e:
            return {"raised": type(e).__name__, "message": str(e), "is_runtime_error": isinstance(e, RuntimeError)}
        return {"raised": None}


failure("bad_token", lambda: push_curated(subset, "alice/bad-token", token=CONFIG["bad_token"]))
failure("read_token", lambda: push_curated(subset, "alice/read-only", token=CONFIG["read_token"]))
failure("other_owner", lambda: push_curated(subset, "bob/existing"))
failure("server_500", lambda: push_curated(subset, "alice/flaky", pool=pool, report=REPORT))


@step("after_500")
def _():
    before = n_commits("alice/flaky")
    push_curated(subset, "alice/flaky", pool=pool, report=REPORT)  # the retry the error message suggests
    return {"before": before, "after": n_commits("alice/flaky")}


def _no_network():
    saved = constants.ENDPOINT
    constants.ENDPOINT = CONFIG["dead_endpoint"]
    try:
        push_curated(subset, "alice/unreachable", report=False, plots=False)
    finally:
        constants.ENDPOINT = saved


def _no_token():
    saved = os.environ.pop("HF_TOKEN")
    try:
        push_curated(subset, "alice/no-token", report=False, plots=False)
    finally:
        os.environ["HF_TOKEN"] = saved


def _offline():
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        push_curated(subset, "alice/offline", report=False, plots=False)
    finally:
        constants.HF_HUB_OFFLINE = saved


failure("no_network", _no_network)
failure("no_token", _no_token)
failure("offline", _offline)


# ---- command line ------------------------------------------------------------------------------------------------
work = CONFIG["work_dir"]
pool_file = os.path.join(work, "pool.parquet")
# both embedding columns precomputed, so the diversity report computed by `select --push-to` loads no model
response_emb = rng.normal(size=(len(pool), 16)).astype("float32")
pool.add_column("response_embedding", [list(map(float, v)) for v in response_emb]).to_parquet(pool_file)


@step("cli_select_push")
def _():
    out = os.path.join(work, "curated")
    # 24 rows keep the report's Self-BLEU cheap
    rc = cli_main(
        [
            "select",
            "--dataset",
            pool_file,
            "--limit",
            "24",
            "--k",
            "6",
            "--method",
            "qdit",
            "--quality-column",
            "score",
            "--output",
            out,
            "--no-progress",
            "--push-to",
            "alice/cli-select",
        ]
    )
    back = load_dataset("alice/cli-select", split="train")
    files = API.list_repo_files("alice/cli-select", repo_type="dataset")
    card = DatasetCard.load("alice/cli-select", repo_type="dataset")
    return {
        "rc": rc,
        "num_rows": len(back),
        "files": sorted(files),
        "commits": n_commits("alice/cli-select"),
        "columns": back.column_names,
        "text": card.text,
    }


@step("cli_push")
def _():
    rc = cli_main(["push", os.path.join(work, "curated"), "alice/cli-push", "--private", "--no-report"])
    card = DatasetCard.load("alice/cli-push", repo_type="dataset")
    return {
        "rc": rc,
        "private": API.repo_info("alice/cli-push", repo_type="dataset").private,
        "tags": card.data.tags,
        "num_rows": len(load_dataset("alice/cli-push", split="train")),
    }


@step("cli_push_error")
def _():
    rc = cli_main(["push", os.path.join(work, "curated"), "bob/existing"])
    return {"rc": rc}


json.dump(RESULTS, open(sys.argv[2], "w"), indent=1, default=str)
