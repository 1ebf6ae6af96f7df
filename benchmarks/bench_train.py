"""Benchmark of `hf_diverse.train`: prompt/completion conversion throughput and SFT step time on this machine.

    python benchmarks/bench_train.py --models tiny,smollm2 --steps 4 --max-length 256 --batch-size 2

- conversion: `to_prompt_completion` over the embedded IFBench pool repeated `--repeat` times (rows/s).
- training: `train_sft` on a QDIT subset of the pool for `--steps` optimizer steps; the first step (optimizer-state
  allocation) is reported apart, then the median of the others, and tokens/s from the trainer's `num_tokens`.
  `tiny` is a random-init 4-layer Llama (hidden 16) with the SmolLM2 tokenizer, `smollm2` the offline
  SmolLM2-135M-Instruct. Prints one JSON object.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DIVERSE_DISABLE_PROGRESS_BARS", "1")

import torch
from datasets import concatenate_datasets
from transformers import TrainerCallback

from hf_diverse import load_pool, select_diverse, train_sft
from hf_diverse.models import default_causal_lm_path
from hf_diverse.train import to_prompt_completion

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.helpers import save_tiny_llama  # noqa: E402


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self._start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    pool = load_pool()
    big = concatenate_datasets([pool] * args.repeat)
    start = time.perf_counter()
    rows = to_prompt_completion(big)
    conv_s = time.perf_counter() - start
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"cuda={torch.cuda.is_available()}",
        "conversion": {"rows": len(rows), "seconds": round(conv_s, 3), "rows_per_s": round(len(rows) / conv_s)},
        "training": {},
    }
    subset = select_diverse(pool, k=args.k, method="qdit", seed=0, show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "tiny": lambda: save_tiny_llama(os.path.join(tmp, "tiny"), default_causal_lm_path()),
            "smollm2": lambda: None,
        }
        for name in args.models.split(","):
            timer = StepTimer()
            run = train_sft(
                subset,
                model=paths[name](),
                output_dir=os.path.join(tmp, f"out-{name}"),
                max_steps=args.steps,
                per_device_train_batch_size=args.batch_size,
                max_length=args.max_length,
                logging_steps=1,
                save_strategy="no",
                callbacks=[timer],
            )
            tokens = [e["num_tokens"] for e in run.trainer.state.log_history if "num_tokens" in e]
            rest = timer.times[1:] or timer.times
            result["training"][name] = {
                "steps": len(timer.times),
                "first_step_s": round(timer.times[0], 2),
                "median_step_s": round(statistics.median(rest), 2),
                "tokens_per_s": round((tokens[-1] - tokens[0]) / sum(rest), 1) if len(tokens) > 1 else None,
                "train_runtime_s": round(run.metrics["train_runtime"], 2),
                "losses": [round(x, 4) for x in run.losses],
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
