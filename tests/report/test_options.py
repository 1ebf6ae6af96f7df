"""`hf_diverse.report.options`: `ReportOptions` checks its values on creation."""

import pytest

from hf_diverse.errors import InvalidParameterError
from hf_diverse.report import ReportOptions


def test_report_options_are_checked_on_creation():
    options = ReportOptions(components=["response"], self_bleu_samples=0)
    assert options.components == ("response",)
    assert options.embedding_column_of("instruction") == "embedding"
    assert options.embedding_column_of("response") == "response_embedding"
    with pytest.raises(InvalidParameterError, match="Valid components"):
        ReportOptions(components=())
    with pytest.raises(InvalidParameterError, match="n_clusters"):
        ReportOptions(n_clusters=0)
