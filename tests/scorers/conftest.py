"""Rows the quality and token scorers score (`tests/scorers/test_base.py` has rows of its own)."""

import pytest


@pytest.fixture(scope="module")
def rows(ifbench):
    return ifbench.select(range(8))
