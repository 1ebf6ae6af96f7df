"""Exact QDIT/facility-location selection vs peers, side by side in one process.

Synthetic clustered, L2-normalised float32 embeddings (d=384). For each (N, k):
- the floor: one float32 `X @ X.T` (every initial gain needs every similarity);
- hf_diverse `facility_location_greedy` (strategy auto -> incremental when S fits, plus any --strategies);
- apricot-select FacilityLocationSelection on max(cos, 0) (`metric='precomputed'`, float64 matrix), lazy;
- submodlib FacilityLocationFunction (dense, LazyGreedy) when it is installed.
Each run reports wall time, peak RSS above the baseline (sampled every 5 ms by a thread) and the objective
d(A) = sum_v max_{a in A} max(0, cos), recomputed the same way for every method. Peers whose dense matrix would not
fit in the available memory are skipped and said so.

Usage:
    python benchmarks/bench_select.py --sizes 20000:1000,20000:5000,50000:5000 --out benchmarks/out/select.json
"""

import argparse
import gc
import json
import threading
import time

import numpy as np
import psutil
import torch

from hf_diverse.facility import facility_location_greedy, facility_location_objective


def clustered_embeddings(n, d=384, n_clusters=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    n_clusters = n_clusters or max(10, n // 100)
    centers = torch.randn(n_clusters, d, generator=g)
    labels = torch.randint(0, n_clusters, (n,), generator=g)
    x = centers[labels] + 1.0 * torch.randn(n, d, generator=g)
    return torch.nn.functional.normalize(x, dim=1).contiguous()


class PeakRSS:
    """Peak resident memory of this process above its level at start, sampled by a thread."""

    def __init__(self, interval=0.005):
        self.interval = interval
        self.proc = psutil.Process()

    def __enter__(self):
        gc.collect()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.delta_gib = (self.peak - self.base) / 2**30


def run(name, fn, x):
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        picks = fn()
        wall = time.perf_counter() - t0
    obj = facility_location_objective(x, np.asarray(picks))
    print(f"  {name:<28} {wall:8.2f} s  peak +{mem.delta_gib:6.2f} GiB  objective {obj:.6f}", flush=True)
    return {"method": name, "wall_s": wall, "peak_rss_delta_gib": mem.delta_gib, "objective": obj}


def bench(n, k, strategies, peers, mem_fraction=0.7):
    x = clustered_embeddings(n)
    xn = x.numpy()
    avail = psutil.virtual_memory().available
    rows = []
    print(
        f"N={n} k={k} d={x.shape[1]} threads={torch.get_num_threads()} available={avail / 2**30:.1f} GiB", flush=True
    )

    def floor():
        s = x @ x.T
        del s
        return [0]

    with PeakRSS() as mem:
        t0 = time.perf_counter()
        floor()
        floor_s = time.perf_counter() - t0
    rows.append({"method": "floor X@X.T", "wall_s": floor_s, "peak_rss_delta_gib": mem.delta_gib, "objective": None})
    print(f"  {'floor X@X.T (float32)':<28} {floor_s:8.2f} s  peak +{mem.delta_gib:6.2f} GiB", flush=True)
    for strategy in strategies:
        rows.append(
            run(
                f"hf_diverse {strategy}",
                lambda s=strategy: facility_location_greedy(x, k, strategy=s, show_progress=False).indices,
                x,
            )
        )
    if "apricot" in peers:
        need = 3 * 8 * n * n  # float64 matrix plus apricot's working copies
        if need > mem_fraction * avail:
            print(f"  apricot lazy: skipped, needs ~{need / 2**30:.0f} GiB", flush=True)
            rows.append({"method": "apricot lazy", "skipped": f"needs ~{need / 2**30:.0f} GiB"})
        else:
            from apricot import FacilityLocationSelection

            def apricot_lazy():
                sims = np.maximum(xn.astype(np.float64) @ xn.T.astype(np.float64), 0)
                return FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(sims).ranking

            rows.append(run("apricot lazy (dense)", apricot_lazy, x))
    if "submodlib" in peers:
        try:
            from submodlib import FacilityLocationFunction
        except ImportError:
            print("  submodlib: not installed", flush=True)
        else:
            need = 2 * 4 * n * n
            if need > mem_fraction * avail:
                print(f"  submodlib: skipped, needs ~{need / 2**30:.0f} GiB", flush=True)
            else:

                def submodlib_lazy():
                    sims = np.maximum(xn @ xn.T, 0).astype(np.float32)
                    obj = FacilityLocationFunction(n=n, mode="dense", sijs=sims, separate_rep=False)
                    greedy = obj.maximize(
                        budget=k, optimizer="LazyGreedy", stopIfZeroGain=False, stopIfNegativeGain=False, verbose=False
                    )
                    return [i for i, _ in greedy]

                rows.append(run("submodlib LazyGreedy (dense)", submodlib_lazy, x))
    ours = [r for r in rows if r["method"].startswith("hf_diverse")]
    best = min(ours, key=lambda r: r["wall_s"])
    for r in rows:
        if r.get("wall_s") and r is not best:
            r["time_ratio_vs_best_hf_diverse"] = r["wall_s"] / best["wall_s"]
    best["time_ratio_vs_floor"] = best["wall_s"] / floor_s
    exact = [r for r in rows if r.get("objective") is not None]
    ref = max(r["objective"] for r in exact)
    for r in exact:
        r["objective_rel_diff_vs_best"] = (ref - r["objective"]) / ref
    return {"n": n, "k": k, "rows": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20000:1000,20000:5000,50000:1000,50000:5000", help="N:k pairs")
    p.add_argument("--strategies", default="auto", help="comma-separated hf_diverse strategies")
    p.add_argument("--peers", default="apricot,submodlib")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for pair in args.sizes.split(","):
        n, k = map(int, pair.split(":"))
        results.append(bench(n, k, args.strategies.split(","), args.peers.split(",")))
    if args.out:
        import os

        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
