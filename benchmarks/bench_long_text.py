"""Cost of embedding long texts whole: `EmbeddingScorer(long_text="chunks")` against the default truncation, on the
bundled IFBench responses (52.7% of them are longer than all-MiniLM-L6-v2's 256-token limit).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_long_text.py --n 294 --repeats 3

Both modes run on the same texts, alternating in chunks of `--chunk` texts (the CPU is shared: alternating keeps load
drift out of the ratio); times are summed over the repeats. Prints one table with the command, the machine and the
load average.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from hf_diverse import EmbeddingScorer
from hf_diverse.data import load_embedded_default
from hf_diverse.utils.device import resolve_device


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=294, help="responses embedded (default: the whole bundled sample)")
    p.add_argument("--chunk", type=int, default=32, help="texts per alternating chunk")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    pool = load_embedded_default().select(range(args.n))
    device = resolve_device(None)
    scorers = {
        mode: EmbeddingScorer(what="response", long_text=mode, batch_size=args.batch_size, device=str(device))
        for mode in ("truncate", "chunks")
    }
    for scorer in scorers.values():
        scorer.quiet_long_texts()
        scorer(pool[:2])  # warm-up: model load, kernels
    stats = scorers["chunks"].long_text_stats(pool)
    model = scorers["chunks"].load()
    budget = model.max_seq_length - model.tokenizer.num_special_tokens_to_add(pair=False)
    lengths = [
        len(ids)
        for ids in model.tokenizer(list(pool["response"]), add_special_tokens=False, verbose=False)["input_ids"]
    ]
    windows = int(sum(max(1, -(-n // budget)) for n in lengths))
    seconds = {mode: 0.0 for mode in scorers}
    for _ in range(args.repeats):
        for start in range(0, args.n, args.chunk):
            batch = pool[start : start + args.chunk]
            for mode, scorer in scorers.items():
                t0 = time.perf_counter()
                scorer(batch)
                seconds[mode] += time.perf_counter() - t0
    texts = args.n * args.repeats
    rows = [
        ("truncate", args.n, args.n, seconds["truncate"]),
        ("chunks", args.n, windows, seconds["chunks"]),
    ]
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, device {device}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"texts over the {stats['limit']}-token limit: {stats['count']} of {stats['rows']} "
        f"({100 * stats['fraction']:.1f}%), longest {stats['longest_tokens']} tokens\n"
    )
    print("| long_text | texts | encoder passes | seconds | texts/s | time vs truncate |")
    print("|---|---|---|---|---|---|")
    for mode, n, passes, s in rows:
        ratio = s / seconds["truncate"]
        print(f"| {mode} | {n} | {passes} | {s:.2f} | {texts / s:.1f} | {ratio:.2f}x |")
    mean_len = np.mean(lengths)
    print(f"\nmean response length {mean_len:.0f} tokens; repeats {args.repeats}")


if __name__ == "__main__":
    main()
