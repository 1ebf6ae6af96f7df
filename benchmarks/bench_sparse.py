"""Large-pool QDIT selection: the kNN-graph strategies against exact greedy, apricot and submodlib.

Synthetic clustered, L2-normalised embeddings (d=384: 100 topics x 20 sub-clusters with log-normal sizes, within-
cluster cosine ~0.6, nearest-neighbour cosine ~0.56, mean cosine ~0.05) are written in float32 chunks to an Arrow file
and memory-mapped with `Dataset.from_file`, so selection goes through `select_diverse` and the chunked Arrow reader
exactly as a user's pool would. Every stage runs in its own subprocess, so "peak RSS" is that stage's (it includes the
memory-mapped pages of the pool it touched).

Stages (`--stages`, default all):
- `sparse`:     select_diverse(strategy="sparse") -- kNN graph (knn="auto": torch IVF above 50k rows) + greedy on it
                with the dense cover (which gives the exact d(A)). The kNN graph is cached; `sparse-rerun` repeats
                with --alpha (default 0.7) and the quality column (scaling="range": one more greedy run at alpha=0
                and d(A) of the top-quality rows) and shows the cache hit. `--cold`: every select stage starts
                with an empty kNN cache, so each builds its graph inside the timing.
- `stochastic`: the same with strategy="stochastic" (graph from the cache).
- `exact`:      exact greedy (facility_location_greedy, strategy="auto": the stored matrix when it fits) on a random
                subsample of S rows (default 50k) with k*S/N picks, against `sparse` and `stochastic` with the same
                m and kNN method on the same subsample, at each alpha of --alphas (quality-diversity objective): the
                ratios estimate approximate/exact on the full pool.
- `apricot`:    apricot FacilityLocationSelection(metric="precomputed", optimizer="lazy") on the same kNN graph (scipy
                CSR of max(cos, 0)): the same objective, so the same picks are expected; times apricot's greedy only.
- `knn`:        kNN build time and recall@m of the torch IVF (`knn="ivf"`) and FAISS IVF-flat (`knn="faiss"`).
- `submodlib`:  submodlib FacilityLocationFunction(mode="sparse", sijs=<same CSR>) + LazyGreedy, run with the Python
                given by --submodlib-python (a separate venv: `pip install submodlib-py`).

    python benchmarks/bench_sparse.py --n 100000 --k 10000 --threads 1
    python benchmarks/bench_sparse.py --n 1000000 --k 10000 --threads 1 --stages sparse,stochastic,exact
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

D = 384


def clustered_embeddings_chunks(
    n: int, d: int = D, n_topics: int = 100, subs_per_topic: int = 20, seed: int = 0, chunk: int = 65536
):
    """Yield float32 `(rows, d)` unit-norm chunks: topics around a shared mean direction, sub-clusters around
    topics, points around sub-clusters, log-normal sub-cluster sizes."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal(d)
    mu /= np.linalg.norm(mu)
    topics = rng.standard_normal((n_topics, d))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    topics = topics + 0.4 * mu
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    subs = np.repeat(topics, subs_per_topic, 0) + rng.standard_normal((n_topics * subs_per_topic, d)) / np.sqrt(d)
    subs /= np.linalg.norm(subs, axis=1, keepdims=True)
    weights = rng.lognormal(0, 1, len(subs))
    weights /= weights.sum()
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        labels = rng.choice(len(subs), rows, p=weights)
        x = subs[labels].astype(np.float32) + rng.standard_normal((rows, d), dtype=np.float32) * np.float32(
            0.8 / np.sqrt(d)
        )
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def pool_path(workdir: Path, n: int) -> Path:
    return workdir / f"pool-{n}.arrow"


