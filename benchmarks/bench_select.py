"""Exact facility-location selection against its peers and the hardware floor, side by side in one process.

Synthetic clustered, L2-normalised float32 embeddings (d=384, N/100 clusters, unit-variance noise), or with
`--embeddings PATH.npy` the first N rows of real ones (`benchmarks/real_embeddings.py` writes ShareGPT prompts
embedded with all-MiniLM-L6-v2). For each N:k pair and alpha, one table row per run:

- `floor`: one float32 `X @ X.T` (every first gain needs every similarity), the time everything is compared with
  (where the N x N product does not fit in memory, the same product in 64 MiB row blocks);
- `hf_diverse <strategy>`: `facility_location_greedy` with QDIT's score (w = (1 - alpha) / N, bonus = alpha q / k,
  quality uniform in [0, 1)), similarities included in the time; `blocked` once per `--blocked-fractions` entry,
  its kept similarities given that fraction of the N x N float32 matrix's memory (`blocked-torch`: the torch loop);
- `apricot lazy (dense)`: apricot-select `FacilityLocationSelection(metric="precomputed", optimizer="lazy")` on the
  float32 `max(X X^T, 0)` built inside the timing (a small warm-up call first, so numba compilation is not timed);
- `apricot lazy (kNN graph)`: the same on a scipy CSR of hf_diverse's symmetrised m-NN graph (built inside the
  timing), next to `hf_diverse sparse` on the same graph;
- `submodlib LazyGreedy (dense)` when `submodlib` (`pip install submodlib-py`) imports.
Peers run at alpha = 0 only (none has a per-row bonus). Columns: wall time, time / floor, apricot's time / this
run's, peak RSS above the level before the run (a thread samples it every 5 ms), and the objective of the picks,
(1 - alpha) d(A) / N + alpha mean(q) with the dense d(A), relative to exact greedy's (`hf_diverse lazy`). Runs whose
dense matrix would not fit in the available memory are skipped and say so. hf_diverse's kernels and apricot's are
compiled before anything is timed. A second floor, `floor on huge pages`, writes the same product into a buffer on
2 MiB pages, as hf_diverse's S is (`hf_diverse.facility.memory.page_buffer`); both ratios are printed. Each timed
run, the floors' included, starts right after touching and freeing as much memory as it will use (`warm_memory`): on
the VMs these figures come from, a huge page (numpy's large arrays, apricot's among them, ask for them) left free for
a second costs ~20-40x more to fault in again, which made single runs vary by seconds (4 KiB pages slow down less and
only for larger runs: ~5x for 10 GB, not for 1.6 GB).

    python benchmarks/bench_select.py --sizes 20000:2000,20000:5000 --alphas 0,0.7
    python benchmarks/bench_select.py --sizes 50000:5000 --alphas 0 --peers none   # apricot needs > 24 GiB
    python benchmarks/bench_select.py --sizes 2000:200 --alphas 0,0.7              # smoke run, ~1 min
    python benchmarks/bench_select.py --embeddings benchmarks/out/sharegpt_prompts_20k.npy --peers none
"""

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time

import numpy as np
import psutil
import torch

from hf_diverse.facility import (
    blocked,
    build_knn_graph,
    facility_location_greedy,
    facility_location_objective,
    graph_kernels,
    kernels,
    sparse_facility_location_greedy,
)
from hf_diverse.facility.memory import page_buffer


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
        self.base = self.peak = self.proc.memory_info().rss
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
        self.gib = (self.peak - self.base) / 2**30


