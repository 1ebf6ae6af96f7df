"""Library logger: level WARNING by default, `HF_DIVERSE_VERBOSITY=info|debug|...` overrides it."""

import logging
import os

_ROOT = "hf_diverse"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _configure_root():
    root = logging.getLogger(_ROOT)
    if getattr(root, "_hf_diverse_configured", False):
        return root
    env = os.environ.get("HF_DIVERSE_VERBOSITY", "warning").lower()
    root.setLevel(_LEVELS.get(env, logging.WARNING))
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[hf_diverse] %(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.propagate = True
    root._hf_diverse_configured = True
    return root


def get_logger(name: str) -> logging.Logger:
    """Return a child of the library logger (`hf_diverse.<name>`)."""
    _configure_root()
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


def set_verbosity(level: str | int):
    """Set the library's log level, e.g. `set_verbosity("info")`."""
    root = _configure_root()
    root.setLevel(_LEVELS[level.lower()] if isinstance(level, str) else level)