# --- stages (each in its own process) ------------------------------------------------------------------------------
def stage_gen(args) -> dict:
    import pyarrow as pa

    path = pool_path(args.workdir, args.n)
    if path.exists():
        return {"stage": "gen", "path": str(path), "cached": True}
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    schema = pa.schema([("embedding", pa.list_(pa.float32(), D)), ("quality", pa.float64())])
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for x in clustered_embeddings_chunks(args.n, seed=0):
            emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), D)
            writer.write_batch(pa.record_batch([emb, pa.array(rng.random(len(x)))], schema=schema))
    os.replace(tmp, path)
    return {"stage": "gen", "path": str(path), "seconds": round(time.perf_counter() - t0, 1)}


def _load_pool(args):
    from datasets import Dataset

    return Dataset.from_file(str(pool_path(args.workdir, args.n)))


def stage_select(args, strategy: str, rerun: bool = False) -> dict:
    from hf_diverse import get_provenance, select_diverse

    if args.cold:  # an empty kNN cache of this stage's own: the graph is built inside the timing
        import tempfile

        os.environ["HF_DIVERSE_CACHE"] = tempfile.mkdtemp(dir=args.workdir, prefix="cold-cache-")
    pool = _load_pool(args)
    extra = {"quality_column": "quality", "alpha": args.alpha} if rerun else {}
    t0 = time.perf_counter()
    subset = select_diverse(
        pool,
        args.k,
        strategy=strategy,
        n_neighbors=args.m,
        knn=args.knn,
        nprobe=args.nprobe,
        seed=0,
        show_progress=args.progress,
        **extra,
    )
    wall = time.perf_counter() - t0
    rec = get_provenance(subset)
    det = rec["details"]
    keep = ("knn", "graph_nnz", "knn_cache", "build_s", "load_s", "greedy_s", "objective_s", "sample_size")
    keep += ("cover_screen", "cover_batches", "cover_batches_screened")
    out = {
        "stage": f"{strategy}{'-rerun' if rerun else ''}",
        "n": args.n,
        "k": args.k,
        "m": args.m,
        "alpha": args.alpha if rerun else 0.0,
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "coverage": rec["objective"]["coverage"],
        "facility_location": rec["objective"]["facility_location"],
        **{key: det[key] for key in keep if key in det},
    }
    return out


def _subsample(args):
    import torch

    from hf_diverse.embeddings import read_embeddings_chunked

    s = min(args.subsample, args.n)
    rows = np.sort(np.random.default_rng(7).choice(args.n, s, replace=False))
    x = read_embeddings_chunked(_load_pool(args), "embedding", rows=rows)
    return x, max(1, round(args.k * s / args.n)), torch


def stage_exact(args) -> dict:
    """Exact greedy (`auto`: the compiled stored-matrix loop when S fits, else `blocked`) against `sparse` and
    `stochastic` on a random subsample, k scaled to keep N/k, at each alpha of --alphas (quality: the pool's column,
    min-max rescaled), compared on the quality-diversity objective (1 - alpha) d(A)/N + alpha mean q~."""
    from hf_diverse.facility import facility_location_greedy, facility_location_objective, knn_greedy

    x, k_sub, _ = _subsample(args)
    n = x.shape[0]
    rows = np.sort(np.random.default_rng(7).choice(args.n, min(args.subsample, args.n), replace=False))
    q = np.asarray(_load_pool(args).select(rows)["quality"], dtype=np.float64)
    q = (q - q.min()) / max(q.max() - q.min(), 1e-12)
    knn = args.knn if args.knn != "auto" else ("ivf" if args.n > 50_000 else "exact")
    out = {"stage": "exact-vs-sparse (subsample)", "n": n, "k": k_sub, "m": args.m}
    for alpha in args.alphas:
        w, bonus = (1 - alpha) / n, alpha * q / k_sub

        def qd(idx, alpha=alpha):
            return (1 - alpha) * facility_location_objective(x, idx) / n + alpha * float(q[idx].mean())

        t0 = time.perf_counter()
        exact = facility_location_greedy(x, k_sub, bonus=bonus, diversity_weight=w, show_progress=args.progress)
        out[f"exact_s@{alpha}"] = round(time.perf_counter() - t0, 1)
        out[f"exact_strategy@{alpha}"] = exact.strategy
        ref = qd(exact.indices)
        for strategy in ("sparse", "stochastic"):
            t0 = time.perf_counter()
            res, graph = knn_greedy(
                x,
                k_sub,
                bonus=bonus,
                diversity_weight=w,
                strategy=strategy,
                n_neighbors=args.m,
                knn=knn,
                nprobe=args.nprobe,
                cache=False,
                show_progress=args.progress,
            )
            out[f"{strategy}_s@{alpha}"] = round(time.perf_counter() - t0, 1)
            out[f"{strategy}_ratio@{alpha}"] = round(qd(res.indices) / ref, 5)
    out["knn"] = graph.knn
    out["peak_rss_gib"] = round(peak_rss_gib(), 2)
    return out


