"""Real embeddings for `bench_select.py --embeddings`: N distinct ShareGPT prompts (every human turn followed by a
gpt turn, shuffled with a seed; `benchmarks/sharegpt.py`, benchmark use only) embedded with the bundled
all-MiniLM-L6-v2 through `hf_diverse.score` (so a second run finds them in the score store), saved as an (N, 384)
float32 `.npy` of unit rows.

    .venv/bin/python benchmarks/real_embeddings.py --rows 20000 --out benchmarks/out/sharegpt_prompts_20k.npy
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.sharegpt import sharegpt_pairs  # noqa: E402
from hf_diverse import EmbeddingScorer, score  # noqa: E402


def distinct_prompts(rows: int, seed: int = 0):
    pairs = sharegpt_pairs(60_000, seed=seed)
    seen, keep = set(), []
    for i, prompt in enumerate(pairs["prompt"]):
        key = prompt.strip()
        if key and key not in seen:
            seen.add(key)
            keep.append(i)
    if len(keep) < rows:
        raise SystemExit(f"only {len(keep)} distinct prompts, asked for {rows}")
    return pairs.select(keep[:rows])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    t0 = time.perf_counter()
    pool = distinct_prompts(args.rows, args.seed)
    scored = score(pool, EmbeddingScorer(what="instruction"))
    x = np.asarray(scored.with_format("numpy")["embedding"], dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    seconds = time.perf_counter() - t0
    print(f"{len(x)} prompts embedded in {seconds:.0f} s; norms {norms.min():.4f} to {norms.max():.4f}")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    np.save(args.out, x / norms[:, None])


if __name__ == "__main__":
    main()
