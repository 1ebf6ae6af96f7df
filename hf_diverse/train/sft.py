"""Supervised fine-tuning on a curated subset with TRL's `SFTTrainer` (`train_sft`).

Data flow: curated subset -> `to_prompt_completion` (TRL's conversational prompt/completion rows) -> `SFTTrainer`
-> a folder with the model, its tokenizer and a model card that names the curated dataset and its selection
provenance. `train_sft` runs it in stages: read the subset, build the config, prepare tokenizer and model, train,
write the outputs, push.

trl and accelerate (the `train` extra) are imported inside the functions, so `import hf_diverse` stays light; so is
transformers (its model classes take over a second to import), as in `hf_diverse.models`.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
from datasets import Dataset

from ..data import load_pool
from ..errors import HubError, InvalidParameterError, ModelLoadError, require
from ..models import resolve_causal_lm
from ..provenance import get_provenance, root_source
from ..textviews import TextView
from ..utils.logging import get_logger
from .card import _dataset_location, render_model_card
from .config import build_sft_config
from .data import check_max_length, ensure_chat_template, to_prompt_completion

logger = get_logger(__name__)

# Training metrics shown in the model card (with the global step)
_CARD_METRICS = ("train_loss", "train_runtime", "epoch")


@dataclass
class SFTRun:
    """What `train_sft` returns.

    Args:
        trainer (`trl.SFTTrainer`): the trainer after training (its `state.log_history` holds every log).
        metrics (`dict`): the training metrics (`train_loss`, `train_runtime`, ...).
        output_dir (`Path`): the folder with the model, tokenizer and `README.md` model card.
        hub_url (`str`, *optional*): the model's Hub URL when pushed.
    """

    trainer: Any
    metrics: dict
    output_dir: Path
    hub_url: str | None = None

    @property
    def losses(self) -> list[float]:
        """Training loss at each logging step, in order."""
        return [entry["loss"] for entry in self.trainer.state.log_history if "loss" in entry]


# --- model ---------------------------------------------------------------------------------------------------------
def _load_model(path: str, init_kwargs: dict):
    from transformers import AutoModelForCausalLM

    kwargs = dict(init_kwargs)
    dtype = kwargs.get("dtype", "float32")  # fp32 master weights, as TRL; mixed precision comes from bf16/fp16
    if isinstance(dtype, str) and dtype != "auto":
        if dtype not in ("float32", "bfloat16", "float16"):
            raise InvalidParameterError(
                f"`model_init_kwargs['dtype']` {dtype!r} is not one of ['auto', 'bfloat16', 'float16', 'float32']."
            )
        dtype = getattr(torch, dtype)
    kwargs["dtype"] = dtype
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"Could not load the causal LM {path!r} for training: {type(e).__name__}: {e}") from e


def _load_tokenizer(path: str, revision: str | None, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"Could not load the tokenizer {path!r}: {type(e).__name__}: {e}") from e


def _context_length(config) -> int | None:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _model_config(path: str, revision, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"Could not load the model config of {path!r}: {type(e).__name__}: {e}") from e


# --- stages ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Subset:
    """The rows to train on, their selection provenance, how the card names them and their text format."""

    dataset: Dataset
    provenance: dict | None
    name: str
    text_format: str


def _read_subset(subset, dataset_name: str | None, split: str, text_columns: dict | None) -> _Subset:
    """Load `subset` when it is a path or id and read its format: an unreadable one fails before anything heavy."""
    if isinstance(subset, (str, os.PathLike)):
        dataset_name = dataset_name or str(subset)
        subset = load_pool(str(subset), split=split)
    elif not isinstance(subset, Dataset):
        raise InvalidParameterError(
            f"`subset` must be a datasets.Dataset, a save_to_disk folder, a file or a Hub id, got "
            f"{type(subset).__name__}."
        )
    provenance = get_provenance(subset)
    if dataset_name is None:
        source = root_source(provenance).get("id")
        dataset_name = _dataset_location(subset) or (
            f"an in-memory subset of {source}" if source else "an in-memory dataset"
        )
    view = TextView.for_columns(subset.column_names, text_columns=text_columns)
    text_format = "text_columns" if view.text_columns is not None else view.format
    return _Subset(dataset=subset, provenance=provenance, name=dataset_name, text_format=text_format)


def _push_target(cfg, push_to_hub: bool, hub_model_id: str | None) -> tuple[bool, str]:
    """`(push_to_hub, hub_model_id)`, taken out of `cfg`: hf_diverse pushes after saving, so the card is its own."""
    push_to_hub = push_to_hub or bool(cfg.push_to_hub)
    hub_model_id = hub_model_id or cfg.hub_model_id or Path(cfg.output_dir).name
    cfg.push_to_hub = False
    return push_to_hub, hub_model_id


def _check_output_dir(output_dir: str, overwrite: bool, resume) -> None:
    path = Path(output_dir)
    if path.is_dir() and any(path.iterdir()) and not overwrite and not resume:
        raise InvalidParameterError(
            f"Output folder {output_dir} exists and is not empty. Pass overwrite=True (CLI: --overwrite) to write "
            "into it, or resume_from_checkpoint=... to continue a run."
        )
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(f"Output {output_dir} exists and is not a folder.")


def _take_model_init_kwargs(cfg) -> dict:
    """`cfg.model_init_kwargs` (with `trust_remote_code` filled in), cleared in `cfg`: the model is loaded here, so
    the trainer must not load it again."""
    init_kwargs = dict(cfg.model_init_kwargs or {})
    cfg.model_init_kwargs = None
    init_kwargs.setdefault("trust_remote_code", cfg.trust_remote_code)
    return init_kwargs


def _prepare_model(model, tokenizer, rows: Dataset, cfg, init_kwargs: dict, cap_max_length: bool):
    """`(model, tokenizer, base_model, chat_template)`. The tokenizer, its chat template and `max_length` are checked
    before the weights are loaded; `cfg.max_length` is lowered to the model's context when `cap_max_length`."""
    from transformers import PreTrainedModel

    revision, trust_remote_code = init_kwargs.get("revision"), init_kwargs["trust_remote_code"]
    if isinstance(model, PreTrainedModel):
        model_path, base_model = model.name_or_path, {"name": model.name_or_path, "source": "user"}
        model_config = model.config
    else:
        model_path, base_model = resolve_causal_lm(None if model is None else str(model))
        model_config = _model_config(model_path, revision, trust_remote_code)
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = _load_tokenizer(str(tokenizer or model_path), revision, trust_remote_code)
    chat_template = "path" if cfg.chat_template_path else ensure_chat_template(tokenizer)
    context = _context_length(model_config)
    if cap_max_length and context is not None and cfg.max_length and cfg.max_length > context:
        cfg.max_length = context
    if not cfg.chat_template_path:  # with a template file, TRL swaps the template inside the trainer
        check_max_length(rows, tokenizer, cfg.max_length)
    if not isinstance(model, PreTrainedModel):
        model = _load_model(model_path, init_kwargs)
    base_model["revision"] = getattr(model.config, "_commit_hash", None)
    return model, tokenizer, base_model, chat_template


