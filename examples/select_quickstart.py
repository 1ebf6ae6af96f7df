"""Quickstart: select a diverse subset of the embedded IFBench sample and compare it with random picks.

Runs offline on a CPU in about a minute:

    python examples/select_quickstart.py --k 30

With a Hub dataset (needs access to the Hub):

    python examples/select_quickstart.py --dataset tatsu-lab/alpaca --k 3000
"""

import argparse

from hf_diverse import EmbeddingScorer, get_provenance, load_pool, select_diverse
from hf_diverse.embeddings import read_embeddings
from hf_diverse.facility import facility_location_objective


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="Hub id, local file or folder (default: embedded)")
    parser.add_argument("--k", type=float, default=30, help="rows to select, or a fraction of the pool")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    k = int(args.k) if args.k > 1 else args.k

    pool = load_pool(args.dataset)
    scorer = EmbeddingScorer()  # embed once; every method below reuses the column
    pool = pool.map(scorer, batched=True, features=scorer.features(pool), desc="Embedding")
    x = read_embeddings(pool, "embedding")

    for method in ("qdit", "random"):
        subset = select_diverse(pool, k=k, method=method, seed=args.seed, show_progress=False)
        record = get_provenance(subset)
        coverage = facility_location_objective(x, subset["source_index"]) / len(pool)  # the rows' pool indices
        print(
            f"{method:>6}: {record['k']} of {record['pool_size']} rows, facility-location coverage d(A)/N = "
            f"{coverage:.4f}"
        )
        if method == "qdit":  # the pool was embedded after loading: the card says how to make it reloadable
            reproduce = record["reproduce"]
            print(
                "        reproduce with:", reproduce["cli"] or f"{reproduce['call']}; to reload it, {reproduce['fix']}"
            )


if __name__ == "__main__":
    main()
