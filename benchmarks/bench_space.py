"""How long a Space visitor waits: the Space's Load and Select callbacks timed on CPU.

Calls `space/app.py`'s callbacks directly (what the page runs, minus the browser): Load, then Select with each method
at k = 10% of the pool, twice per pool (the first Select embeds the pool; later ones re-use the embeddings).
Pools: the embedded 294-row IFBench sample, and ShareGPT prompt/response pairs at the Space's row cap (2000 by
default; recovered by `benchmarks/sharegpt.py`; license unstated, so benchmark use only), written to a Parquet file
and loaded through the upload path.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_space.py [--rows 2000] [--methods qdit,tokens,clusters,random]
"""

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DIVERSE_DISABLE_PROGRESS_BARS", "1")


def _load_app():
    spec = importlib.util.spec_from_file_location("hf_diverse_space_app", ROOT / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def _timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process over all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="rows of the ShareGPT pool (the Space's cap)")
    parser.add_argument("--methods", default="qdit,tokens,clusters,random")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    app = _load_app()
    methods = [m for m in args.methods.split(",") if m]
    quiet = lambda *a, **k: None

    pools = [("embedded IFBench", "Embedded sample", None)]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from benchmarks.sharegpt import sharegpt_pairs

            path = Path(tmp) / "sharegpt.parquet"
            sharegpt_pairs(args.rows).to_parquet(str(path))
            pools.append((f"ShareGPT pairs ({args.rows} rows)", "Upload a file", str(path)))
        except ImportError as e:
            print(f"skipping the ShareGPT pool: {e}")
        print(f"{'pool':<28} {'step':<28} {'wall s':>8} {'CPU s':>8}  status")
        for name, kind, upload in pools:
            loaded, t, c = _timed(app.load_source, kind, "", "train", 0, upload)
            state = loaded[0]
            print(f"{name:<28} {'load':<28} {t:8.1f} {c:8.1f}  {loaded[-1]}")
            for repeat in (1, 2):
                for method in methods:
                    out, t, c = _timed(
                        app.run_selection, state, method, 0.1, 0, 0.7, 1.0, app.NO_QUALITY, "", "", progress=quiet
                    )
                    status = out[-1].splitlines()[0]
                    step = f"select {method} (run {repeat})"
                    print(f"{name:<28} {step:<28} {t:8.1f} {c:8.1f}  {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
