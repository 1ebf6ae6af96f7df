"""hf_diverse's `trl.SFTConfig` defaults for the device at hand, and building a config from a dict, a ready
`SFTConfig` and keyword overrides (unknown fields get a "did you mean", YAML strings become numbers).

trl and accelerate (the `train` extra) are imported when a config is built, so `import hf_diverse` stays light.
"""

import dataclasses
import difflib
import os
from typing import Any

import torch

from ..errors import InvalidParameterError, require
from ..utils.progress import are_progress_bars_enabled


def _sft_config_class():
    require("accelerate", "train")
    return require("trl", "train").SFTConfig


def sft_config_fields() -> set[str]:
    """Names of the fields `trl.SFTConfig` accepts."""
    return {f.name for f in dataclasses.fields(_sft_config_class()) if f.init}


def _checkpointing_field(fields: set[str]) -> str:
    # transformers 5.23 renamed `gradient_checkpointing` (kept as a deprecated alias that warns on every config)
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def default_sft_args() -> dict:
    """hf_diverse's `SFTConfig` defaults for the device at hand; every other field keeps TRL's default.

    - `bf16` only on GPUs that support it, else `fp16` on other GPUs; full fp32 on CPU/MPS (TRL's own default,
      `bf16=True`, fails on a CPU-only machine).
    - Activation (gradient) checkpointing on GPUs only: it saves memory where memory is scarce, and on CPU it
      only slows training and logs warnings.
    - `max_length=1024` (TRL's), lowered to the model's context length when that is shorter (done in `train_sft`).
    - `dataloader_pin_memory` only on GPUs (elsewhere it only warns).
    - `report_to="none"` (nothing is sent to trackers unless asked) and progress bars following
      `hf_diverse.disable_progress_bars()`.
    """
    fields = sft_config_fields()
    on_gpu = torch.cuda.is_available()
    bf16 = bool(on_gpu and torch.cuda.is_bf16_supported())
    return {
        "bf16": bf16,
        "fp16": on_gpu and not bf16,
        _checkpointing_field(fields): on_gpu,
        "max_length": 1024,
        "dataloader_pin_memory": on_gpu,  # pinning without a GPU only warns
        "report_to": "none",
        "disable_tqdm": not are_progress_bars_enabled(),
    }


def _check_fields(values: dict, fields: set[str]):
    unknown = sorted(set(values) - fields)
    if unknown:
        hints = {k: difflib.get_close_matches(k, fields, n=1) for k in unknown}
        hint = "; ".join(f"did you mean {v[0]!r} for {k!r}?" for k, v in hints.items() if v)
        raise InvalidParameterError(
            f"Unknown SFTConfig field(s) {unknown}. {hint + ' ' if hint else ''}"
            "Any field of `trl.SFTConfig` (and `transformers.TrainingArguments`) can be set."
        )


def _coerce(values: dict, config_cls) -> dict:
    """Turn strings into numbers/bools for plainly typed fields (YAML reads `1e-4` as a string)."""
    types = {f.name: f.type for f in dataclasses.fields(config_cls)}
    out = dict(values)
    for key, value in values.items():
        kind = types.get(key)
        if not isinstance(value, str) or kind not in (int, float, bool, "int", "float", "bool"):
            continue
        try:
            if kind in (bool, "bool"):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                out[key] = value.lower() in ("true", "1", "yes")
            else:
                out[key] = (int if kind in (int, "int") else float)(value)
        except ValueError:
            raise InvalidParameterError(f"SFTConfig field {key!r} expects a {kind}, got {value!r}.") from None
    return out


def _alias_checkpointing(values: dict, fields: set[str]) -> dict:
    new = _checkpointing_field(fields)
    if new == "gradient_checkpointing":
        return values
    values = dict(values)
    for old_key, new_key in (("gradient_checkpointing", new), ("gradient_checkpointing_kwargs", f"{new}_kwargs")):
        if old_key in values and new_key not in values:
            values[new_key] = values.pop(old_key)
    return values


def build_sft_config(
    output_dir: str | os.PathLike | None, config: "dict | Any | None" = None, **overrides
) -> tuple[Any, dict]:
    """`(SFTConfig, user_values)`: hf_diverse's device defaults, then `config`, then `overrides`.

    A `dict` config is merged over `default_sft_args()`. An `SFTConfig` instance is used as it is (its author chose
    every field); only `output_dir` and `overrides` replace its fields. `user_values` are the fields the caller set.

    Example:
    ```py
    >>> cfg, _ = build_sft_config("out/", {"learning_rate": 1e-4}, max_steps=10)
    >>> cfg.max_steps, cfg.learning_rate
    (10, 0.0001)
    ```
    """
    config_cls = _sft_config_class()
    fields = sft_config_fields()
    _check_fields(overrides, fields)
    if isinstance(config, config_cls):
        changes = _alias_checkpointing(_coerce(overrides, config_cls), fields)
        if output_dir is not None:
            changes["output_dir"] = str(output_dir)
        return dataclasses.replace(config, **changes), changes  # a copy: the caller's object is left alone
    if config is not None and not isinstance(config, dict):
        raise InvalidParameterError(
            f"`config` must be a dict of SFTConfig fields or a `trl.SFTConfig`, got {type(config).__name__}."
        )
    user = {**(config or {}), **overrides}
    _check_fields(user, fields)
    user = _alias_checkpointing(_coerce(user, config_cls), fields)
    if output_dir is not None:
        user["output_dir"] = str(output_dir)
    if not user.get("output_dir"):
        raise InvalidParameterError("`output_dir` is required: the folder to write the trained model to.")
    values = {**default_sft_args(), **user}
    # the user's half-precision choice wins over the device default
    for chosen, other in (("fp16", "bf16"), ("bf16", "fp16")):
        if user.get(chosen) and other not in user:
            values[other] = False
    max_length = values.get("max_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise InvalidParameterError(f"`max_length` must be a positive number of tokens or None, got {max_length!r}.")
    return config_cls(**values), user
