"""`hf-diverse report` runs on the report tests' pool and subset, in place of `tests/conftest.py`'s pool."""

from tests.report.common import pool, subset  # noqa: F401
