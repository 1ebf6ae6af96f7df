"""Writing results atomically: everything goes to a temporary folder (or file) beside the target, renamed at the end,
so a failure leaves nothing at the output path and a reader never sees a half-written file. Folders and files get the
permissions the umask gives (a shared machine's teammates can read an output when the umask lets them), although the
temporary folder or file starts private."""

import json
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

from datasets import Dataset, DatasetDict

from .errors import InvalidParameterError
from .provenance import get_provenance


@contextmanager
def atomic_directory(output: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder that replaces `output` only if the block succeeds.

    Example:
    ```py
    >>> ds = Dataset.from_dict({"prompt": ["Name a prime number."], "response": ["7"]})
    >>> with atomic_directory("curated/") as tmp:
    ...     ds.save_to_disk(tmp)
    >>> sorted(path.name for path in Path("curated").iterdir())
    ['data-00000-of-00001.arrow', 'dataset_info.json', 'state.json']
    >>> with atomic_directory("curated/") as tmp:  # the output exists
    ...     ds.save_to_disk(tmp)
    Traceback (most recent call last):
    ...
    hf_diverse.errors.InvalidParameterError: Output curated already exists. Pass overwrite=True (CLI: --overwrite).
    ```
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise InvalidParameterError(f"Output {output} already exists. Pass overwrite=True (CLI: --overwrite).")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        # mkdtemp makes the folder 0700 whatever the umask; the output gets the mode a plain mkdir would give it
        os.chmod(tmp, 0o777 & ~current_umask())
        yield tmp
        if output.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
            os.replace(output, backup / "old")
            os.replace(tmp, output)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


TMP_MARKER = ".tmp-"


@contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temporary path beside `path` to write to; it becomes `path` (one `os.replace`) only if the block
    succeeds, so `path` is either absent or complete, even when the process is killed mid-write.

    The temporary name starts with a dot and holds `.tmp-<host>-<pid>-`, so a crashed writer's leftovers are known
    by name (`stale_temporary_files`) and never mistaken for a finished file. An existing `path` is replaced.

    Example:
    ```py
    >>> with atomic_file("scores.json") as tmp:
    ...     _ = tmp.write_text("[1, 2]")
    >>> Path("scores.json").read_text()
    '[1, 2]'
    ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.name}{TMP_MARKER}{socket.gethostname()}-{os.getpid()}-", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp made it private
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def stale_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """The temporary files `atomic_file` left in `folder` when its writer died: those of this host whose process no
    longer runs (a live writer's, or another host's, are left alone)."""
    host, out = socket.gethostname(), []
    for path in Path(folder).glob(f".*{TMP_MARKER}*"):
        owner = path.name.split(TMP_MARKER, 1)[1]
        owner_host, _, rest = owner.rpartition("-")[0].rpartition("-")
        pid = rest
        if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            out.append(path)
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_subset(subset: Dataset | DatasetDict, folder: str | os.PathLike) -> None:
    """`save_to_disk` into `folder` plus a readable `provenance.json` (use inside `atomic_directory`); for a
    `DatasetDict` of subsets, `provenance.json` maps each split to its record."""
    subset.save_to_disk(str(folder))
    if isinstance(subset, DatasetDict):
        record = {name: get_provenance(part) for name, part in subset.items()}
        record = {name: rec for name, rec in record.items() if rec is not None} or None
    else:
        record = get_provenance(subset)
    if record is not None:
        (Path(folder) / "provenance.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def save_subset(subset: Dataset | DatasetDict, output: str | os.PathLike, overwrite: bool = False) -> Path:
    """`write_subset` to `output`, atomically: on any error nothing is left there."""
    with atomic_directory(output, overwrite=overwrite) as tmp:
        write_subset(subset, tmp)
    return Path(output)
