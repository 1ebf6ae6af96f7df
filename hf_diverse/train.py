"""Supervised fine-tuning on a curated subset with TRL's `SFTTrainer`.

Data flow: curated subset -> `to_prompt_completion` (TRL's conversational prompt/completion rows) -> `SFTTrainer`
-> a folder with the model, its tokenizer and a model card that names the curated dataset and its selection
provenance.

Every format `TextView` reads as a conversation (Alpaca, prompt/response, prompt/completion, chat `messages`, ShareGPT
`conversations`) becomes one row `{"prompt": [every message before the last assistant turn], "completion": [the last
assistant turn]}`. TRL renders both with the tokenizer's chat template and, since the rows are prompt/completion,
computes the loss on the completion tokens only (`completion_only_loss=None` resolves to `True`).

trl and accelerate are imported inside the functions (the `train` extra), so `import hf_diverse` stays light.
"""

import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, List, Value

from .errors import (
    EmptyDatasetError,
    InvalidParameterError,
    ModelLoadError,
    TextFormatError,
    require,
)
from .provenance import get_provenance, library_versions, root_source
from .textviews import TextView
from .utils.logging import get_logger

logger = get_logger(__name__)

_MESSAGES = List({"role": Value("string"), "content": Value("string")})
PROMPT_COMPLETION_FEATURES = Features({"prompt": _MESSAGES, "completion": _MESSAGES})

# Used only when the tokenizer has no chat template (base models). Plain text, so no token has to be added to the
# vocabulary; the assistant turn ends with the EOS token so the model learns to stop, and sits inside
# `{% generation %}` markers so `assistant_only_loss=True` also works. Rendering the prompt with
# `add_generation_prompt=True` gives a prefix of the rendered prompt + completion, which TRL's completion mask needs.
FALLBACK_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}{{ '### Response:\\n' }}"
    "{% generation %}{{ message['content'] }}{{ eos_token if eos_token else '' }}{% endgeneration %}"
    "{%- else %}{{ '### Instruction:\\n' + message['content'] }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{% if messages %}{{ '\\n\\n' }}{% endif %}{{ '### Response:\\n' }}{% endif %}"
)

_CARD_TEMPLATE = Path(__file__).parent / "templates" / "sft_model_card.md"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Settings shown in the model card, in this order
_CARD_SETTINGS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_length",
    "packing",
    "completion_only_loss",
    "assistant_only_loss",
    "bf16",
    "fp16",
    "gradient_checkpointing",
    "seed",
)