def warm_memory(nbytes):
    """Touch `nbytes` of fresh memory (numpy asks for huge pages for it) and free it. This VM's host takes back guest
    memory that stays free for about a second, and a 2 MiB page it took back costs ~5-30 ms to fault in again,
    against ~0.2 ms for one freed just now: so a run that allocates on huge pages (numpy's large arrays, apricot's
    matrix among them, and hf_diverse's S) took up to ~8 s longer per 2 GiB depending on how long the memory had been
    free (4 KiB pages slow down less and only for larger runs: 10 GB took 8.9 s instead of 1.8 s, 1.6 GB no
    longer). Each timed run starts right after this, with as much memory as it will use, so that every run, peers
    and floors included, finds its pages backed (as on a machine without a balloon)."""
    if nbytes > 0:
        a = np.empty(int(nbytes) // 8, dtype=np.int64)
        a[::512] = 0
        del a


def timed(fn, warm=0):
    # with a margin: the run's buffers besides its main arrays (X in float64, product blocks, gains)
    warm_memory(min(1.25 * warm + 2**28, 0.6 * psutil.virtual_memory().available))
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        picks = fn()
        wall = time.perf_counter() - t0
    return picks, wall, mem.gib


def qd_objective(x, picks, alpha, q):
    picks = np.asarray(picks, dtype=np.int64)
    d = facility_location_objective(x, picks) / x.shape[0]
    return (1 - alpha) * d + (alpha * float(q[picks].mean()) if alpha else 0.0)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    numba_version = kernels.numba.__version__ if kernels.HAS_NUMBA else "not installed"
    return (
        f"{cpu}, {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; python "
        f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), numba "
        f"{numba_version}"
    )


def warm_up(peers):
    kernels.warm_up()
    blocked.warm_up()
    graph_kernels.warm_up()
    if "apricot" in peers:
        from apricot import FacilityLocationSelection

        s = np.maximum(np.eye(20, dtype=np.float32), 0)
        FacilityLocationSelection(3, metric="precomputed", optimizer="lazy").fit(s)
        import scipy.sparse

        FacilityLocationSelection(3, metric="precomputed", optimizer="lazy").fit(scipy.sparse.csr_matrix(s))


def apricot_dense(xn, k):
    from apricot import FacilityLocationSelection

    s = np.maximum(xn @ xn.T, np.float32(0))  # float32, as ours; metric="cosine" would square it
    return FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(s).ranking


def apricot_graph(x, k, m):
    import scipy.sparse
    from apricot import FacilityLocationSelection

    g = build_knn_graph(x, m, knn="exact", cache=False, show_progress=False)
    n = g.n
    csr = scipy.sparse.csr_matrix((g.values.numpy(), g.indices.numpy(), g.indptr.numpy()), shape=(n, n))
    return FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(csr).ranking


def ours_graph(x, k, m, w, bonus, strategy):
    g = build_knn_graph(x, m, knn="exact", cache=False, show_progress=False)
    return sparse_facility_location_greedy(g, k, bonus=bonus, diversity_weight=w, strategy=strategy).indices


def submodlib_dense(xn, k):
    from submodlib import FacilityLocationFunction

    s = np.maximum(xn @ xn.T, np.float32(0))
    f = FacilityLocationFunction(n=len(xn), mode="dense", sijs=s, separate_rep=False)
    picks = f.maximize(budget=k, optimizer="LazyGreedy", stopIfZeroGain=False, stopIfNegativeGain=False, verbose=False)
    return [i for i, _ in picks]


def load_embeddings(path, n):
    """The first n rows of an (N, d) `.npy` of embeddings, as float32 unit rows."""
    a = np.load(path, mmap_mode="r")
    if a.ndim != 2 or len(a) < n:
        raise SystemExit(f"{path} holds {a.shape}, not at least {n} rows of embeddings")
    x = torch.from_numpy(np.array(a[:n], dtype=np.float32))
    return torch.nn.functional.normalize(x, dim=1).contiguous()


