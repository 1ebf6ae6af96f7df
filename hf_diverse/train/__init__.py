"""Supervised fine-tuning on a curated subset with TRL's `SFTTrainer`.

- `data`: a subset -> TRL's conversational prompt/completion rows, the fallback chat template, the `max_length` check.
- `config`: hf_diverse's `SFTConfig` defaults and building a config from a dict, an `SFTConfig` and overrides.
- `sft`: `train_sft`, the run itself (model and tokenizer loading, training, saving, pushing).
- `card`: the model card naming the curated dataset and its selection provenance.

trl and accelerate (the `train` extra) are imported inside the functions, so `import hf_diverse` stays light.
"""

from .card import render_model_card
from .config import build_sft_config, default_sft_args, sft_config_fields
from .data import (
    FALLBACK_CHAT_TEMPLATE,
    PROMPT_COMPLETION_FEATURES,
    PromptCompletionConverter,
    check_max_length,
    ensure_chat_template,
    split_conversation,
    to_prompt_completion,
)
from .sft import SFTRun, train_sft

__all__ = [
    "FALLBACK_CHAT_TEMPLATE",
    "PROMPT_COMPLETION_FEATURES",
    "PromptCompletionConverter",
    "SFTRun",
    "build_sft_config",
    "check_max_length",
    "default_sft_args",
    "ensure_chat_template",
    "render_model_card",
    "sft_config_fields",
    "split_conversation",
    "to_prompt_completion",
    "train_sft",
]