# --- format conversion ----------------------------------------------------------------------------------------------
def split_conversation(messages: list[dict]) -> tuple[list[dict], list[dict]] | None:
    """Split a conversation at its last assistant turn: `(prompt, [last assistant message])`.

    Messages after the last assistant turn are dropped. Returns `None` when there is no assistant turn, or nothing
    before it to prompt with.

    Example:
    ```py
    >>> split_conversation([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])
    ([{'role': 'user', 'content': '2+2?'}], [{'role': 'assistant', 'content': '4'}])
    ```
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if not last:  # None (no assistant turn) or 0 (nothing before it)
        return None
    return messages[:last], [messages[last]]


class PromptCompletionConverter:
    """`Dataset.map(batched=True, with_indices=True)` callable: rows of any conversational format -> TRL's
    conversational prompt/completion rows. Rows without a usable assistant turn produce no output row.

    Args:
        view (`TextView`): a view built for the dataset's columns (`TextView.for_columns`).
    """

    def __init__(self, view: TextView):
        self.view = view

    def __call__(self, batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
        prompts, completions = [], []
        for conversation in self.view.conversations(batch, indices=indices):
            pair = split_conversation(conversation)
            if pair is not None:
                prompts.append(pair[0])
                completions.append(pair[1])
        return {"prompt": prompts, "completion": completions}


def to_prompt_completion(
    dataset: Dataset, text_columns=None, format: str | None = None, num_proc: int | None = None
) -> Dataset:
    """Convert a dataset to TRL's conversational prompt/completion format (columns `prompt` and `completion`).

    The prompt is every message before the last assistant turn (system and earlier turns included), the completion
    that last assistant turn. Rows with no assistant turn after a first message are skipped (logged); if no row is
    left, `TextFormatError` is raised. Other columns (embeddings, scores, ...) are dropped.

    Args:
        dataset (`datasets.Dataset`):
            Rows in any format `TextView` reads as a conversation: Alpaca, prompt/response, prompt/completion,
            chat `messages` or ShareGPT `conversations`.
        text_columns (`dict`, *optional*):
            `{"instruction": [...], "response": [...]}` to name the columns instead of detecting the format.
        format (`str`, *optional*):
            Force one of `hf_diverse.textviews.FORMATS` instead of detecting it.
        num_proc (`int`, *optional*):
            Processes for the `map`.

    Example:
    ```py
    >>> ds = Dataset.from_dict({"instruction": ["Add"], "input": ["2+2"], "output": ["4"]})
    >>> to_prompt_completion(ds)[0]
    {'prompt': [{'role': 'user', 'content': 'Add\\n\\n2+2'}], 'completion': [{'role': 'assistant', 'content': '4'}]}
    ```
    """
    if isinstance(dataset, DatasetDict):
        raise InvalidParameterError(
            f"Pass one split (e.g. `dataset['train']`), not a DatasetDict with splits {list(dataset)}."
        )
    if len(dataset) == 0:
        raise EmptyDatasetError("The subset to train on has no rows.")
    view = TextView.for_columns(dataset.column_names, format=format, text_columns=text_columns)
    if view.text_columns is None and view.format == "text":
        raise TextFormatError(
            f"The subset is in the `text` format (columns {dataset.column_names}): it has no instruction/response "
            "roles to build prompt/completion pairs from. Name them with "
            "`text_columns={'instruction': [...], 'response': [...]}`, or use a conversational format "
            "(Alpaca, prompt/response, prompt/completion, messages, ShareGPT)."
        )
    converted = dataset.map(
        PromptCompletionConverter(view),
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=PROMPT_COMPLETION_FEATURES,
        num_proc=num_proc,
        desc="Converting to prompt/completion",
    )
    skipped = len(dataset) - len(converted)
    if len(converted) == 0:
        raise TextFormatError(
            f"None of the {len(dataset)} rows (format {view.format!r}) has an assistant turn after a prompt, so "
            "there is no completion to train on."
        )
    if skipped:
        logger.warning("Skipped %d of %d rows with no assistant turn after a prompt.", skipped, len(dataset))
    return converted


def ensure_chat_template(tokenizer) -> str:
    """Give `tokenizer` hf_diverse's plain-text fallback template if it has none.

    Returns `"tokenizer"` when the tokenizer's own template is kept, `"fallback"` when `FALLBACK_CHAT_TEMPLATE`
    was set. The fallback renders `### Instruction:` / `### Response:` blocks separated by a blank line and ends each
    assistant turn with the EOS token.
    """
    if getattr(tokenizer, "chat_template", None):
        return "tokenizer"
    logger.warning(
        "The tokenizer has no chat template; using hf_diverse's plain-text fallback "
        "(### Instruction: / ### Response:). It is saved with the model, so inference with `apply_chat_template` "
        "uses the same format."
    )
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return "fallback"


# --- SFTConfig ------------------------------------------------------------------------------------------------------
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
    import torch

    from .utils.progress import are_progress_bars_enabled

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


# --- model ----------------------------------------------------------------------------------------------------------
def _load_model(path: str, init_kwargs: dict):
    import torch
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


# --- checks ---------------------------------------------------------------------------------------------------------
def _ids(tokenizer, messages, **kwargs) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def _completion_start(tokenizer, row) -> tuple[int, int]:
    """`(first completion token, total tokens)`, as TRL finds them: the common prefix of the tokenized prompt and
    prompt + completion."""
    prompt = _ids(tokenizer, row["prompt"], add_generation_prompt=True)
    full = _ids(tokenizer, row["prompt"] + row["completion"])
    start = 0
    for a, b in zip(prompt, full, strict=False):
        if a != b:
            break
        start += 1
    return start, len(full)


def check_max_length(rows: Dataset, tokenizer, max_length: int | None):
    """Raise `InvalidParameterError` when `max_length` leaves no completion token in any example.

    TRL truncates each tokenized example to `max_length` and drops the ones left with no completion token; when that
    is all of them, training would fail later with an unhelpful error. Stops at the first example that fits.
    """
    if max_length is None:
        return
    shortest = None
    for row in rows:
        start, total = _completion_start(tokenizer, row)
        if start < min(max_length, total):
            return
        shortest = start if shortest is None else min(shortest, start)
    raise InvalidParameterError(
        f"max_length={max_length} is smaller than every example: the shortest of the {len(rows)} prompts already "
        f"takes {shortest} tokens, so truncation would leave no completion token to train on. Use a max_length "
        f"above {shortest}, or max_length=None for no truncation."
    )


def _check_output_dir(output_dir: str, overwrite: bool, resume) -> None:
    path = Path(output_dir)
    if path.is_dir() and any(path.iterdir()) and not overwrite and not resume:
        raise InvalidParameterError(
            f"Output folder {output_dir} exists and is not empty. Pass overwrite=True (CLI: --overwrite) to write "
            "into it, or resume_from_checkpoint=... to continue a run."
        )
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(f"Output {output_dir} exists and is not a folder.")


# --- model card -----------------------------------------------------------------------------------------------------
def _is_hub_id(name: str | None) -> bool:
    return bool(name) and _HUB_ID.fullmatch(name) is not None and not Path(name).exists()


def _dataset_location(dataset: Dataset) -> str | None:
    """The `save_to_disk` folder a dataset was loaded from, if any."""
    for cache_file in dataset.cache_files:
        folder = Path(cache_file["filename"]).parent
        if (folder / "state.json").exists():
            return str(folder)
    return None


def _fmt(value) -> str:
    value = getattr(value, "value", value)  # enums such as lr_scheduler_type
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_model_card(
    *,
    model_name: str,
    dataset_name: str,
    provenance: dict | None,
    base_model: dict,
    cfg,
    completion_only_loss: bool,
    chat_template: str,
    text_format: str,
    num_rows: int,
    num_examples: int,
    metrics: dict | None = None,
    user_values: dict | None = None,
):
    """Build the `huggingface_hub.ModelCard` of a fine-tuned model (template `templates/sft_model_card.md`)."""
    from huggingface_hub import ModelCard, ModelCardData

    base_name = base_model.get("name")
    tags = ["hf_diverse", "trl", "sft"]
    if provenance and provenance.get("method"):
        tags.append(f"hf_diverse-{provenance['method']}")
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_name if _is_hub_id(base_name) else None,
        datasets=[dataset_name] if _is_hub_id(dataset_name) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=tags,
    )
    if _is_hub_id(base_name):
        base_line = f"[`{base_name}`](https://huggingface.co/{base_name})"
    else:
        base_line = f"`{base_name}`"
    if base_model.get("source") not in (None, "user"):
        base_line += f" ({base_model['source']})"
    if completion_only_loss:
        loss_line = "The loss is computed on the completion tokens only."
    elif getattr(cfg, "assistant_only_loss", False):
        loss_line = "The loss is computed on the assistant turns only."
    else:
        loss_line = "The loss is computed on the whole sequence."
    if chat_template == "fallback":
        template_line = (
            "the base tokenizer had none; hf_diverse's plain-text fallback (`### Instruction:` / "
            "`### Response:`, EOS after each response) was used and saved with the tokenizer."
        )
    else:
        template_line = "the tokenizer's own."
    hyper = [(key, _fmt(getattr(cfg, key))) for key in _CARD_SETTINGS if hasattr(cfg, key)]
    hyper = [(k, _fmt(completion_only_loss) if k == "completion_only_loss" else v) for k, v in hyper]
    kwargs = {k: v for k, v in (user_values or {}).items() if k != "output_dir"}
    selection_code = ((provenance or {}).get("reproduce") or {}).get("python")
    if _is_hub_id(dataset_name) or Path(dataset_name).exists() or not selection_code:
        data_arg, reproduce = repr(dataset_name), "from hf_diverse import train_sft\n\n"
    else:  # an in-memory subset: re-select it first
        data_arg, reproduce = "subset", selection_code + "\n\nfrom hf_diverse import train_sft\n\n"
    call = [data_arg, f"model={base_name!r}", f"output_dir={cfg.output_dir!r}"]
    call += [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
    reproduce += "run = train_sft(" + ", ".join(call) + ")"
    return ModelCard.from_template(
        card_data,
        template_path=str(_CARD_TEMPLATE),
        model_name=model_name,
        base_model_line=base_line,
        dataset_name=dataset_name,
        num_rows=num_rows,
        num_examples=num_examples,
        provenance=provenance,
        selected=bool(provenance and provenance.get("method")),
        provenance_json=json.dumps(provenance, indent=2, sort_keys=True, default=str) if provenance else "",
        source_id=root_source(provenance).get("id"),
        text_format=text_format,
        loss_line=loss_line,
        chat_template_line=template_line,
        hyperparameters=hyper,
        metrics=[(k, _fmt(v)) for k, v in sorted((metrics or {}).items())],
        reproduce=reproduce,
        versions=sorted(library_versions(("hf_diverse", "trl", "transformers", "torch", "datasets")).items()),
    )


def _push(output_dir: str, repo_id: str, cfg) -> str:
    from huggingface_hub import HfApi

    from .errors import HubError

    try:
        api = HfApi(token=getattr(cfg, "hub_token", None))
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


# --- training -------------------------------------------------------------------------------------------------------
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
    >>> subset = select_diverse(load_pool(), k=50)
    >>> run = train_sft(subset, output_dir="out/smollm2-curated", max_steps=5, per_device_train_batch_size=2)
    >>> run.metrics["train_loss"]
    ```
    """
    from .models import resolve_causal_lm

    trl = require("trl", "train")
    from transformers import PreTrainedModel

    # 1. data: fail on an unreadable format before loading anything heavy
    if isinstance(subset, (str, os.PathLike)):
        from .data import load_pool

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

    # 2. configuration (push settings are handled here, after saving, so the card is ours)
    cfg, user_values = build_sft_config(output_dir, config, **sft_overrides)
    push_to_hub = push_to_hub or bool(cfg.push_to_hub)
    hub_model_id = hub_model_id or cfg.hub_model_id or Path(cfg.output_dir).name
    cfg.push_to_hub = False
    resume = getattr(cfg, "resume_from_checkpoint", None)
    _check_output_dir(cfg.output_dir, overwrite, resume)
    init_kwargs = dict(cfg.model_init_kwargs or {})
    cfg.model_init_kwargs = None  # the model is loaded here, so the trainer must not try again
    revision = init_kwargs.get("revision")
    trust_remote_code = init_kwargs.setdefault("trust_remote_code", cfg.trust_remote_code)

    with cfg.main_process_first(desc="hf_diverse: preparing data and model"):
        rows = to_prompt_completion(subset, text_columns=text_columns, num_proc=cfg.dataset_num_proc)
        # 3. tokenizer, chat template and max_length, still before the weights are loaded
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
        capped = "max_length" not in user_values and not isinstance(config, trl.SFTConfig)
        if capped and context is not None and cfg.max_length and cfg.max_length > context:
            cfg.max_length = context
        if not cfg.chat_template_path:  # with a template file, TRL swaps the template inside the trainer
            check_max_length(rows, tokenizer, cfg.max_length)
        # 4. the model
        if not isinstance(model, PreTrainedModel):
            model = _load_model(model_path, init_kwargs)
        base_model["revision"] = getattr(model.config, "_commit_hash", None)

    trainer = trl.SFTTrainer(
        model=model, args=cfg, train_dataset=rows, processing_class=tokenizer, callbacks=callbacks
    )
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
    metrics = dict(result.metrics)

    out = Path(cfg.output_dir)
    trainer.save_model(str(out))
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    hub_url = None
    if trainer.is_world_process_zero():
        card = render_model_card(
            model_name=hub_model_id if push_to_hub else out.name,
            dataset_name=dataset_name,
            provenance=provenance,
            base_model=base_model,
            cfg=cfg,
            completion_only_loss=trainer.completion_only_loss,
            chat_template=chat_template,
            text_format=text_format,
            num_rows=len(subset),
            num_examples=len(rows),
            metrics={k: v for k, v in metrics.items() if k in ("train_loss", "train_runtime", "epoch")}
            | {"global_step": trainer.state.global_step},
            user_values=user_values,
        )
        card.save(str(out / "README.md"))
        record = {
            "dataset": dataset_name,
            "num_rows": len(subset),
            "num_examples": len(rows),
            "text_format": text_format,
            "base_model": base_model,
            "selection": provenance,
        }
        (out / "training_data_provenance.json").write_text(
            json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
        )
        if push_to_hub:
            hub_url = _push(str(out), hub_model_id, cfg)
    return SFTRun(trainer=trainer, metrics=metrics, output_dir=out, hub_url=hub_url)