def _train(trainer_cls, model, tokenizer, rows: Dataset, cfg, callbacks, resume) -> tuple[Any, dict]:
    """`(trainer, metrics)` after training; warns about the examples TRL left out for lack of a completion token."""
    trainer = trainer_cls(model=model, args=cfg, train_dataset=rows, processing_class=tokenizer, callbacks=callbacks)
    dropped = len(rows) - len(trainer.train_dataset)
    if dropped > 0 and trainer.is_world_process_zero():
        logger.warning(
            "%d of %d examples have no completion token within max_length=%s and are left out of training; raise "
            "max_length to keep them.",
            dropped,
            len(rows),
            cfg.max_length,
        )
    result = trainer.train(resume_from_checkpoint=resume)
    return trainer, dict(result.metrics)


def _write_card_and_record(
    out: Path,
    trainer,
    cfg,
    *,
    model_name: str,
    data: _Subset,
    num_examples: int,
    base_model: dict,
    chat_template: str,
    metrics: dict,
    user_values: dict,
) -> None:
    """Write the model card (`README.md`) and `training_data_provenance.json` into `out`."""
    card = render_model_card(
        model_name=model_name,
        dataset_name=data.name,
        provenance=data.provenance,
        base_model=base_model,
        cfg=cfg,
        completion_only_loss=trainer.completion_only_loss,
        chat_template=chat_template,
        text_format=data.text_format,
        num_rows=len(data.dataset),
        num_examples=num_examples,
        metrics={k: v for k, v in metrics.items() if k in _CARD_METRICS} | {"global_step": trainer.state.global_step},
        user_values=user_values,
    )
    card.save(str(out / "README.md"))
    record = {
        "dataset": data.name,
        "num_rows": len(data.dataset),
        "num_examples": num_examples,
        "text_format": data.text_format,
        "base_model": base_model,
        "selection": data.provenance,
    }
    (out / "training_data_provenance.json").write_text(
        json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    )