def bench(n, k, alpha, strategies, peers, m, blocked_fractions, embeddings=None):
    x = clustered_embeddings(n) if embeddings is None else load_embeddings(embeddings, n)
    xn = x.numpy()
    q = np.random.default_rng(1).random(n)
    w, bonus = (1 - alpha) / n, torch.from_numpy(alpha * q / k)
    avail = psutil.virtual_memory().available
    if 4 * n * n < 0.5 * avail:
        _, floor_s, floor_gib = timed(lambda: (x @ x.T, [0])[1], warm=4 * n * n)
        rows = [{"run": "floor: one fp32 X @ X.T", "wall_s": floor_s, "peak_gib": floor_gib}]
        # the same product written into a buffer on 2 MiB pages, as hf_diverse's S is (`memory.page_buffer`)
        paged = {}

        def huge_floor():
            out, paged["pages"] = page_buffer((n, n))
            torch.matmul(x, x.T, out=torch.from_numpy(out))
            return [0]

        _, huge_s, huge_gib = timed(huge_floor, warm=4 * n * n)
        name = f"floor on huge pages: one fp32 X @ X.T [pages: {paged['pages']}]"
        rows.append({"run": name, "wall_s": huge_s, "peak_gib": huge_gib})
    else:  # the product does not fit: its row blocks, one buffer
        _, floor_s, floor_gib = timed(lambda: blocked_product(x), warm=64 * 2**20)
        rows = [{"run": "floor: one fp32 X @ X.T (64 MiB row blocks)", "wall_s": floor_s, "peak_gib": floor_gib}]

    def add(name, fn, need=0, warm=0):
        if need > 0.8 * avail:
            rows.append({"run": name, "skipped": f"needs ~{need / 2**30:.0f} GiB"})
            return
        picks, wall, gib = timed(fn, warm=max(need, warm))
        details = getattr(picks, "details", {})
        if "pages" in details:
            name += f" [pages: {details['pages']}]"
        if "blocked_recomputed_rows" in details:  # what the blocked mode recomputed, and which picks it guessed
            guessed = details.get("blocked_picks_guessed", [])
            name += f" [recomputed {details['blocked_recomputed_rows'] / n:.2f} N rows; picks guessed: "
            name += f"{''.join('y' if g else 'n' for g in guessed) or 'none'}]"
        picks = getattr(picks, "indices", picks)
        rows.append({"run": name, "wall_s": wall, "peak_gib": gib, "objective": qd_objective(x, picks, alpha, q)})

    for strategy in strategies:
        kwargs = dict(bonus=bonus, diversity_weight=w, show_progress=False)
        if strategy in ("sparse", "stochastic"):
            add(f"hf_diverse {strategy} (m={m})", lambda s=strategy: ours_graph(x, k, m, w, bonus, s))
        elif strategy == "blocked":
            for fraction in blocked_fractions:  # the kept similarities take this fraction of S's 4 N^2 bytes
                kw = dict(kwargs, memory_budget=int(fraction * 4 * n * n), backend="numba")
                name = f"hf_diverse blocked (kept: {fraction:g} of S)"
                add(
                    name,
                    lambda kw=kw: facility_location_greedy(x, k, strategy="blocked", **kw),
                    0,
                    kw["memory_budget"],
                )
        elif strategy == "blocked-torch":  # the torch loop (lazy greedy, recomputed rows)
            kw = dict(kwargs, backend="torch")
            add("hf_diverse blocked (torch)", lambda kw=kw: facility_location_greedy(x, k, strategy="blocked", **kw))
        else:
            add(
                f"hf_diverse {strategy}",
                lambda s=strategy, kw=kwargs: facility_location_greedy(x, k, strategy=s, **kw),
                4 * n * n + 4 * n * n // 16,  # S and its block maxima
            )
    if alpha == 0:
        if "apricot" in peers:
            add("apricot lazy (dense, float32)", lambda: apricot_dense(xn, k), 3 * 4 * n * n)
            add(f"apricot lazy (kNN graph, m={m})", lambda: apricot_graph(x, k, m))
        if "submodlib" in peers:
            try:
                import submodlib  # noqa: F401
            except ImportError:
                rows.append({"run": "submodlib LazyGreedy (dense)", "skipped": "not installed"})
            else:
                add("submodlib LazyGreedy (dense)", lambda: submodlib_dense(xn, k), 3 * 4 * n * n)
    # the exact reference by its name before any bracketed note (the pages it got)
    ref = next((r for r in rows if r["run"].split(" [")[0] == "hf_diverse lazy" and "objective" in r), None)
    apricot = next((r for r in rows if r["run"].startswith("apricot lazy (dense") and "wall_s" in r), None)
    huge = next((r["wall_s"] for r in rows if r["run"].startswith("floor on huge pages")), None)
    for r in rows:
        if "wall_s" in r:
            r["x_floor"] = r["wall_s"] / floor_s
            if huge is not None:
                r["x_huge_floor"] = r["wall_s"] / huge
            if apricot is not None and r is not apricot and not r["run"].startswith("floor"):
                r["apricot_over_this"] = apricot["wall_s"] / r["wall_s"]
        if ref is not None and "objective" in r:
            r["objective_ratio"] = r["objective"] / ref["objective"]
    return rows


