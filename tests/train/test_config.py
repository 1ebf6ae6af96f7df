"""`hf_diverse.train.config`: the `SFTConfig` defaults, overrides and field checks."""

import warnings

import pytest
import torch

from hf_diverse import InvalidParameterError
from hf_diverse.train import build_sft_config


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU defaults")
def test_cpu_defaults_build_without_warnings_and_fields_are_overridable(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation/gradient-checkpointing warning spam
        cfg, user = build_sft_config(tmp_path / "out", {"learning_rate": "1e-4", "warmup_steps": 2}, max_steps=3)
    assert (cfg.bf16, cfg.fp16, cfg.gradient_checkpointing, cfg.dataloader_pin_memory) == (False, False, False, False)
    assert cfg.max_length == 1024 and cfg.report_to in ([], "none", ["none"])
    assert (cfg.learning_rate, cfg.warmup_steps, cfg.max_steps) == (1e-4, 2, 3)  # YAML-style string coerced
    assert user == {"learning_rate": 1e-4, "warmup_steps": 2, "max_steps": 3, "output_dir": str(tmp_path / "out")}
    cfg, _ = build_sft_config(tmp_path / "out", gradient_checkpointing=True)  # old name still works
    assert cfg.gradient_checkpointing is True


def test_sft_config_instance_is_used_as_is_and_bad_fields_are_named(tmp_path):
    from trl import SFTConfig

    given = SFTConfig(output_dir=str(tmp_path / "a"), bf16=False, learning_rate=3e-4, activation_checkpointing=False)
    cfg, _ = build_sft_config(tmp_path / "b", given, max_steps=4)
    assert (cfg.output_dir, cfg.learning_rate, cfg.max_steps) == (str(tmp_path / "b"), 3e-4, 4)
    assert cfg.max_length == 1024 and given.max_steps == -1  # the caller's object is not modified
    with pytest.raises(InvalidParameterError, match="did you mean 'learning_rate'"):
        build_sft_config(tmp_path, lerning_rate=1e-4)
    with pytest.raises(InvalidParameterError, match="output_dir"):
        build_sft_config(None)
    with pytest.raises(InvalidParameterError, match="max_length"):
        build_sft_config(tmp_path, max_length=0)
    with pytest.raises(InvalidParameterError, match="expects a"):
        build_sft_config(tmp_path, {"max_steps": "ten"})
