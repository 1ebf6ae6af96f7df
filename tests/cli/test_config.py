"""`hf_diverse.cli.config`: a YAML config file, overridden by flags."""

import json

from hf_diverse.cli import main


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
