"""The report tests' pool (toy embedding columns), subset and report, in place of `tests/conftest.py`'s pool."""

from tests.report.common import pool, report, subset  # noqa: F401
