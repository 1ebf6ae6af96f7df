"""`hf_diverse.facility.greedi`: GreeDi on 2 `gloo` processes on 127.0.0.1 (spawned with torch.multiprocessing)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from datasets import Dataset, load_from_disk

from hf_diverse import get_provenance, select_diverse
from hf_diverse.facility import STRATEGIES, facility_location_greedy, facility_location_objective, greedi, shard_rows
from tests.helpers import qdit_greedy, qdit_terms

N, K, WORLD = 2000, 30, 2
REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def data():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((25, 32))
    labels = rng.choice(25, N, p=rng.dirichlet(np.ones(25)))
    a = centers[labels] + 0.6 * rng.standard_normal((N, 32))
    x = torch.from_numpy((a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32))
    return x, rng.random(N)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, q = data()
        runs = {
            "a": greedi(x, K, seed=0, show_progress=False),
            "b": greedi(x, K, seed=0, show_progress=False),
            "seed1": greedi(x, K, seed=1, show_progress=False),
            "quality": greedi(x, K, **qdit_terms(q, 0.5, N, K), seed=0, show_progress=False),
            "sparse_local": greedi(x, K, seed=0, local_strategy="sparse", n_neighbors=32, show_progress=False),
        }
        out = {
            name: {
                "indices": r.indices.tolist(),
                "coverage": r.coverage,
                "candidates": r.candidates,
                "local_strategy": r.local_strategy,
            }
            for name, r in runs.items()
        }
        ds = Dataset.from_dict({"embedding": x.numpy().tolist(), "q": q, "id": list(range(N))})
        # scaling="mean" is the score `qdit_terms` writes out; the default "range" must agree across ranks too
        for name, scaling in (("select", "mean"), ("select_range", "range")):
            sub = select_diverse(
                ds, K, quality_column="q", alpha=0.5, strategy="greedi", scaling=scaling, show_progress=False
            )
            record = get_provenance(sub)
            out[name] = {"ids": list(sub["id"]), "details": record["details"], "objective": record["objective"]}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("greedi")
    mp.spawn(_worker, args=(WORLD, free_port(), str(out)), nprocs=WORLD, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_shards_partition_the_pool():
    shards = [shard_rows(N, r, 3, seed=5) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(N))
    assert all(abs(len(s) - N / 3) <= 1 for s in shards)
    np.testing.assert_array_equal(shards[0], shard_rows(N, 0, 3, seed=5))
    assert not np.array_equal(shards[0], shard_rows(N, 0, 3, seed=6))


def test_greedi_two_gloo_ranks(two_ranks):
    rank0, rank1 = two_ranks
    assert rank0 == rank1  # every rank returns the same picks
    x, q = data()
    single = facility_location_greedy(x, K, strategy="lazy", show_progress=False)
    for name in ("a", "seed1", "sparse_local"):
        run = rank0[name]
        assert len(run["indices"]) == K and len(set(run["indices"])) == K
        assert run["candidates"] == WORLD * K
        # the reported d(A) is the exact objective of the returned rows, and close to single-process greedy
        assert run["coverage"] == pytest.approx(facility_location_objective(x, run["indices"]), rel=1e-6)
        assert run["coverage"] >= 0.98 * single.coverage, name
    assert rank0["a"] == rank0["b"]  # deterministic for a seed
    assert rank0["a"]["indices"] != rank0["seed1"]["indices"]  # the seed drives the sharding
    # shards of 1000 rows fit in memory: the local stage is exact unless told otherwise
    assert rank0["a"]["local_strategy"] in STRATEGIES and rank0["sparse_local"]["local_strategy"] == "sparse"

    # with quality: the QDIT score (1 - a) d(A)/N + a mean q~ stays within 2% of single-process greedy
    q_scaled = (q - q.min()) / (q.max() - q.min())
    single_q = qdit_greedy(x, K, quality=q_scaled, alpha=0.5, strategy="lazy", show_progress=False)

    def score(indices, coverage):
        return 0.5 * coverage / N + 0.5 * q_scaled[indices].mean()

    got = rank0["quality"]
    assert score(got["indices"], got["coverage"]) >= 0.98 * score(single_q.indices, single_q.coverage)

    # select_diverse(strategy="greedi") reads only each rank's shard and gives the same rows as greedi()
    sel = rank0["select"]
    assert sel["ids"] == got["indices"]
    assert sel["details"]["strategy"] == "greedi" and sel["details"]["world_size"] == WORLD
    assert sel["details"]["exact"] is False and sel["details"]["shard_size"] == N // WORLD
    assert sel["objective"]["facility_location"] == pytest.approx(got["coverage"])
    ends = rank0["select_range"]["details"]["range_ends"]  # computed over the shards, the same on every rank
    assert ends["diversity_coverage"] > ends["quality_coverage"] and ends["cached"] is False


def test_greedi_without_process_group_is_plain_greedy():
    x, _ = data()
    res = greedi(x[:500], 20, show_progress=False)
    single = facility_location_greedy(x[:500], 20, strategy="lazy", show_progress=False)
    assert res.world_size == 1
    np.testing.assert_array_equal(res.indices, single.indices)
    assert res.coverage == pytest.approx(single.coverage, rel=1e-6)


@pytest.mark.slow
def test_example_script_with_torchrun(tmp_path):
    x, q = data()
    Dataset.from_dict({"embedding": x.numpy().tolist(), "q": q}).save_to_disk(str(tmp_path / "pool"))
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(REPO / "examples" / "distributed_select.py"),
        "--dataset",
        str(tmp_path / "pool"),
        "--k",
        str(K),
        "--quality-column",
        "q",
        "--output",
        str(tmp_path / "out"),
    ]
    subprocess.run(cmd, check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    subset = load_from_disk(str(tmp_path / "out"))
    assert len(subset) == K
    assert get_provenance(subset)["details"]["world_size"] == 2
