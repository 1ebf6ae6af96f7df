"""`hf-diverse push`: publish a saved subset (data, lineage card, plots) to the Hub in one commit."""

import argparse

from ..data import load_pool
from ..hub import push_curated

EXAMPLES = """Examples:
  # the folder written by `hf-diverse select --output curated/`
  hf-diverse push curated/ me/alpaca-qdit-3k
  # a private repo, with the 2-D projection and diversity report against the pool it came from
  hf-diverse push curated/ me/alpaca-qdit-3k --private --pool tatsu-lab/alpaca
  # keep the embedding column (dropped by default)
  hf-diverse push curated/ me/alpaca-qdit-3k --keep-heavy-columns

The token comes from HF_TOKEN or `hf auth login` (it is never printed or written anywhere).
"""


def add_parser(sub):
    p = sub.add_parser(
        "push",
        help="Publish a saved subset to the Hugging Face Hub with its lineage card.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Publish a subset saved by `hf-diverse select` (or `save_to_disk`) as a Hub dataset repo: Parquet "
        "data, a dataset card recording how it was made, and plots, all in one commit.\n\n" + EXAMPLES,
    )
    p.add_argument("subset", help="Folder written by `hf-diverse select --output` (a `save_to_disk` dataset).")
    p.add_argument("repo_id", help="Target dataset repo, e.g. me/alpaca-qdit-3k.")
    p.add_argument(
        "--private",
        action="store_true",
        default=None,
        help="Make the repo private (default: new repos public, existing repos unchanged).",
    )
    p.add_argument(
        "--keep-heavy-columns",
        action="store_true",
        help="Keep the embedding column and other list-of-floats columns (dropped by default).",
    )
    p.add_argument(
        "--pool",
        default=None,
        help="The pool the subset came from (Hub id, local file or save_to_disk folder; 'embedded' for "
        "the embedded sample): adds the projection plot and the diversity report.",
    )
    p.add_argument("--pool-split", default="train", help="Split of --pool (default: train).")
    p.add_argument("--no-report", action="store_true", help="Leave the diversity report out of the card.")
    p.add_argument("--no-plots", action="store_true", help="Leave the plots out.")
    p.add_argument("--split", default="train", help="Split name of the published data (default: train).")
    p.add_argument("--commit-message", default=None, help="Commit message (default: describes the subset).")
    p.add_argument("--config", default=None, help="YAML file of options; flags override it.")
    p.set_defaults(command="push")
    return p


def run(args) -> int:
    subset = load_pool(args.subset)
    pool = None
    if args.pool:
        pool = load_pool(None if args.pool == "embedded" else args.pool, split=args.pool_split)
    commit = push_curated(
        subset,
        args.repo_id,
        pool=pool,
        private=args.private,
        keep_heavy_columns=args.keep_heavy_columns,
        report=False if args.no_report else None,
        plots=not args.no_plots,
        split=args.split,
        commit_message=args.commit_message,
    )
    print(f"Published {len(subset)} rows to {commit.repo_url} (commit {commit.oid[:8]}): {commit.commit_url}")
    return 0
