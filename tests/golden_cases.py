"""The cases of the golden-picks test: every method (and every strategy of QDIT) on the bundled IFBench pool.

The pool's embeddings are stored (float16, `tests/data/ifbench_minilm_fp16.npy`) so that the picks do not depend on
the encoder's floating-point path; quality is the response length, ADG scores are seeded random numbers.
"""

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
EMBEDDINGS = DATA / "ifbench_minilm_fp16.npy"
SEEDS = (0, 1)
K = 30

# name -> select_diverse keyword arguments (besides k, seed, show_progress)
CASES = {
    **{f"qdit-{s}": dict(method="qdit", strategy=s) for s in ("dense", "lazy", "incremental", "blocked")},
    **{
        f"qdit-{s}-alpha0.7": dict(method="qdit", strategy=s, quality_column="quality", alpha=0.7)
        for s in ("dense", "lazy", "incremental", "blocked")
    },
    "qdit-sparse": dict(method="qdit", strategy="sparse", n_neighbors=16, knn="exact", knn_cache=False),
    "qdit-sparse-alpha0.3": dict(
        method="qdit",
        strategy="sparse",
        n_neighbors=16,
        knn="exact",
        knn_cache=False,
        quality_column="quality",
        alpha=0.3,
    ),
    # the scaling of hf_diverse before the "range" default: picks recorded before that change, kept as they were
    **{
        f"qdit-{s}-alpha0.7-mean": dict(method="qdit", strategy=s, quality_column="quality", alpha=0.7, scaling="mean")
        for s in ("lazy", "blocked")
    },
    "qdit-sparse-alpha0.3-mean": dict(
        method="qdit",
        strategy="sparse",
        n_neighbors=16,
        knn="exact",
        knn_cache=False,
        quality_column="quality",
        alpha=0.3,
        scaling="mean",
    ),
    "qdit-lazy-alpha0.7-raw": dict(method="qdit", strategy="lazy", quality_column="quality", alpha=0.7, scaling="raw"),
    "qdit-stochastic": dict(method="qdit", strategy="stochastic", n_neighbors=16, knn="exact", knn_cache=False),
    "qdit-greedi": dict(method="qdit", strategy="greedi"),
    "tokens-1.0": dict(method="tokens", diversity=1.0),
    "tokens-0.5": dict(method="tokens", diversity=0.5),
    "tokens-0.0": dict(method="tokens", diversity=0.0),
    "clusters-1.0": dict(method="clusters", diversity=1.0),
    "clusters-0.5": dict(method="clusters", diversity=0.5, quality_column="quality"),
    "qdit-threshold": dict(method="qdit-threshold", tau=0.6, quality_column="quality"),
    "qdit-threshold-noquality": dict(method="qdit-threshold", tau=0.6),
    "qdit-cluster": dict(method="qdit-cluster", quality_column="quality"),
    "adg": dict(method="adg"),
    "random": dict(method="random"),
    "quality": dict(method="quality", quality_column="quality"),
}


def golden_pool():
    """The bundled IFBench pool with a stored `embedding`, a `quality` column and a precomputed `adg_score`."""
    # imported here: `tests/data/make_golden.py` imports this module before it sets HF_HUB_OFFLINE
    from datasets import List, Value

    from hf_diverse.data import load_embedded_default

    pool = load_embedded_default()
    emb = np.load(EMBEDDINGS).astype(np.float64)
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    pool = pool.add_column("embedding", list(emb))
    pool = pool.cast_column("embedding", List(Value("float32"), length=emb.shape[1]))
    pool = pool.add_column("quality", [float(len(r)) for r in pool["response"]])
    return pool.add_column("adg_score", np.random.default_rng(123).random(len(pool)).tolist())


def run_case(pool, name: str, seed: int) -> list[int]:
    """Row indices (in pick order) that `name` selects from `pool` with `seed`."""
    # imported here, like in `golden_pool`
    from hf_diverse import select_diverse

    kwargs = dict(CASES[name])
    pool = pool.add_column("row_id", list(range(len(pool))))
    subset = select_diverse(pool, k=K, seed=seed, show_progress=False, **kwargs)
    return [int(i) for i in subset["row_id"]]
