"""The model card of a model fine-tuned by `train_sft`: base model, curated dataset and its selection provenance,
loss, chat template, settings, metrics, the code to reproduce the run and the library versions.

The template is `hf_diverse/templates/sft_model_card.md`.
"""

import json
import re
from pathlib import Path

from datasets import Dataset
from huggingface_hub import ModelCard, ModelCardData

from ..provenance import library_versions, root_source

_CARD_TEMPLATE = Path(__file__).parent.parent / "templates" / "sft_model_card.md"
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
_CARD_VERSIONS = ("hf_diverse", "trl", "transformers", "torch", "datasets")


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


def _card_data(model_name: str, base_name: str | None, dataset_name: str, provenance: dict | None) -> ModelCardData:
    tags = ["hf-diverse", "trl", "sft"]  # the tag the dataset cards carry too
    if provenance and provenance.get("method"):
        tags.append(f"hf-diverse-{provenance['method']}")
    return ModelCardData(
        model_name=model_name,
        base_model=base_name if _is_hub_id(base_name) else None,
        datasets=[dataset_name] if _is_hub_id(dataset_name) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=tags,
    )


def _base_model_line(base_model: dict) -> str:
    base_name = base_model.get("name")
    if _is_hub_id(base_name):
        line = f"[`{base_name}`](https://huggingface.co/{base_name})"
    else:
        line = f"`{base_name}`"
    if base_model.get("source") not in (None, "user"):
        line += f" ({base_model['source']})"
    return line


def _loss_line(cfg, completion_only_loss: bool) -> str:
    if completion_only_loss:
        return "The loss is computed on the completion tokens only."
    if getattr(cfg, "assistant_only_loss", False):
        return "The loss is computed on the assistant turns only."
    return "The loss is computed on the whole sequence."


def _chat_template_line(chat_template: str) -> str:
    if chat_template == "fallback":
        return (
            "the base tokenizer had none; hf_diverse's plain-text fallback (`### Instruction:` / "
            "`### Response:`, EOS after each response) was used and saved with the tokenizer."
        )
    return "the tokenizer's own."


def _hyperparameters(cfg, completion_only_loss: bool) -> list[tuple[str, str]]:
    hyper = [(key, _fmt(getattr(cfg, key))) for key in _CARD_SETTINGS if hasattr(cfg, key)]
    # the trainer resolves `completion_only_loss=None`; the card shows what it resolved to
    return [(k, _fmt(completion_only_loss) if k == "completion_only_loss" else v) for k, v in hyper]


def _reproduce_code(dataset_name: str, provenance: dict | None, base_name, cfg, user_values: dict | None) -> str:
    """Python that re-runs the training: `train_sft` on the dataset, after re-selecting an in-memory subset."""
    kwargs = {k: v for k, v in (user_values or {}).items() if k != "output_dir"}
    selection_code = ((provenance or {}).get("reproduce") or {}).get("python")
    if _is_hub_id(dataset_name) or Path(dataset_name).exists() or not selection_code:
        data_arg, reproduce = repr(dataset_name), "from hf_diverse import train_sft\n\n"
    else:  # an in-memory subset: re-select it first
        data_arg, reproduce = "subset", selection_code + "\n\nfrom hf_diverse import train_sft\n\n"
    call = [data_arg, f"model={base_name!r}", f"output_dir={cfg.output_dir!r}"]
    call += [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
    return reproduce + "run = train_sft(" + ", ".join(call) + ")"


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
) -> ModelCard:
    """Build the `huggingface_hub.ModelCard` of a fine-tuned model (template `templates/sft_model_card.md`).

    Args:
        model_name (`str`): the model's name (its Hub repo id when pushed).
        dataset_name (`str`): the curated dataset: a Hub id, a local path or a description of an in-memory subset.
        provenance (`dict`, *optional*): the subset's selection record (`hf_diverse.get_provenance`).
        base_model (`dict`): `{"name": ..., "source": ..., "revision": ...}` of the model fine-tuned.
        cfg (`trl.SFTConfig`): the training configuration.
        completion_only_loss (`bool`): whether the loss was on the completion tokens only.
        chat_template (`str`): `"tokenizer"`, `"fallback"` (`ensure_chat_template`) or `"path"`.
        text_format (`str`): the subset's format as `TextView` read it.
        num_rows (`int`): rows in the subset.
        num_examples (`int`): prompt/completion examples built from them.
        metrics (`dict`, *optional*): training metrics shown in the card.
        user_values (`dict`, *optional*): the `SFTConfig` fields the caller set, for the reproduce snippet.

    Example:
    ```py
    >>> from hf_diverse.train import build_sft_config
    >>> cfg, _ = build_sft_config("out/smollm2-curated")
    >>> card = render_model_card(model_name="smollm2-curated", dataset_name="curated", provenance=None,
    ...     base_model={"name": "HuggingFaceTB/SmolLM2-135M-Instruct"}, cfg=cfg, completion_only_loss=True,
    ...     chat_template="tokenizer", text_format="alpaca", num_rows=50, num_examples=50)
    >>> card.data.base_model, card.data.tags
    ('HuggingFaceTB/SmolLM2-135M-Instruct', ['hf-diverse', 'trl', 'sft'])
    >>> card.save("out/smollm2-curated/README.md")
    ```
    """
    base_name = base_model.get("name")
    return ModelCard.from_template(
        _card_data(model_name, base_name, dataset_name, provenance),
        template_path=str(_CARD_TEMPLATE),
        model_name=model_name,
        base_model_line=_base_model_line(base_model),
        dataset_name=dataset_name,
        num_rows=num_rows,
        num_examples=num_examples,
        provenance=provenance,
        selected=bool(provenance and provenance.get("method")),
        provenance_json=json.dumps(provenance, indent=2, sort_keys=True, default=str) if provenance else "",
        source_id=root_source(provenance).get("id"),
        text_format=text_format,
        loss_line=_loss_line(cfg, completion_only_loss),
        chat_template_line=_chat_template_line(chat_template),
        hyperparameters=_hyperparameters(cfg, completion_only_loss),
        metrics=[(k, _fmt(v)) for k, v in sorted((metrics or {}).items())],
        reproduce=_reproduce_code(dataset_name, provenance, base_name, cfg, user_values),
        versions=sorted(library_versions(_CARD_VERSIONS).items()),
    )
