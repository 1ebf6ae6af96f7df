import json
import subprocess
import sys

import pytest
from datasets import load_from_disk

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


def test_select_end_to_end_on_embedded_default(tmp_path, capsys):
    output = tmp_path / "curated"
    assert main(["select", "--k", "12", "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Selected 12 of 294 rows" in printed and str(output) in printed
    subset = load_from_disk(str(output))
    assert len(subset) == 12 and subset["selection_rank"] == list(range(12))
    record = json.loads((output / "provenance.json").read_text())
    assert record["method"] == "qdit" and record["source"]["kind"] == "embedded"
    assert [p.name for p in tmp_path.iterdir()] == ["curated"]  # no temporary folders left behind


def test_config_file_and_flag_override(tmp_path, capsys):
    config = tmp_path / "select.yaml"
    config.write_text("method: random\nk: 7\nseed: 3\n")
    output = tmp_path / "out"
    assert main(["select", "--config", str(config), "--k", "5", "--output", str(output), "--no-progress"]) == 0
    record = json.loads((output / "provenance.json").read_text())
    assert record["method"] == "random" and record["k"] == 5 and record["seed"] == 3
    config.write_text("method: random\nbogus_key: 1\n")
    assert main(["select", "--config", str(config), "--output", str(tmp_path / "x")]) == 1
    assert "bogus_key" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "5000"], "k must be in [1, 294]"),
        (["--k", "5", "--alpha", "2"], "alpha must be in [0, 1]"),
        (["--k", "5", "--quality-column", "missing"], "Quality column 'missing' not in the dataset"),
        (["--k", "5", "--text-columns", "nope"], "Text column(s) ['nope'] not in the dataset"),
        (["--k", "5", "--dataset", "does/not-exist.jsonl"], "does not exist"),
    ],
)
def test_select_errors_leave_nothing(tmp_path, capsys, args, message):
    output = tmp_path / "out"
    assert main(["select", *args, "--output", str(output), "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    assert main(["select", "--k", "3", "--method", "random", "--output", str(output)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (output / "keep.txt").read_text() == "mine"


def test_env(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "- torch:" in out and "- datasets:" in out and "cuda available" in out
