"""Select a diverse subset and publish it to the Hugging Face Hub with its lineage card, in one commit.

This talks to the real Hub (it is not run in CI). You need a token with write access
(https://huggingface.co/settings/tokens), given the usual way: `hf auth login` once, or `export HF_TOKEN=hf_...`.
The token is never printed or written into the card.

    # the embedded IFBench sample (294 rows), 50 rows by QDIT, into a private repo under your account
    python examples/publish_curated.py --repo-id <your-name>/ifbench-qdit-50 --private

    # a Hub pool
    python examples/publish_curated.py --dataset tatsu-lab/alpaca --k 3000 --repo-id <your-name>/alpaca-qdit-3k

What lands in the repo (one commit): `data/train-00000-of-00001.parquet`, `README.md` (the card: source, method and
every parameter, models, seed, versions, timings, objective, diversity report subset vs pool vs random, how to
reproduce), `images/*.png` (2-D projection of the pool with the selected rows, report plots) and `provenance.json`.
Read it back with `datasets.load_dataset("<your-name>/ifbench-qdit-50", split="train")`.
"""

import argparse

from hf_diverse import get_provenance, load_pool, push_curated, select_diverse


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo-id", required=True, help="Target dataset repo, e.g. me/ifbench-qdit-50.")
    parser.add_argument("--dataset", default=None, help="Pool: a Hub dataset id or local file (default: embedded).")
    parser.add_argument("--k", type=float, default=50, help="Rows to select, or a fraction of the pool (default: 50).")
    parser.add_argument("--method", default="qdit", help="Selection method (default: qdit).")
    parser.add_argument("--private", action="store_true", help="Make the repo private.")
    parser.add_argument("--no-report", action="store_true", help="Skip the diversity report (faster).")
    args = parser.parse_args()

    pool = load_pool(args.dataset)
    k = int(args.k) if args.k > 1 else args.k
    subset = select_diverse(pool, k=k, method=args.method, seed=0)
    record = get_provenance(subset)
    print(f"Selected {record['k']} of {record['pool_size']} rows with {record['method']!r}.")
    commit = push_curated(
        subset,
        args.repo_id,
        pool=pool,
        private=True if args.private else None,
        report=False if args.no_report else None,
    )
    print(f"Published: {commit.repo_url}\nCommit: {commit.commit_url}")


if __name__ == "__main__":
    main()
