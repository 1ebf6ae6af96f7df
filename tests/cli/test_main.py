"""`hf_diverse.cli`: the entry point, every subcommand's help and `--version`."""

import subprocess
import sys

import pytest

from hf_diverse.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_of_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"hf-diverse {command}" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "hf_diverse.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "select" in out.stdout


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("hf-diverse 0.")