def _push(output_dir: str, repo_id: str, cfg) -> str:
    try:
        api = huggingface_hub.HfApi(token=getattr(cfg, "hub_token", None))
        url = api.create_repo(repo_id, private=getattr(cfg, "hub_private_repo", None), exist_ok=True)
        api.upload_folder(
            repo_id=url.repo_id,
            folder_path=output_dir,
            commit_message="Upload model fine-tuned with hf_diverse",
            ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", ".*"],
        )
    except Exception as e:
        raise HubError(
            f"Could not push {output_dir} to the Hub repo {repo_id!r}: {type(e).__name__}: {e}. The trained model "
            f"is saved locally in {output_dir}; nothing was committed."
        ) from e
    return f"https://huggingface.co/{url.repo_id}"


def train_sft(
    subset: "Dataset | str | os.PathLike",
    model: "str | os.PathLike | Any | None" = None,
    output_dir: str | os.PathLike | None = None,
    *,
    config: "dict | Any | None" = None,
    push_to_hub: bool = False,
    hub_model_id: str | None = None,
    tokenizer=None,
    text_columns: dict | None = None,
    dataset_name: str | None = None,
    split: str = "train",
    overwrite: bool = False,
    callbacks: list | None = None,
    **sft_overrides,
) -> SFTRun:
    """Fine-tune a causal LM on a curated subset with TRL's `SFTTrainer`, loss on the completions only.

    The subset is converted with `to_prompt_completion` (prompt = messages up to the last assistant turn,
    completion = that turn) and rendered with the tokenizer's chat template, or `FALLBACK_CHAT_TEMPLATE` for a base
    model without one. The folder written holds the model, the tokenizer, a `README.md` model card naming the
    curated dataset (repo id or local path) with its selection provenance (`hf_diverse.get_provenance`),
    `training_data_provenance.json`, `train_results.json` and `trainer_state.json`. Progress and logs are the
    trainer's own (`logging_steps`, `disable_tqdm`, `report_to`).

    Validation happens before anything is written: an unreadable format, a `max_length` that leaves no completion
    token in any example, or a model that cannot be loaded raise an `HfDiverseError` and leave `output_dir` as it was.
    Under `accelerate launch` every process runs this function; only the main one writes the card and pushes.

    Args:
        subset (`datasets.Dataset`, `str` or `os.PathLike`):
            The curated rows, or where to load them: a `save_to_disk` folder, a local file or a Hub dataset id
            (`hf_diverse.load_pool`).
        model (`str`, `os.PathLike` or `transformers.PreTrainedModel`, *optional*):
            Hub id, local folder or loaded model. Defaults to the offline SmolLM2-135M-Instruct converted from the
            bundled GGUF (`hf_diverse.models.default_causal_lm_path()`, converted on first use).
        output_dir (`str` or `os.PathLike`):
            Where to write checkpoints and the final model. Required unless `config` holds it.
        config (`dict` or `trl.SFTConfig`, *optional*):
            A dict of `SFTConfig` fields, merged over hf_diverse's device defaults (`default_sft_args`), or a ready
            `SFTConfig` used as it is (only `output_dir` and `**sft_overrides` replace its fields).
        push_to_hub (`bool`, *optional*, defaults to `False`):
            Upload the saved folder (without checkpoints) to the Hub after training. Also read from `config`.
        hub_model_id (`str`, *optional*):
            Repo to push to; defaults to the name of `output_dir` under your namespace.
        tokenizer (`PreTrainedTokenizerBase` or `str`, *optional*):
            Tokenizer or where to load it; defaults to the model's.
        text_columns (`dict`, *optional*):
            `{"instruction": [...], "response": [...]}` instead of detecting the format.
        dataset_name (`str`, *optional*):
            How the model card names the curated dataset. Defaults to `subset` when it is a path or id, else the
            `save_to_disk` folder the dataset was loaded from.
        split (`str`, *optional*, defaults to `"train"`):
            Split to load when `subset` is a path or id.
        overwrite (`bool`, *optional*, defaults to `False`):
            Write into a non-empty `output_dir` (files of the same name are replaced).
        callbacks (`list[transformers.TrainerCallback]`, *optional*):
            Passed to the trainer (early stopping, timing, ...).
        **sft_overrides:
            Any `trl.SFTConfig` field, e.g. `max_steps=100`, `learning_rate=1e-5`, `max_length=2048`.

    Returns:
        `SFTRun`: the trainer, the training metrics, the output folder (and the Hub URL when pushed).

    Example:
    ```py
    >>> from hf_diverse import load_pool, select_diverse, train_sft
    >>> subset = select_diverse(load_pool(), k=50)  # doctest: +SKIP
    >>> run = train_sft(  # doctest: +SKIP
    ...     subset, output_dir="out/smollm2-curated", max_steps=5, per_device_train_batch_size=2
    ... )
    >>> run.metrics["train_loss"]  # doctest: +SKIP
    ```
    """
    # Over 80 lines only for the docstring (the public entry point's every argument); the body is its stages.
    trl = require("trl", "train")
    data = _read_subset(subset, dataset_name, split, text_columns)
    cfg, user_values = build_sft_config(output_dir, config, **sft_overrides)
    push_to_hub, hub_model_id = _push_target(cfg, push_to_hub, hub_model_id)
    resume = getattr(cfg, "resume_from_checkpoint", None)
    _check_output_dir(cfg.output_dir, overwrite, resume)
    init_kwargs = _take_model_init_kwargs(cfg)
    cap_max_length = "max_length" not in user_values and not isinstance(config, trl.SFTConfig)
    with cfg.main_process_first(desc="hf_diverse: preparing data and model"):
        rows = to_prompt_completion(data.dataset, text_columns=text_columns, num_proc=cfg.dataset_num_proc)
        model, tokenizer, base_model, chat_template = _prepare_model(
            model, tokenizer, rows, cfg, init_kwargs, cap_max_length
        )
    trainer, metrics = _train(trl.SFTTrainer, model, tokenizer, rows, cfg, callbacks, resume)

    out = Path(cfg.output_dir)
    trainer.save_model(str(out))
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    hub_url = None
    if trainer.is_world_process_zero():  # under `accelerate launch`, only the main process writes the card and pushes
        _write_card_and_record(
            out,
            trainer,
            cfg,
            model_name=hub_model_id if push_to_hub else out.name,
            data=data,
            num_examples=len(rows),
            base_model=base_model,
            chat_template=chat_template,
            metrics=metrics,
            user_values=user_values,
        )
        if push_to_hub:
            hub_url = _push(str(out), hub_model_id, cfg)
    return SFTRun(trainer=trainer, metrics=metrics, output_dir=out, hub_url=hub_url)
