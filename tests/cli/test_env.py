"""`hf-diverse env` (`hf_diverse.cli.env`)."""

from hf_diverse.cli import main


def test_env(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "- torch:" in out and "- datasets:" in out and "cuda available" in out
