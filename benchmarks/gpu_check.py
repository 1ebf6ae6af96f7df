"""GPU benchmark of the facility-location engine (run by benchmarks/gpu_check.sh; imports only hf_diverse.facility).

Synthetic clustered unit vectors (d=384, as benchmarks/bench_select.py), no downloads. Prints one table:
- exact greedy on CUDA (`lazy`, `incremental`) at N = --exact-n, and the same N=20k picks as the CPU path;
- the kNN path (`knn_greedy`, exact kNN on the GPU, `sparse`) at N = --knn-n -> k.
Each row has the wall time (synchronised), the floor (one X @ X.T of the same data on the device) and peak GPU memory.

    python benchmarks/gpu_check.py --exact-n 100000 --knn-n 1300000 --k 10000
    python benchmarks/gpu_check.py --device cpu --exact-n 3000 --knn-n 20000 --k 300   # CPU dry run
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from hf_diverse.facility import facility_location_greedy, kernels, knn_greedy


def clustered(n, d=384, seed=0, device="cpu", chunk=200_000):
    g = torch.Generator().manual_seed(seed)
    n_clusters = max(10, n // 100)
    centers = torch.randn(n_clusters, d, generator=g)
    out = torch.empty((n, d), dtype=torch.float32, device=device)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        x = centers[torch.randint(0, n_clusters, (rows,), generator=g)] + torch.randn(rows, d, generator=g)
        out[start : start + rows] = torch.nn.functional.normalize(x, dim=1).to(device)
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return out, wall, peak


def floor(x, device, block=16384):
    """One X @ X.T of x on the device, in row blocks when it would not fit (the product is discarded)."""

    def run():
        for start in range(0, x.shape[0], block):
            (x[start : start + block] @ x.T).max()

    return timed(device, run)[1]


class Rows(list):
    """Table rows, each printed as soon as it is measured (a run cut short by the time limit keeps the rest)."""

    def append(self, row):
        label, n, k, alpha, wall, peak = row
        print(f"| {label} | {n} | {k} | {alpha} | {wall:.2f} | {peak:.1f} |", flush=True)
        super().append(row)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--exact-n", type=int, default=100_000)
    p.add_argument("--knn-n", type=int, default=1_300_000)
    p.add_argument("--k", type=int, default=10_000)
    p.add_argument("--parity-n", type=int, default=20_000, help="N of the CPU/GPU same-picks check")
    p.add_argument("--parity-k", type=int, default=2_000)
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"Command: python {' '.join(sys.argv)}")
    print(f"Device: {name}; torch {torch.__version__}; numba {'yes' if kernels.HAS_NUMBA else 'no'}")
    print(f"Load average: {os.getloadavg()}")
    print("\n| run | N | k | alpha | wall s | peak GPU GiB |\n|---|---|---|---|---|---|", flush=True)
    rows = Rows()

    # same picks on CPU (numba) and on the device (torch), alpha 0 and 0.7
    x = clustered(args.parity_n)
    q = torch.from_numpy(np.random.default_rng(1).random(args.parity_n))
    for alpha in (0.0, 0.7):
        kw = dict(diversity_weight=(1 - alpha) / args.parity_n, bonus=alpha * q / args.parity_k, show_progress=False)
        cpu = facility_location_greedy(x, args.parity_k, strategy="lazy", **kw)
        dev, wall, peak = timed(device, lambda kw=kw: facility_location_greedy(x.to(device), args.parity_k, **kw))
        same = bool(np.array_equal(cpu.indices, dev.indices))
        rows.append(
            (f"exact {dev.strategy}, same picks as CPU: {same}", args.parity_n, args.parity_k, alpha, wall, peak)
        )
    del x

    x = clustered(args.exact_n, device=device)
    floor_exact = floor(x, device)
    rows.append(("floor: X @ X.T", args.exact_n, "", "", floor_exact, float("nan")))
    for strategy in ("incremental", "lazy"):
        res, wall, peak = timed(
            device, lambda s=strategy: facility_location_greedy(x, args.k, strategy=s, show_progress=False)
        )
        rows.append((f"exact {strategy} ({wall / floor_exact:.1f}x floor)", args.exact_n, args.k, 0.0, wall, peak))
    del x
    if device.type == "cuda":
        torch.cuda.empty_cache()

    x = clustered(args.knn_n, device=device)
    for alpha in (0.0, 0.7):
        q = torch.from_numpy(np.random.default_rng(2).random(args.knn_n)).to(device)
        kw = dict(diversity_weight=(1 - alpha) / args.knn_n, bonus=alpha * q / args.k, show_progress=False)
        (res, graph), wall, peak = timed(
            device, lambda kw=kw: knn_greedy(x, args.k, n_neighbors=32, knn="exact", cache=False, **kw)
        )
        label = f"kNN exact m=32 + sparse (graph {graph.info.get('build_s')} s, greedy {res.details['greedy_s']} s)"
        rows.append((label, args.knn_n, args.k, alpha, wall, peak))


if __name__ == "__main__":
    main()
