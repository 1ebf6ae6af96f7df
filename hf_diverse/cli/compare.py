"""`hf-diverse compare`: several methods (and alphas) on the same pool, measured on held-out data against random."""

import argparse
from pathlib import Path

import yaml

from ..compare import compare_methods
from ..data import load_pool
from ..errors import InvalidParameterError
from ..selection import VALID_METHODS
from .config import DEVICE_HELP, add_progress_and_config

EXAMPLES = """Examples:
  # the embedded default pool (294 IFBench pairs): QDIT, tokens and clusters against random
  hf-diverse compare --k 30 --methods qdit,tokens,clusters --output-dir cmp/
  # a Hub pool with a quality column, 5% held out
  hf-diverse compare --dataset tatsu-lab/alpaca --k 3000 --methods qdit,tokens,random --quality-column reward \\
      --output-dir cmp/
  # an alpha sweep of QDIT in one call
  hf-diverse compare --dataset pool.jsonl --k 500 --methods qdit --alphas 0,0.1,0.3,0.5,0.7,1 \\
      --quality-column reward --output-dir sweep/
  # and fine-tune the same model on every subset (20 steps each), held-out loss per subset
  hf-diverse compare --k 30 --methods qdit,tokens --train --max-steps 20 --output-dir cmp-train/

Writes comparison.json, comparison.md (a section for the dataset card: `render_card(subset, comparison=...)`) and
plots/*.png to --output-dir, atomically (nothing is left there on error), and prints the table.
"""


def _list(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in _list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--alphas must be comma-separated numbers, got {text!r}") from None


def _mapping(text):
    """A YAML / JSON mapping given as text (or already a mapping, from --config)."""
    value = yaml.safe_load(text) if isinstance(text, str) else text
    if value is not None and not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{\"max_steps\": 20}}', got {text!r}")
    return value


def _number(text: str):
    value = float(text)
    return int(value) if value.is_integer() and value >= 1 else value


def add_parser(sub):
    p = sub.add_parser(
        "compare",
        help="Compare selection methods (and alphas) on held-out data against random.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run several selection methods on the same candidates and measure every subset on a held-out "
        "split that no selection sees: held-out instruction coverage and wins against random, pool coverage, mean "
        "quality, response token entropy and mid-band token coverage, tokens (training cost) and the diversity "
        "metrics, with what each method maximises and which direction is better. With --train, the same model is "
        "fine-tuned on every subset and its held-out loss reported.\n\n" + EXAMPLES,
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="The pool: Hub dataset id, local .json/.jsonl/.parquet/.csv file, or save_to_disk folder "
        "(default: the embedded IFBench sample).",
    )
    p.add_argument("--split", default="train", help="Split to load (default: train).")
    p.add_argument("--dataset-config", default=None, help="Hub dataset config name.")
    p.add_argument("--revision", default=None, help="Hub dataset revision.")
    p.add_argument("--limit", type=int, default=None, help="Use only the first N rows of the pool.")
    p.add_argument("--k", type=_number, required=False, default=None, help="Rows per subset, or a fraction.")
    p.add_argument(
        "--methods",
        type=_list,
        default=["qdit", "random"],
        help=f"Comma-separated methods (default: qdit,random); any of {', '.join(VALID_METHODS)}.",
    )
    p.add_argument("--alphas", type=_floats, default=None, help="Run QDIT once per alpha, e.g. 0,0.3,0.7,1.")
    p.add_argument("--quality-column", default=None, help="Numeric quality column (higher is better).")
    p.add_argument(
        "--holdout", type=_number, default=0.05, help="Held-out fraction in (0, 1) or row count (default: 0.05)."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of the split, the methods and training (default: 0).")
    p.add_argument(
        "--method-options",
        type=_mapping,
        default=None,
        help="Per-method options as YAML/JSON, e.g. '{tokens: {diversity: 0.5}, qdit: {strategy: lazy}}'.",
    )
    p.add_argument("--train", action="store_true", help="Fine-tune --model on every subset; report held-out loss.")
    p.add_argument(
        "--budget", choices=("examples", "tokens"), default="examples", help="Training budget (default: examples)."
    )
    p.add_argument("--model", default=None, help="Causal LM to fine-tune (default: offline SmolLM2-135M-Instruct).")
    p.add_argument("--max-steps", type=int, default=None, help="Training steps per subset (SFTConfig max_steps).")
    p.add_argument(
        "--train-options", type=_mapping, default=None, help="Other SFTConfig fields as YAML/JSON for every run."
    )
    p.add_argument("--text-columns", default=None, help="Comma-separated text columns instead of the detected format.")
    p.add_argument(
        "--embedding-column", default="embedding", help="Instruction embedding column (default: embedding)."
    )
    p.add_argument("--embedding-model", default=None, help="sentence-transformers model for missing embeddings.")
    p.add_argument(
        "--response-embeddings", action="store_true", help="Embed the responses too (response embedding metrics)."
    )
    p.add_argument("--tokenizer", default=None, help="Tokenizer of the token metrics (default: SmolLM2).")
    p.add_argument("--self-bleu-samples", type=int, default=1000, help="Texts per subset for Self-BLEU (0 skips).")
    p.add_argument("--n-clusters", type=int, default=100, help="k-means clusters for cluster coverage.")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--output-dir", default="comparison", help="Output folder (default: comparison), atomic.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    add_progress_and_config(p)
    p.set_defaults(command="compare")
    return p


def run(args) -> int:
    if args.k is None:
        raise InvalidParameterError("--k is required: rows per subset (a count) or a fraction of the candidates.")
    if Path(args.output_dir).exists() and not args.overwrite:  # before any work
        raise InvalidParameterError(f"Output {args.output_dir} already exists. Pass --overwrite to replace it.")
    train_options = dict(_mapping(args.train_options) or {})
    if args.max_steps is not None:
        train_options["max_steps"] = args.max_steps
    pool = load_pool(
        args.dataset, split=args.split, config=args.dataset_config, revision=args.revision, limit=args.limit
    )
    result = compare_methods(
        pool,
        args.k,
        methods=args.methods,
        quality_column=args.quality_column,
        holdout=args.holdout,
        seed=args.seed,
        alphas=args.alphas,
        train=args.train,
        budget=args.budget,
        model=args.model,
        method_options=_mapping(args.method_options),
        train_options=train_options or None,
        embedding_column=args.embedding_column,
        embedding_model=args.embedding_model,
        compute_response_embeddings=args.response_embeddings,
        text_columns=_list(args.text_columns) if args.text_columns else None,
        tokenizer=args.tokenizer,
        self_bleu_samples=args.self_bleu_samples,
        n_clusters=args.n_clusters,
        device=args.device,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        show_progress=args.progress,
    )
    print(result)
    print(f"Wrote {args.output_dir}/comparison.json, comparison.md and plots/.")
    return 0
