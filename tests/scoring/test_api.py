"""`score`: equal to `Dataset.map`, resumable after a crash (in process, in workers, SIGKILL), re-using rows by
content, ranks sharing a store, streamed and split-aware input, the progress bar starting at the rows already done."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDatasetDict

from hf_diverse import EmbeddingScorer, InvalidParameterError, get_provenance, score
from hf_diverse.scoring import api as scoring_api
from hf_diverse.scoring.shards import ScoringError
from hf_diverse.scoring.store import KEY_COLUMN, ScoreStore, read_table
from tests.scoring.fakes import CountingScorer, logged, logged_ids

REPO = Path(__file__).resolve().parents[2]
N = 230  # 6 shards of 40 rows (the last one of 30), batches of 10


def make_rows(n=N, offset=0):
    ids = list(range(offset, offset + n))
    return Dataset.from_dict({"id": ids, "prompt": [f"write about topic {i} " + "a" * (i % 7) for i in ids]})


def reference(ds, tmp_path, batch_size=10):
    """The uninterrupted `Dataset.map` run, by the same scorer configuration (its own log)."""
    scorer = CountingScorer(str(tmp_path / "reference.log"))
    return ds.map(scorer, batched=True, batch_size=batch_size, features=scorer.features(ds))


def assert_same(a: Dataset, b: Dataset):
    assert a.column_names == b.column_names
    assert a.features == b.features
    assert a.to_dict() == b.to_dict()


def run(ds, tmp_path, log="run.log", **kwargs):
    kwargs = {"checkpoint_dir": tmp_path / "store", "shard_size": 40, "batch_size": 10, **kwargs}
    return score(ds, CountingScorer(str(tmp_path / log), **kwargs.pop("scorer", {})), **kwargs)


def saved_ids(store_root) -> set[bytes]:
    """Row keys of the rows whose results are in the finished files (shards and batches) of a store."""
    keys = set()
    for path in Path(store_root).rglob("*.arrow"):
        if "inputs" not in path.parts:
            keys |= set(read_table(path).column(KEY_COLUMN).to_pylist())
    return keys


def ids_of_keys(ds, keys) -> set[int]:
    from hf_diverse.scoring.keys import row_keys

    return {i for i, k in zip(ds["id"], row_keys(ds[:], ["prompt"]), strict=True) if k in keys}


def test_equals_map_and_a_second_call_computes_nothing(tmp_path):
    ds = make_rows()
    scored = run(ds, tmp_path)
    assert_same(scored, reference(ds, tmp_path))
    assert sorted(logged_ids(tmp_path / "run.log")) == list(range(N))  # each row once
    again = run(ds, tmp_path, log="again.log")
    assert_same(again, scored)
    assert logged_ids(tmp_path / "again.log") == []
    rows = get_provenance(again)["scoring"]["CountingScorer"]["rows"]
    assert rows == {"computed": 0, "reused": 0, "resumed": 0, "finished": N}
    assert get_provenance(scored)["scoring"]["CountingScorer"]["rows"]["computed"] == N


def test_a_crash_resumes_at_the_last_finished_batch(tmp_path):
    ds = make_rows()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(ds, tmp_path, scorer={"fail_after": 70})  # 1 shard of 40 and 3 batches of 10 written
    first = logged_ids(tmp_path / "run.log")
    assert first == list(range(70))
    scored = run(ds, tmp_path, log="resume.log")
    assert logged_ids(tmp_path / "resume.log") == list(range(70, N))  # nothing scored twice
    assert get_provenance(scored)["scoring"]["CountingScorer"]["rows"] == {
        "computed": N - 70,
        "reused": 0,
        "resumed": 30,
        "finished": 40,
    }
    assert_same(scored, reference(ds, tmp_path))


def test_the_progress_bar_starts_at_the_rows_already_done(tmp_path, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.n = kwargs, kwargs["initial"]
            bars.append(self)

        def update(self, rows):
            self.n += rows

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def recording(*args, **kwargs):
        return Bar(**kwargs)

    monkeypatch.setattr(scoring_api, "tqdm", recording)
    ds = make_rows()
    with pytest.raises(RuntimeError):
        run(ds, tmp_path, scorer={"fail_after": 70})
    run(ds, tmp_path, log="resume.log")
    bar = bars[-1]
    assert (bar.kwargs["total"], bar.kwargs["initial"], bar.kwargs["unit"]) == (N, 70, "rows")
    assert bar.n == N


def test_rows_are_found_again_by_content_in_any_order_and_subset(tmp_path):
    ds = make_rows()
    full = run(ds, tmp_path)
    part = ds.select([200, 3, 150, 7])  # other shard boundaries: found row by row
    again = run(part, tmp_path, log="part.log")
    assert logged_ids(tmp_path / "part.log") == []
    assert again.to_dict() == full.select([200, 3, 150, 7]).to_dict()
    prompts = ["a prompt never seen", ds[9]["prompt"], "another new one", ds[5]["prompt"], ds[120]["prompt"]]
    mixed = Dataset.from_dict({"id": [1000, 9, 1001, 5, 120], "prompt": prompts})
    scored = run(mixed, tmp_path, log="mixed.log")
    assert logged_ids(tmp_path / "mixed.log") == [1000, 1001]  # only the new rows are computed
    assert scored.to_dict() == reference(mixed, tmp_path).to_dict()  # stored and new rows, each in its place
    run(part, tmp_path, log="finished.log", reuse=False)
    assert logged_ids(tmp_path / "finished.log") == []  # a finished shard is skipped all the same
    run(ds.select([3, 7, 150]), tmp_path, log="noreuse.log", reuse=False)
    assert logged_ids(tmp_path / "noreuse.log") == [3, 7, 150]
    assert not list((tmp_path / "store").rglob("cache-*"))  # nothing but the store's own files in the store


def test_a_changed_configuration_is_scored_again(tmp_path):
    ds = make_rows(20)
    run(ds, tmp_path)
    scaled = run(ds, tmp_path, log="scaled.log", scorer={"scale": 2.0})
    assert sorted(logged_ids(tmp_path / "scaled.log")) == list(range(20))
    assert scaled["vec"][3][0] == 2 * len(ds[3]["prompt"])
    assert len(list((tmp_path / "store").glob("CountingScorer-*"))) == 2


def test_num_proc_2_equals_one_process_and_resumes_after_a_worker_crash(tmp_path):
    ds = make_rows()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(ds, tmp_path, num_proc=2, scorer={"fail_after": 50})
    first = set(logged_ids(tmp_path / "run.log"))
    scored = run(ds, tmp_path, log="resume.log", num_proc=2)
    second = logged(tmp_path / "resume.log")
    assert not first & {i for i, _ in second}
    assert first | {i for i, _ in second} == set(range(N))
    assert len({pid for _, pid in second}) == 2 and os.getpid() not in {pid for _, pid in second}
    assert_same(scored, reference(ds, tmp_path))


def test_a_worker_that_dies_stops_the_run_and_the_next_run_resumes(tmp_path):
    ds = make_rows()
    with pytest.raises(ScoringError, match="died with exit code 1"):
        run(ds, tmp_path, num_proc=2, scorer={"exit_after": 60})
    scored = run(ds, tmp_path, log="resume.log", num_proc=2)
    assert_same(scored, reference(ds, tmp_path))


def test_ranks_share_a_store_and_each_returns_the_whole_result(tmp_path):
    ds = make_rows()
    results = {}

    def rank(r):  # rank 1 is slower: rank 0 does its share, then helps with the rest
        slow = {"delay": 0.05 * r}
        results[r] = run(ds, tmp_path, log=f"rank{r}.log", rank=r, world_size=2, scorer=slow)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    expected = reference(ds, tmp_path)
    for r in (0, 1):
        assert_same(results[r], expected)
    logs = {r: logged_ids(tmp_path / f"rank{r}.log") for r in (0, 1)}
    assert {i // 40 for i in logs[1]} <= {1, 3, 5}  # shard i goes to rank i % 2
    assert {i // 40 for i in logs[0]} >= {0, 2, 4}
    assert set(logs[0]) | set(logs[1]) == set(range(N))
    assert len(logs[0]) + len(logs[1]) <= N + 2 * 40  # at most a shard scored by both, per rank


def test_a_rank_alone_scores_everything_instead_of_waiting(tmp_path):
    ds = make_rows(100)  # e.g. ranks on machines that do not share the store's folder
    scored = run(ds, tmp_path, rank=1, world_size=3)
    assert sorted(logged_ids(tmp_path / "run.log")) == list(range(100))
    assert_same(scored, reference(ds, tmp_path))


def test_two_runs_of_the_same_job_at_once_do_not_trip_over_each_other(tmp_path):
    ds = make_rows(120)
    results, errors = {}, []

    def one(r):
        try:
            results[r] = run(ds, tmp_path, log=f"run{r}.log", scorer={"delay": 0.01})
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    expected = reference(ds, tmp_path)
    assert_same(results[0], expected) and assert_same(results[1], expected)


def test_streamed_input_is_scored_into_an_on_disk_dataset_and_resumes(tmp_path):
    ds = make_rows()
    stream = ds.to_iterable_dataset(num_shards=3)
    with pytest.raises(RuntimeError):
        run(stream, tmp_path, scorer={"fail_after": 90})
    scored = run(stream, tmp_path, log="resume.log")
    assert logged_ids(tmp_path / "resume.log") == list(range(90, N))
    assert isinstance(scored, Dataset)
    assert_same(scored, reference(ds, tmp_path))
    assert all(str(tmp_path / "store") in f["filename"] for f in scored.cache_files)  # rows and scores on disk
    with pytest.raises(InvalidParameterError, match="one process"):
        run(stream, tmp_path, num_proc=2)


def test_a_dict_of_splits_is_scored_split_by_split(tmp_path):
    splits = DatasetDict({"train": make_rows(50), "test": make_rows(30, offset=50)})
    scored = run(splits, tmp_path)
    assert isinstance(scored, DatasetDict) and list(scored) == ["train", "test"]
    for name in splits:
        assert_same(scored[name], reference(splits[name], tmp_path))
    streamed = IterableDatasetDict({name: split.to_iterable_dataset() for name, split in splits.items()})
    again = run(streamed, tmp_path, log="again.log")
    assert logged_ids(tmp_path / "again.log") == []
    assert {name: again[name].to_dict() for name in again} == {name: scored[name].to_dict() for name in scored}


def test_indices_mapping_and_format_are_kept(tmp_path):
    ds = make_rows().shuffle(seed=0).select(range(25)).with_format("numpy")
    scored = run(ds, tmp_path)
    assert scored.format["type"] == "numpy"
    expected = reference(ds.with_format(None), tmp_path)
    assert scored.with_format(None).to_dict() == expected.to_dict()


def test_embedding_scorer_equals_map(tmp_path, ifbench):
    rows = ifbench.select(range(24))
    scorer = EmbeddingScorer(batch_size=8)
    mapped = rows.map(scorer, batched=True, batch_size=8, features=scorer.features(rows))
    scored = score(rows, scorer, checkpoint_dir=tmp_path, batch_size=8, shard_size=16)
    assert scored.features == mapped.features
    assert scored.to_dict() == mapped.to_dict()  # same batches, same numbers
    assert get_provenance(scored)["models"]["embedding"] == scorer.model_info


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_embedding_scorer_on_cuda_with_two_workers(tmp_path, ifbench):
    rows = ifbench.select(range(64))
    one = score(rows, EmbeddingScorer(device="cuda"), checkpoint_dir=tmp_path / "a", batch_size=8, shard_size=16)
    two = score(
        rows, EmbeddingScorer(device="cuda"), checkpoint_dir=tmp_path / "b", batch_size=8, shard_size=16, num_proc=2
    )
    np.testing.assert_allclose(np.asarray(one["embedding"]), np.asarray(two["embedding"]), atol=1e-5)
    cpu = rows.map(EmbeddingScorer(device="cpu"), batched=True, batch_size=8)
    np.testing.assert_allclose(np.asarray(one["embedding"]), np.asarray(cpu["embedding"]), atol=1e-3)


def test_leftovers_of_a_killed_writer_are_never_read(tmp_path):
    ds = make_rows(40)
    with pytest.raises(RuntimeError):
        run(ds, tmp_path, scorer={"fail_after": 20})
    store = ScoreStore(tmp_path / "store", CountingScorer("x"))
    partial = next((store.folder / "partial").iterdir())
    # a batch half-written by a writer that died (this host, a pid that no longer runs), and a live writer's file
    dead = partial / f".000000020-000000030.arrow.tmp-{os.uname().nodename}-999999999-abc"
    dead.write_bytes(b"\xff\xff\xff\xff half")
    live = partial / f".000000030-000000040.arrow.tmp-{os.uname().nodename}-{os.getpid()}-abc"
    live.write_bytes(b"garbage")
    scored = run(ds, tmp_path, log="resume.log")
    assert logged_ids(tmp_path / "resume.log") == list(range(20, 40))
    assert_same(scored, reference(ds, tmp_path))
    assert not dead.exists()


@pytest.mark.parametrize("kwargs, match", [
    ({"shard_size": 0}, "shard_size must be a positive integer"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer"),
    ({"num_proc": 0}, "num_proc must be a positive integer"),
    ({"rank": 1}, "Pass both rank and world_size"),
    ({"rank": 2, "world_size": 2}, r"rank must be in \[0, world_size=2\)"),
])  # fmt: skip
def test_bad_arguments_name_the_value(tmp_path, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        run(make_rows(5), tmp_path, **kwargs)
    with pytest.raises(InvalidParameterError, match="got list"):
        score([1, 2], CountingScorer("x"))


def test_a_shard_size_not_a_multiple_of_the_batch_is_rounded_up_and_said(tmp_path, caplog):
    scored = run(make_rows(30), tmp_path, shard_size=25)
    assert "using 30" in caplog.text
    assert get_provenance(scored)["scoring"]["CountingScorer"]["shard_size"] == 30


# --- killed for real ------------------------------------------------------------------------------------------------
def _kill_after_two_shards(ds_path, store, log, num_proc):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "tests.scoring.fakes", str(ds_path), str(store), str(log), num_proc, "0.1"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True)
    shards = Path(store)
    deadline = time.monotonic() + 120
    while len(list(shards.glob("*/shards/*.arrow"))) < 2:
        assert proc.poll() is None, "the scoring subprocess ended before it was killed"
        assert time.monotonic() < deadline, "no shard finished in 120 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("num_proc", ["-", "2"])
def test_sigkill_after_some_shards_then_resume(tmp_path, num_proc):
    ds = make_rows()
    ds.save_to_disk(tmp_path / "ds")
    store = tmp_path / "store"
    _kill_after_two_shards(tmp_path / "ds", store, tmp_path / "killed.log", num_proc)
    for path in store.rglob("*.arrow"):  # every file with a final name is whole
        read_table(path)
    done = ids_of_keys(ds, saved_ids(store))
    assert len(done) >= 80 and len(done) < N
    assert done <= set(logged_ids(tmp_path / "killed.log"))
    scored = run(ds, tmp_path, log="resume.log", num_proc=None if num_proc == "-" else 2)
    again = set(logged_ids(tmp_path / "resume.log"))
    assert not again & done  # finished rows are not recomputed
    assert again | done == set(range(N))
    assert_same(scored, reference(ds, tmp_path))


def test_select_diverse_computes_its_costly_columns_into_the_store(tmp_path, ifbench, tiny_llama_path, monkeypatch):
    from hf_diverse import AnswerDivergenceScorer, select_diverse

    calls = []
    for cls in (EmbeddingScorer, AnswerDivergenceScorer):
        real = cls.score_batch

        def counting(self, batch, indices, device, real=real):
            calls.append((type(self).__name__, len(indices)))
            return real(self, batch, indices, device)

        monkeypatch.setattr(cls, "score_batch", counting)
    pool = ifbench.select(range(12))
    options = dict(k=4, method="adg", model=tiny_llama_path, num_samples=2, max_new_tokens=4, show_progress=False)
    first = select_diverse(pool, checkpoint_dir=tmp_path, **options)
    assert sorted({name for name, _ in calls}) == ["AnswerDivergenceScorer", "EmbeddingScorer"]
    assert {p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_dir()} >= {
        "EmbeddingScorer",
        "AnswerDivergenceScorer",
    }
    calls.clear()
    again = select_diverse(pool, checkpoint_dir=tmp_path, **options)  # both columns found again
    assert calls == []
    assert again["adg_score"] == first["adg_score"] and again["prompt"] == first["prompt"]