def blocked_product(x, block_bytes=64 * 2**20):
    """X @ X.T a block of rows at a time into one buffer (the floor where the N x N product does not fit)."""
    n = x.shape[0]
    rows = max(1, block_bytes // (4 * n))
    out = torch.empty((rows, n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        torch.matmul(x[start:stop], x.T, out=out[: stop - start])
    return [0]


def fmt(v, spec):
    return format(v, spec) if v is not None else ""


def print_table(results, command, load_before, data):
    print(f"\nCommand: {command}")
    print(f"Machine: {machine()}")
    print(f"Embeddings: {data}")
    print(f"Load average (1, 5, 15 min): before {load_before}, after {tuple(round(v, 2) for v in os.getloadavg())}")
    print()
    print(
        "| N | k | alpha | run | wall s | x floor | x huge-page floor | apricot / this | peak RSS GiB "
        "| objective / exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (n, k, alpha), rows in results:
        for r in rows:
            if "skipped" in r:
                print(f"| {n} | {k} | {alpha} | {r['run']} | skipped: {r['skipped']} | | | | | |")
                continue
            print(
                f"| {n} | {k} | {alpha} | {r['run']} | {r['wall_s']:.2f} | {fmt(r.get('x_floor'), '.2f')} | "
                f"{fmt(r.get('x_huge_floor'), '.2f')} | {fmt(r.get('apricot_over_this'), '.1f')} | "
                f"{r['peak_gib']:.2f} | "
                f"{fmt(r.get('objective_ratio'), '.6f')} |"
            )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20000:2000,20000:5000", help="comma-separated N:k pairs")
    p.add_argument("--alphas", default="0,0.7", help="comma-separated alpha values")
    p.add_argument(
        "--strategies",
        default="lazy,incremental,blocked,sparse,stochastic",
        help="hf_diverse strategies; also blocked-torch (the torch loop of blocked)",
    )
    p.add_argument(
        "--blocked-fractions",
        default="0.125,0.25,0.5",
        help="blocked runs: memory for the kept similarities, as fractions of the N x N float32 matrix",
    )
    p.add_argument("--peers", default="apricot,submodlib", help="apricot, submodlib, or none")
    p.add_argument("--n-neighbors", type=int, default=32, help="m of the kNN-graph runs")
    p.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: all cores)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.add_argument("--embeddings", default=None, help="an (N, d) .npy of real embeddings instead of synthetic ones")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        if kernels.HAS_NUMBA:
            kernels.numba.set_num_threads(args.threads)
    peers = set(args.peers.split(",")) - {"none"}
    strategies = args.strategies.split(",")
    fractions = [float(f) for f in args.blocked_fractions.split(",")]
    if "lazy" not in strategies:
        strategies.insert(0, "lazy")  # exact greedy: the objective every run is compared with
    load_before = tuple(round(v, 2) for v in os.getloadavg())
    warm_up(peers)
    results = []
    for pair in args.sizes.split(","):
        n, k = map(int, pair.split(":"))
        for alpha in map(float, args.alphas.split(",")):
            print(f"running N={n} k={k} alpha={alpha} ...", file=sys.stderr, flush=True)
            rows = bench(n, k, alpha, strategies, peers, args.n_neighbors, fractions, args.embeddings)
            results.append(((n, k, alpha), rows))
    data = args.embeddings or "synthetic clustered (d=384, N/100 clusters)"
    print_table(results, " ".join(["python", *sys.argv]), load_before, data)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            out = [{"n": n, "k": k, "alpha": a, "embeddings": data, "rows": rows} for (n, k, a), rows in results]
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
