"""`hf-diverse report`: diversity metrics of a pool (and a subset), printed as a table, written as JSON and PNGs."""

import argparse

from ..data import load_pool, load_source_pool
from ..io import atomic_directory
from ..provenance import get_provenance
from ..report import diversity_report
from ..textviews import TURNS
from ..tokens import get_tokenizer
from .config import DEVICE_HELP, add_progress_and_config

EXAMPLES = """Examples:
  # the embedded default pool (294 IFBench prompt/response pairs) on its own
  hf-diverse report --output-dir report/
  # a subset written by `hf-diverse select` against its pool (the one its provenance names) and a random subset
  hf-diverse select --dataset pool.jsonl --k 50 --output curated/
  hf-diverse report --subset curated/ --output-dir report/
  # a Hub pool, responses only, another tokenizer, more Self-BLEU samples
  hf-diverse report --dataset tatsu-lab/alpaca --subset curated/ --components response \\
      --tokenizer meta-llama/Llama-3.2-1B --self-bleu-samples 200 --output-dir report/
"""


def _components(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def add_parser(sub):
    p = sub.add_parser(
        "report",
        help="Diversity metrics of a dataset (and a subset), as a table, JSON and PNG plots.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compute the posterior diversity metrics (distinct-n, embedding distance, length, gzip ratio, "
        "Self-BLEU, token entropy, kurtosis, Gini, coverage, cluster coverage) of a pool, and of a "
        "subset against the pool and a random subset of the same size. Writes report.json and PNG "
        "plots to --output-dir (atomically: nothing is left there on error).\n\n" + EXAMPLES,
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="The pool: Hub dataset id, local .json/.jsonl/.parquet/.csv file, save_to_disk folder, or "
        "embedded:ifbench. Default: with --subset, the pool the subset's provenance names (an error says what is "
        "missing when it cannot be loaded again); without, the embedded IFBench sample.",
    )
    p.add_argument("--subset", default=None, help="The subset to compare (same kinds of source as --dataset).")
    p.add_argument("--split", default="train", help="Split to load (default: train).")
    p.add_argument("--dataset-config", default=None, help="Hub dataset config name.")
    p.add_argument("--revision", default=None, help="Hub dataset revision.")
    p.add_argument("--limit", type=int, default=None, help="Use only the first N rows of the pool.")
    p.add_argument("--output-dir", default="report", help="Output folder (default: report). Written atomically.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    p.add_argument(
        "--tokenizer",
        default=None,
        help="Tokenizer name or path for the token metrics (default: SmolLM2-135M-Instruct, offline).",
    )
    p.add_argument(
        "--components",
        type=_components,
        default=["instruction", "response"],
        help="Comma-separated text views to measure (default: instruction,response).",
    )
    p.add_argument("--text-columns", default=None, help="Comma-separated text columns instead of the detected format.")
    p.add_argument(
        "--turns",
        default=None,
        choices=TURNS,
        help="Which turns of multi-turn rows make the views (default: the subset's selection setting, else first).",
    )
    p.add_argument(
        "--embedding-column", default="embedding", help="Instruction embedding column (default: embedding)."
    )
    p.add_argument(
        "--response-embedding-column",
        default="response_embedding",
        help="Response embedding column (default: response_embedding).",
    )
    p.add_argument(
        "--embedding-model",
        default=None,
        help="sentence-transformers model for missing embeddings (default: all-MiniLM-L6-v2).",
    )
    p.add_argument(
        "--no-embeddings",
        action="store_true",
        help="Do not compute missing embeddings; skip the embedding metrics of those components.",
    )
    p.add_argument(
        "--self-bleu-samples",
        type=int,
        default=1000,
        help="Texts sampled per set for Self-BLEU (default: 1000; 0 skips it).",
    )
    p.add_argument("--n-clusters", type=int, default=100, help="k-means clusters for cluster coverage (default: 100).")
    p.add_argument("--no-random", action="store_true", help="Leave out the random subset of the subset's size.")
    p.add_argument("--seed", type=int, default=0, help="Random seed (default: 0).")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--batch-size", type=int, default=64, help="Embedding batch size.")
    add_progress_and_config(p)
    p.set_defaults(command="report")
    return p


def _pool_name(pool) -> str:
    source = (get_provenance(pool) or {}).get("source") or {}
    return str(source.get("id") or source.get("kind") or "the pool")


def run(args) -> int:
    # refuse an existing output before doing any work; on any error nothing is left at --output-dir
    with atomic_directory(args.output_dir, overwrite=args.overwrite) as tmp:
        tokenizer = get_tokenizer(args.tokenizer)  # a bad name fails before the pool is loaded
        subset = load_pool(args.subset, split=args.split) if args.subset is not None else None
        if subset is not None and args.dataset is None:
            pool = load_source_pool(subset)  # the pool the subset was selected from, or a clear error
            print(f"Pool: {_pool_name(pool)} ({len(pool)} rows), from the subset's provenance.")
        else:
            pool = load_pool(
                args.dataset, split=args.split, config=args.dataset_config, revision=args.revision, limit=args.limit
            )
        params = (get_provenance(subset) or {}).get("parameters") or {} if subset is not None else {}
        report = diversity_report(
            pool,
            subset,
            tokenizer=tokenizer,
            components=tuple(args.components),
            embedding_column=args.embedding_column,
            response_embedding_column=args.response_embedding_column,
            embedding_model=args.embedding_model,
            compute_embeddings=not args.no_embeddings,
            text_columns=args.text_columns,
            turns=args.turns or params.get("turns") or "first",
            seed=args.seed,
            self_bleu_samples=args.self_bleu_samples,
            n_clusters=args.n_clusters,
            random_baseline=not args.no_random,
            device=args.device,
            batch_size=args.batch_size,
            show_progress=args.progress,
        )
        report.to_json(str(tmp / "report.json"))
        plots = report.plot(tmp)
    print(report)
    print(
        f"Wrote {args.output_dir}/report.json and {len(plots)} plots "
        f"({', '.join(p.rsplit('/', 1)[-1] for p in plots)})."
    )
    return 0
