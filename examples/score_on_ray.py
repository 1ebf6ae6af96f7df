"""Score a dataset on a Ray cluster with Ray Data: the scorers run unchanged as callable classes in `map_batches`.

Each Ray actor gets a pickled copy of the scorer (its configuration only), loads the model once on the GPU Ray gave
it, and scores Arrow batches; results go to Parquet and come back as a `datasets.Dataset`.

    pip install 'hf_diverse[ray]'
    # on this machine (Ray starts a local instance): embeddings of the embedded sample, two actors
    python examples/score_on_ray.py --output ray-run/ --concurrency 2 --num-cpus 0.5
    # on a running cluster (`ray start --head` on one machine, `ray start --address=HEAD:6379` on the others): 8 GPU
    # actors; input and output on storage every node can read (a shared folder, or s3://... with pyarrow's S3 support)
    python examples/score_on_ray.py --address auto --input /shared/pool-parquet/ --output /shared/ray-run/ \\
        --scorer adg --model Qwen/Qwen2.5-0.5B-Instruct --concurrency 8 --num-gpus 1

Which tool for which job (see the README): one GPU or a few on one machine, `hf_diverse.score(..., num_proc=n)`
(resumable); several machines sharing a disk, `score(..., rank=r, world_size=n)` per machine; a Ray cluster, this.
"""

import argparse
import time

from hf_diverse import AnswerDivergenceScorer, EmbeddingScorer, LMQualityScorer, load_pool, score_with_ray

SCORERS = {"embedding": EmbeddingScorer, "adg": AnswerDivergenceScorer, "lm-quality": LMQualityScorer}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--address", default=None, help="Ray cluster address ('auto': the running one; default: local)."
    )
    parser.add_argument("--input", default=None, help="Parquet file(s) or folder (default: the embedded sample).")
    parser.add_argument("--limit", type=int, default=None, help="Embedded sample only: its first N rows.")
    parser.add_argument("--output", required=True, help="Folder for the scored Parquet files and the dataset.")
    parser.add_argument("--scorer", default="embedding", choices=list(SCORERS), help="Scorer (default: embedding).")
    parser.add_argument("--model", default=None, help="Model of the scorer (default: its own).")
    parser.add_argument("--batch-size", type=int, default=256, help="Rows per map_batches call.")
    parser.add_argument("--concurrency", type=int, default=1, help="Scorer actors (one model each).")
    parser.add_argument("--num-gpus", type=float, default=None, help="GPUs per actor (e.g. 1).")
    parser.add_argument("--num-cpus", type=float, default=None, help="CPUs per actor (default 1; leave some free).")
    args = parser.parse_args()

    import ray

    ray.init(address=args.address, include_dashboard=False)
    source = args.input or load_pool(limit=args.limit)
    scorer = SCORERS[args.scorer](model=args.model)
    t0 = time.perf_counter()
    try:
        scored = score_with_ray(
            source,
            scorer,
            args.output,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            num_gpus=args.num_gpus,
            num_cpus=args.num_cpus,
        )
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - t0
    scored.save_to_disk(f"{args.output.rstrip('/')}/dataset")
    print(f"Scored {len(scored)} rows in {seconds:.1f}s ({len(scored) / seconds:.1f} rows/s): {scored.column_names}")
    print(f"Wrote {args.output}/dataset (load it with `datasets.load_from_disk`).")


if __name__ == "__main__":
    main()
