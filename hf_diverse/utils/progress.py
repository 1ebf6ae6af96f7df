"""Progress bars behind one global switch (as `datasets.utils.tqdm`)."""

import os

from tqdm.auto import tqdm as _tqdm

_enabled = os.environ.get("HF_DIVERSE_DISABLE_PROGRESS_BARS", "0") not in ("1", "true", "True")


def enable_progress_bars():
    global _enabled
    _enabled = True


def disable_progress_bars():
    global _enabled
    _enabled = False


def are_progress_bars_enabled() -> bool:
    return _enabled


def tqdm(*args, disable: bool | None = None, **kwargs):
    """`tqdm.auto.tqdm`, silenced when progress bars are globally disabled or `disable=True`."""
    return _tqdm(*args, disable=(not _enabled) or bool(disable), **kwargs)
