"""`hf_diverse.io`: an atomic file is absent or whole; a dead writer's temporary file is recognised by its name."""

import os
import socket
import subprocess
import sys

import pytest

from hf_diverse.io import atomic_file, stale_temporary_files


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
