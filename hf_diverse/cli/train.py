"""`hf-diverse train`: supervised fine-tuning on a curated subset with TRL's `SFTTrainer` (`hf_diverse.train_sft`)."""

import argparse
from pathlib import Path

from ..errors import InvalidParameterError
from ..train import sft_config_fields, train_sft
from ..utils.progress import are_progress_bars_enabled

EXAMPLES = """Examples:
  # the whole pipeline offline: embedded IFBench sample -> 50 rows -> SmolLM2-135M-Instruct, a few steps on CPU
  hf-diverse select --k 50 --output curated/
  hf-diverse train --dataset curated/ --output-dir out/smollm2-curated --max-steps 20 --logging-steps 5
  # a real fine-tune on one GPU
  hf-diverse train --dataset curated/ --model Qwen/Qwen2.5-0.5B --output-dir out/qwen-qdit-3k \\
      --num-train-epochs 3 --learning-rate 2e-5 --per-device-train-batch-size 8 --max-length 2048
  # several GPUs (one process per GPU)
  accelerate launch -m hf_diverse.cli train --dataset curated/ --model Qwen/Qwen2.5-0.5B --output-dir out/qwen
  # options and any other SFTConfig field from a YAML file; flags override it
  hf-diverse train --config sft.yaml --max-steps 100

A --config YAML may hold this command's options (dashes or underscores) and any other `trl.SFTConfig` field
(e.g. `warmup_ratio: 0.03`, `lr_scheduler_type: cosine`, `save_strategy: "no"`); any other key is an error.
"""

# SFTConfig fields with a flag of their own: field -> (type, help)
SFT_FLAGS = {
    "max_steps": (int, "Stop after this many optimizer steps (overrides --num-train-epochs)."),
    "num_train_epochs": (float, "Epochs over the subset (TRL default: 3)."),
    "learning_rate": (float, "Peak learning rate (TRL default: 2e-5)."),
    "per_device_train_batch_size": (int, "Batch size per device (default: 8)."),
    "gradient_accumulation_steps": (int, "Batches accumulated per optimizer step (default: 1)."),
    "max_length": (int, "Truncate examples to this many tokens (default: 1024, capped at the model's context)."),
    "logging_steps": (float, "Log the loss every N steps (default: 10)."),
    "save_steps": (float, "Save a checkpoint every N steps (default: 500)."),
    "seed": (int, "Training seed (default: 42)."),
}


def _config_passthrough():
    return sft_config_fields(), "any `trl.SFTConfig` field"


def add_parser(sub):
    p = sub.add_parser(
        "train",
        help="Fine-tune a causal LM on a curated subset (TRL SFTTrainer).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fine-tune a causal LM on a curated subset with TRL's SFTTrainer, loss on the completions only, "
        "and save the model, tokenizer and a model card naming the dataset and its selection.\n\n" + EXAMPLES,
    )
    p.add_argument(
        "--dataset",
        default="curated",
        help="save_to_disk folder (e.g. from `hf-diverse select`), local file or Hub dataset id "
        "(default: curated, the default output of `hf-diverse select`).",
    )
    p.add_argument("--split", default="train", help="Split to load (default: train).")
    p.add_argument(
        "--model",
        default=None,
        help="Hub id or local folder of a causal LM (default: the offline SmolLM2-135M-Instruct).",
    )
    p.add_argument("--output-dir", default=None, help="Folder for checkpoints and the trained model (required).")
    p.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output-dir.")
    p.add_argument(
        "--instruction-columns",
        default=None,
        help="Comma-separated columns forming the prompt, instead of detecting the format (needs --response-columns).",
    )
    p.add_argument("--response-columns", default=None, help="Comma-separated columns forming the completion.")
    p.add_argument("--push-to-hub", action="store_true", help="Upload the trained model (no checkpoints) to the Hub.")
    p.add_argument("--hub-model-id", default=None, help="Hub repo to push to (default: the --output-dir name).")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Show the trainer's progress bar (default: yes).",
    )
    p.add_argument("--config", default=None, help="YAML file of options and SFTConfig fields; flags override it.")
    group = p.add_argument_group("SFTConfig options (any other field through --config)")
    for name, (kind, text) in SFT_FLAGS.items():
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    p.set_defaults(command="train", config_passthrough=_config_passthrough)
    return p


def _text_columns(args):
    if args.instruction_columns is None and args.response_columns is None:
        return None
    if args.instruction_columns is None or args.response_columns is None:
        raise InvalidParameterError("--instruction-columns and --response-columns go together; give both.")
    return {"instruction": args.instruction_columns, "response": args.response_columns}


def run(args) -> int:
    if args.dataset == "curated" and not Path("curated").exists():
        raise InvalidParameterError(
            "No --dataset given and no ./curated folder: run `hf-diverse select --output curated/` first, or pass "
            "--dataset (a save_to_disk folder, a file or a Hub id)."
        )
    overrides = {name: getattr(args, name) for name in SFT_FLAGS if getattr(args, name, None) is not None}
    if not args.progress or not are_progress_bars_enabled():
        overrides["disable_tqdm"] = True
    run = train_sft(
        args.dataset,
        model=args.model,
        output_dir=args.output_dir,
        config=dict(getattr(args, "config_extra", {})),
        push_to_hub=args.push_to_hub,
        hub_model_id=args.hub_model_id,
        text_columns=_text_columns(args),
        split=args.split,
        overwrite=args.overwrite,
        **overrides,
    )
    losses = run.losses
    steps = run.trainer.state.global_step
    print(
        f"Trained {steps} step(s) on {len(run.trainer.train_dataset)} example(s) of {args.dataset} in "
        f"{run.metrics.get('train_runtime', 0.0):.1f}s; train_loss {run.metrics.get('train_loss', float('nan')):.4f}"
        + (f" (logged loss {losses[0]:.4f} -> {losses[-1]:.4f})" if losses else "")
        + "."
    )
    print(f"Wrote {run.output_dir} (model, tokenizer, README.md model card).")
    if run.hub_url:
        print(f"Pushed to {run.hub_url}")
    return 0
