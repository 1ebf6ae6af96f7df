"""`hf_diverse.io`: atomic folders and files (absent or whole, a dead writer's leftovers known by name) that honour
the umask."""

import os
import socket
import stat
import subprocess
import sys

import pytest
from datasets import Dataset

from hf_diverse.io import atomic_directory, atomic_file, save_subset, stale_temporary_files


def test_a_failed_write_leaves_nothing_and_a_good_one_replaces(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".x.bin.tmp-")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]


def test_only_temporary_files_of_dead_writers_on_this_host_are_stale(tmp_path):
    host = socket.gethostname()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".a.arrow.tmp-{host}-{int(dead_pid.stdout)}-q1"
    live = tmp_path / f".b.arrow.tmp-{host}-{os.getpid()}-q2"
    other_host = tmp_path / f".c.arrow.tmp-elsewhere-{int(dead_pid.stdout)}-q3"
    final = tmp_path / "d.arrow"
    for path in (dead, live, other_host, final):
        path.write_bytes(b"x")
    assert stale_temporary_files(tmp_path) == [dead]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_output_folders_and_files_honour_the_umask(tmp_path, umask_022):
    # the issue: `select --output` and `report --output-dir` folders were created 0700 whatever the umask
    ds = Dataset.from_dict({"prompt": ["a", "b"], "response": ["x", "y"]})
    out = save_subset(ds, tmp_path / "curated")
    assert _mode(out) == 0o755
    assert {_mode(p) for p in out.iterdir()} == {0o644}
    with atomic_directory(tmp_path / "nested" / "report") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.json").write_text("{}")
    assert _mode(tmp_path / "nested" / "report") == 0o755 and _mode(tmp_path / "nested") == 0o755
    os.umask(0o077)
    private = save_subset(ds, tmp_path / "private")
    assert _mode(private) == 0o700


def test_a_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_files_honour_the_umask(tmp_path, umask_022):
    with atomic_file(tmp_path / "a.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "a.json") == 0o644
