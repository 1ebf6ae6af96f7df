"""`hf-diverse train` (`hf_diverse.cli.train`)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from hf_diverse import InvalidParameterError
from hf_diverse.cli import main, parse_args


def test_cli_train_tiny_model_with_yaml_passthrough(curated, tiny_llama_path, tmp_path, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text(
        "learning-rate: 1e-3\nwarmup_steps: 1\nlogging_steps: 1\nmax_length: 96\n"
        "per_device_train_batch_size: 2\nsave_strategy: 'no'\n"
    )
    out = tmp_path / "cli-run"
    rc = main(
        [
            "train",
            "--dataset",
            str(curated),
            "--model",
            tiny_llama_path,
            "--output-dir",
            str(out),
            "--config",
            str(config),
            "--max-steps",
            "2",
            "--logging-steps",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Trained 2 step(s)" in printed and str(out) in printed
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["logging_steps"] == 2  # the flag overrides the YAML
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert (args.learning_rate, args.warmup_steps, args.max_length) == (1e-3, 1, 96)  # YAML, incl. passthrough
    assert str(curated) in (out / "README.md").read_text()


def test_cli_train_errors(tmp_path, monkeypatch, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text("not_an_sft_field: 1\n")
    with pytest.raises(InvalidParameterError, match=r"not_an_sft_field.*SFTConfig"):
        parse_args(["train", "--config", str(config)])
    monkeypatch.chdir(tmp_path)  # no ./curated here
    assert main(["train", "--output-dir", str(tmp_path / "out")]) == 1
    assert "hf-diverse select --output curated/" in capsys.readouterr().err
    assert (
        main(
            ["train", "--dataset", str(tmp_path / "missing.jsonl"), "--output-dir", "o", "--instruction-columns", "q"]
        )
        == 1
    )
    assert "--response-columns" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_end_to_end_on_embedded_defaults(tmp_path, capsys, monkeypatch):
    """`hf-diverse select` then `hf-diverse train` with no model: the offline SmolLM2-135M-Instruct (slow on CPU)."""
    monkeypatch.chdir(tmp_path)
    assert main(["select", "--k", "8", "--method", "random", "--output", "curated", "--no-progress"]) == 0
    assert (
        main(
            [
                "train",
                "--output-dir",
                "out",
                "--max-steps",
                "2",
                "--per-device-train-batch-size",
                "2",
                "--max-length",
                "256",
                "--logging-steps",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "Trained 2 step(s)" in capsys.readouterr().out
    card = (tmp_path / "out" / "README.md").read_text()
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in card and "curated" in card
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.hidden_size == 576
