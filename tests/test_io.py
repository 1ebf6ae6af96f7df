"""`hf_diverse.io`: atomic writes whose folders and files honour the umask."""

import os
import stat

import pytest
from datasets import Dataset

from hf_diverse.io import atomic_directory, save_subset


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
