"""`hf-diverse push` (`hf_diverse.cli.push`) offline; the pushes themselves are in `tests/test_hub.py`."""

import pytest

from hf_diverse.cli import main as cli_main


def test_cli_push_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["push", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "hf-diverse push curated/ me/alpaca-qdit-3k --private" in out and "--keep-heavy-columns" in out
