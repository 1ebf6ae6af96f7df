"""Benchmark `push_curated`: a large subset and pool published to the local Hub-protocol server of the tests.

    .venv/bin/python benchmarks/bench_push.py --n 200000 --k 20000 --dim 384

The pool is synthetic: the 294 IFBench prompt/response pairs repeated with a row number appended, a seeded random
L2-normalised embedding column (`--dim`) and a quality column. The subset is `method="random"` (selection is not
what is measured). Timed: the whole `push_curated` (Parquet shards, PCA projection of the pool, card, one commit to
the server on 127.0.0.1 with LFS uploads) and its parts measured separately, then `load_dataset` reading it back;
wall and CPU seconds of this process (CPU counts every thread).
No network is used: the server is `tests/hub_server.py` in this process.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hub_server import FakeHub

TOKEN = "hf_benchmark_token_0123456789"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="Pool rows (default: 200000).")
    parser.add_argument("--k", type=int, default=20_000, help="Subset rows (default: 20000).")
    parser.add_argument("--dim", type=int, default=384, help="Embedding dimension (default: 384).")
    args = parser.parse_args()

    hub = FakeHub({TOKEN: ("bench", "write", [])}).start()
    tmp = tempfile.mkdtemp(prefix="bench_push_")
    # huggingface_hub and datasets read these when imported
    os.environ.update(
        {
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": TOKEN,
            "HF_HOME": os.path.join(tmp, "home"),
            "HF_DATASETS_CACHE": os.path.join(tmp, "datasets"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DIVERSE_DISABLE_PROGRESS_BARS": "1",
        }
    )
    import numpy as np
    from datasets import Dataset, load_dataset
    from datasets.utils.logging import disable_progress_bar

    from hf_diverse import push_curated, render_card, select_diverse
    from hf_diverse.data import load_embedded_default
    from hf_diverse.plots.projection import plot_projection

    disable_progress_bar()
    base = load_embedded_default()
    reps = -(-args.n // len(base))
    prompts = [f"{p} (#{i})" for i in range(reps) for p in base["prompt"]][: args.n]
    responses = [r for _ in range(reps) for r in base["response"]][: args.n]
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(args.n, args.dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    t0, c0 = time.perf_counter(), time.process_time()
    import pyarrow as pa
    from datasets import DatasetInfo, Features, List, Value
    from datasets.table import InMemoryTable

    features = Features(
        {
            "prompt": Value("string"),
            "response": Value("string"),
            "score": Value("float64"),
            "embedding": List(Value("float32"), length=args.dim),
        }
    )
    table = pa.table(
        {
            "prompt": prompts,
            "response": responses,
            "score": rng.random(args.n),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), args.dim),
        }
    )
    pool = Dataset(InMemoryTable(table.cast(features.arrow_schema)), info=DatasetInfo(features=features))
    del emb, table
    t_build = (time.perf_counter() - t0, time.process_time() - c0)
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    subset = select_diverse(pool, k=args.k, method="random", seed=0, show_progress=False)

    timings = {"build pool": t_build}
    t0, c0 = time.perf_counter(), time.process_time()
    plot_projection(pool, subset, path=os.path.join(tmp, "projection.png"))
    timings["projection plot (PCA of pool + PNG)"] = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    subset.remove_columns("embedding").to_parquet(os.path.join(tmp, "subset.parquet"))
    timings["Parquet of the subset"] = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    render_card(subset, repo_id="bench/subset")
    timings["render card"] = (time.perf_counter() - t0, time.process_time() - c0)

    t0, c0 = time.perf_counter(), time.process_time()
    commit = push_curated(subset, "bench/subset", pool=pool, report=False)
    timings["push_curated total (one commit)"] = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    push_curated(subset, "bench/subset", pool=pool, report=False)
    timings["re-push, unchanged (no commit)"] = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    back = load_dataset("bench/subset", split="train")
    timings["load_dataset read back"] = (time.perf_counter() - t0, time.process_time() - c0)
    assert len(back) == args.k and len(hub.repo("bench/subset").commits) == 2, commit

    sizes = {p: len(f.content) for p, f in hub.repo("bench/subset").head.files.items()}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"pool {args.n:,} rows x {args.dim}-d, subset {args.k:,} rows; files: "
        + ", ".join(f"{p} {s / 1e6:.2f} MB" for p, s in sorted(sizes.items()) if s > 1e4)
    )
    print(f"  {'stage':<40} {'wall s':>8} {'CPU s':>8}")
    for name, (wall, cpu) in timings.items():
        print(f"  {name:<40} {wall:8.2f} {cpu:8.2f}")
    print(f"  peak RSS {rss:,.0f} MiB (after building the pool: {rss_build:,.0f} MiB)")
    hub.stop()


if __name__ == "__main__":
    main()