def _graph_csr(args):
    """The cached kNN graph of the `sparse` stage as scipy CSR (cache hit: the same graph that run used)."""
    import scipy.sparse as sp

    from hf_diverse.embeddings import read_embeddings_chunked
    from hf_diverse.facility.knn import build_knn_graph

    x = read_embeddings_chunked(_load_pool(args), "embedding")
    graph = build_knn_graph(x, args.m, knn=args.knn, nprobe=args.nprobe, show_progress=False)
    csr = sp.csr_matrix((graph.values.numpy(), graph.indices.numpy(), graph.indptr.numpy()), shape=(graph.n, graph.n))
    return x, csr, graph


def stage_apricot(args) -> dict:
    from apricot import FacilityLocationSelection

    from hf_diverse.facility import facility_location_objective, sparse_facility_location_greedy

    x, csr, graph = _graph_csr(args)
    t0 = time.perf_counter()
    ours = sparse_facility_location_greedy(graph, args.k, show_progress=False).indices
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    sel = FacilityLocationSelection(args.k, metric="precomputed", optimizer="lazy").fit(csr)
    t_apricot = time.perf_counter() - t0
    picks = np.asarray(sel.ranking)
    return {
        "stage": "apricot (lazy, same graph)",
        "n": args.n,
        "k": args.k,
        "apricot_greedy_s": round(t_apricot, 1),
        "ours_greedy_s": round(t_ours, 1),
        "graph_cache": graph.info.get("cache"),
        "apricot_coverage": facility_location_objective(x, picks) / args.n,
        "ours_coverage": facility_location_objective(x, ours) / args.n,
        "same_first_100": bool(np.array_equal(picks[:100], ours[:100])),
        "same_set": len(set(picks.tolist()) & set(ours.tolist())) / args.k,
        "peak_rss_gib": round(peak_rss_gib(), 2),
    }


