"""Benchmark: the meso (tag) strategy on ShareGPT first turns, on CPU with the embedded SmolLM2-135M-Instruct.

Stages, each timed: `TagScorer` over the first human turn of `--rows` ShareGPT conversations (`benchmarks/sharegpt.py`;
rows/s, and the share of rows with usable tags by status), `normalize_tags` (distinct tags -> categories), then
`diversity_series(method="tags")` at `--k` (tag diversity, categories used and mean response length per point, next
to a random subset of the same size). Prints one table with the command, the machine and the load average.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_tags.py --rows 2000 --k 200        # full run
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_tags.py --rows 16 --k 8 --max-new-tokens 16   # smoke
"""

import argparse
import os
import platform
import random
import sys
import time
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def first_turns(n_rows: int, seed: int = 0):
    """The first human -> gpt turn of `n_rows` ShareGPT conversations (shuffled with `seed`), as prompt/response."""
    from datasets import Dataset

    from benchmarks.sharegpt import conversation_pairs, load_conversations

    rows = [pairs[0] for pairs in (conversation_pairs([c]) for c in load_conversations()) if pairs]
    random.Random(seed).shuffle(rows)
    if len(rows) < n_rows:
        raise SystemExit(f"only {len(rows)} conversations with a first turn; ask for fewer --rows")
    return Dataset.from_list(rows[:n_rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--points", type=int, default=7)
    parser.add_argument("--model", default=None, help="tagger (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows generated together")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-input-tokens", type=int, default=512)
    args = parser.parse_args()

    from hf_diverse import TagScorer, diversity_series, get_provenance, normalize_tags
    from hf_diverse.metrics import tag_diversity
    from hf_diverse.utils.progress import disable_progress_bars

    disable_progress_bars()
    load_before = os.getloadavg()
    pool = first_turns(args.rows)
    scorer = TagScorer(
        model=args.model,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_input_tokens=args.max_input_tokens,
    )
    scorer.load()  # model load (and the one-time GGUF conversion) is not part of the rate
    t0, c0 = time.perf_counter(), time.process_time()
    tagged = pool.map(scorer, batched=True, batch_size=args.batch_size, features=scorer.features(pool))
    tag_s, tag_cpu = time.perf_counter() - t0, time.process_time() - c0
    status = Counter(tagged["tags_status"])
    usable = status["ok"] + status["retried"]
    n_tags = [len(t) for t in tagged["tags"]]

    t0 = time.perf_counter()
    tagged = normalize_tags(tagged)
    norm_s = time.perf_counter() - t0
    raw = {t for tags in tagged["tags"] for t in tags}
    cats = {t for tags in tagged["tags_normalized"] for t in tags}

    t0 = time.perf_counter()
    series = diversity_series(tagged, args.k, n_points=args.points, method="tags", show_progress=False)
    series_s = time.perf_counter() - t0
    rand = np.random.default_rng(0).choice(len(tagged), size=args.k, replace=False)
    rand_tags = [tagged["tags_normalized"][int(i)] for i in rand]

    print(f"command: {' '.join(sys.argv)}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}; load average before {load_before}, after {os.getloadavg()}"
    )
    print()
    print("| stage | result |")
    print("|---|---|")
    print(f"| pool | {len(pool)} ShareGPT first turns |")
    print(
        f"| tagging ({scorer.model_info['name']}, batch {args.batch_size}, <= {args.max_new_tokens} new tokens) | "
        f"{tag_s:.1f} s wall, {tag_cpu:.1f} s CPU, **{len(pool) / tag_s:.2f} rows/s** |"
    )
    print(
        f"| rows with usable tags | **{usable / len(pool):.1%}** (ok {status['ok']}, retried {status['retried']}, "
        f"failed {status['failed']}, no text {status['no_text']}); {np.mean(n_tags):.2f} tags per row |"
    )
    print(f"| normalize_tags | {norm_s:.1f} s: {len(raw)} distinct tags -> {len(cats)} categories |")
    print(f"| diversity_series(method='tags', k={args.k}, {args.points} points) | {series_s:.1f} s |")
    print()
    print("| diversity | tag diversity | categories used | categories chosen | mean response tokens |")
    print("|---|---|---|---|---|")
    for s in series:
        rec = get_provenance(s)
        obj, det = rec["objective"], rec["details"]
        print(
            f"| {det['diversity']:.3f} | {obj['tag_diversity']:.4f} | {obj['categories_used']} | "
            f"{det['categories_chosen']} | {det['series']['mean_response_tokens']:.0f} |"
        )
    rand_used = len({t for tags in rand_tags for t in tags})
    print(f"| random (seed 0) | {tag_diversity(rand_tags):.4f} | {rand_used} | | |")


if __name__ == "__main__":
    main()
