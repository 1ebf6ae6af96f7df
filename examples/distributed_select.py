"""QDIT selection with GreeDi across processes (GPUs or machines), launched by `torchrun` or `accelerate launch`.

Every rank loads the pool (Arrow is memory-mapped, so this is cheap), reads the embeddings of its own shard only,
runs greedy on it, and joins the final greedy over the union of the ranks' candidates. All ranks get the same rows;
rank 0 writes them (with provenance) to --output.

    # 2 processes on this machine (CPU: gloo; GPUs: nccl, one per process)
    torchrun --nproc_per_node=2 examples/distributed_select.py --dataset pool/ --k 10000 --output curated/
    accelerate launch --num_processes 2 examples/distributed_select.py --dataset pool/ --k 10000 --output curated/
    # 2 machines with 8 GPUs each (run on both; MASTER is the first machine's address)
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=MASTER --master_port=29500 \\
        examples/distributed_select.py --dataset pool/ --k 10000 --output curated/

The pool must already have its embedding column (embedding every row on every rank would repeat the work).
Compute it once over all GPUs with `datasets`:

    from hf_diverse import EmbeddingScorer, load_pool
    scorer = EmbeddingScorer()
    pool = load_pool("tatsu-lab/alpaca")
    pool = pool.map(scorer, batched=True, with_rank=True, num_proc=torch.cuda.device_count(),
                    features=scorer.features(pool))
    pool.save_to_disk("pool/")
"""

import argparse
import os

import torch
import torch.distributed as dist

from hf_diverse import get_provenance, load_pool, select_diverse
from hf_diverse.io import save_subset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="save_to_disk folder, local file or Hub id with embeddings.")
    parser.add_argument("--split", default="train", help="Split to load (default: train).")
    parser.add_argument("--k", type=int, required=True, help="Rows to select.")
    parser.add_argument("--quality-column", default=None, help="Numeric quality column (higher is better).")
    parser.add_argument("--alpha", type=float, default=None, help="QDIT quality weight (default 0.7).")
    parser.add_argument("--embedding-column", default="embedding", help="Embedding column (default: embedding).")
    parser.add_argument(
        "--embedding-dtype",
        default="float32",
        choices=("float32", "float16", "bfloat16"),
        help="Embeddings on the device in this dtype (float16/bfloat16 halve GPU memory).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Sharding seed (default: 0).")
    parser.add_argument("--output", default="curated", help="Output folder, written by rank 0 (default: curated).")
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu"
    if use_cuda:
        torch.cuda.set_device(device)
    try:
        pool = load_pool(args.dataset, split=args.split)
        subset = select_diverse(
            pool,
            k=args.k,
            method="qdit",
            strategy="greedi",
            quality_column=args.quality_column,
            alpha=args.alpha,
            embedding_column=args.embedding_column,
            embedding_dtype=args.embedding_dtype,
            device=device,
            seed=args.seed,
            show_progress=rank == 0,
        )
        if rank == 0:
            save_subset(subset, args.output, overwrite=True)
            record = get_provenance(subset)
            print(
                f"GreeDi on {record['details']['world_size']} ranks: {len(subset)} of {record['pool_size']} rows, "
                f"coverage {record['objective']['coverage']:.4f}, {record['timings']['selection_s']:.1f}s "
                f"-> {args.output}"
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