def stage_knn(args) -> dict:
    """kNN build time and recall@m (against exact top-m of 1000 random rows) of the torch IVF and FAISS IVF-flat."""
    import torch

    from hf_diverse.embeddings import read_embeddings_chunked
    from hf_diverse.facility.knn import knn_faiss, knn_ivf

    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    x = read_embeddings_chunked(_load_pool(args), "embedding")
    queries = torch.as_tensor(np.sort(np.random.default_rng(3).choice(args.n, 1000, replace=False)))
    truth = torch.topk(x[queries] @ x.T, args.m, dim=1).indices
    out = {"stage": "knn (ivf vs faiss)", "n": args.n, "m": args.m, "nprobe": args.nprobe}
    for name, build in (
        ("ivf", lambda: knn_ivf(x, args.m, nprobe=args.nprobe)),
        ("faiss", lambda: knn_faiss(x, args.m, nprobe=args.nprobe)[:2]),
    ):
        t0 = time.perf_counter()
        _, indices = build()
        out[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        found = indices[queries]
        out[f"{name}_recall"] = float(
            np.mean([len(set(a) & set(b)) / args.m for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
        )
    return out


def stage_submodlib(args) -> dict:
    import scipy.sparse as sp

    x, csr, _ = _graph_csr(args)
    graph_path = args.workdir / f"graph-{args.n}.npz"
    sp.save_npz(graph_path, csr)
    script = (
        "import sys, time, json, numpy as np, scipy.sparse as sp\n"
        "from submodlib import FacilityLocationFunction\n"
        "g = sp.load_npz(sys.argv[1]).tocsr(); k = int(sys.argv[2]); m = int(sys.argv[3])\n"
        "t = time.perf_counter()\n"
        "f = FacilityLocationFunction(n=g.shape[0], mode='sparse', sijs=g, num_neighbors=m)\n"
        "res = f.maximize(budget=k, optimizer='LazyGreedy', stopIfZeroGain=False, stopIfNegativeGain=False,"
        " show_progress=False)\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'picks': [int(i) for i, _ in res]}))\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [args.submodlib_python, "-c", script, str(graph_path), str(args.k), str(args.m)],
        capture_output=True,
        text=True,
        timeout=args.timeout,
    )
    if proc.returncode != 0:
        return {"stage": "submodlib", "error": proc.stderr.strip().splitlines()[-3:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    from hf_diverse.facility import facility_location_objective

    picks = np.asarray(out["picks"])
    return {
        "stage": "submodlib (LazyGreedy, same graph)",
        "n": args.n,
        "k": args.k,
        "greedy_s": round(out["s"], 1),
        "process_s": round(time.perf_counter() - t0, 1),
        "picked": len(picks),
        "coverage": facility_location_objective(x, picks) / args.n,
    }


STAGES = {
    "gen": stage_gen,
    "sparse": lambda a: stage_select(a, "sparse"),
    "sparse-rerun": lambda a: stage_select(a, "sparse", rerun=True),
    "stochastic": lambda a: stage_select(a, "stochastic"),
    "exact": stage_exact,
    "knn": stage_knn,
    "apricot": stage_apricot,
    "submodlib": stage_submodlib,
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--k", type=int, default=10_000)
    p.add_argument("--m", type=int, default=32, help="n_neighbors")
    p.add_argument("--knn", default="auto")
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--subsample", type=int, default=50_000, help="rows of the exact-greedy subsample")
    p.add_argument(
        "--alphas", default="0,0.3,0.7", type=lambda s: [float(a) for a in s.split(",")], help="alphas of `exact`"
    )
    p.add_argument("--alpha", type=float, default=0.7, help="alpha of `sparse-rerun` (with the quality column)")
    p.add_argument("--cold", action="store_true", help="each select stage starts with an empty kNN cache")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--stages", default="gen,sparse,sparse-rerun,stochastic,exact,apricot,knn,submodlib")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/hf_diverse_bench_sparse"))
    p.add_argument("--submodlib-python", default=None, help="python of a venv with submodlib-py installed")
    p.add_argument("--timeout", type=int, default=3600)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # internal: run one stage in this process
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_DIVERSE_CACHE", str(args.workdir / "cache"))
    if args.stage:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if not args.progress:
            from hf_diverse import disable_progress_bars

            disable_progress_bars()
        print("RESULT " + json.dumps(STAGES[args.stage](args), default=str), flush=True)
        return
    for stage in args.stages.split(","):
        if stage == "submodlib" and not args.submodlib_python:
            print(json.dumps({"stage": "submodlib", "skipped": "no --submodlib-python"}))
            continue
        cmd = [sys.executable, __file__, "--stage", stage] + [a for a in sys.argv[1:]]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(json.dumps({"stage": stage, "error": proc.stderr.strip().splitlines()[-5:]}), flush=True)
            continue
        result = json.loads(lines[-1][len("RESULT ") :])
        result["process_wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
