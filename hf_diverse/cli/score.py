"""`hf-diverse score`: add a scorer's columns to a dataset, resumably, and save it (atomically) with its provenance."""

import argparse
import inspect
import json
import time

import datasets
import yaml
from datasets import DatasetDict

from ..data import _FILE_BUILDERS, EMBEDDED_DEFAULT, DatasetLoadError, embedded_default_path, load_pool
from ..errors import InvalidParameterError, MissingDependencyError
from ..io import atomic_directory, write_subset
from ..provenance import get_provenance
from ..scorers import AnswerDivergenceScorer, EmbeddingScorer, LMQualityScorer, RewardModelScorer
from ..scoring import score
from ..textviews import WHAT
from .config import DEVICE_HELP, add_progress_and_config

EXAMPLES = """Examples:
  # embeddings of the embedded sample (bundled all-MiniLM-L6-v2)
  hf-diverse score --scorer embedding --output scored/
  # ADG scores of a Hub dataset; run the same command again after a crash: it resumes at the last finished batch
  hf-diverse score --dataset tatsu-lab/alpaca --scorer adg --model Qwen/Qwen2.5-0.5B-Instruct --output adg/
  # a streamed dataset, shard by shard, into an on-disk dataset; two splits, one after the other
  hf-diverse score --dataset HuggingFaceH4/ultrachat_200k --split train_sft,test_sft --streaming --scorer embedding \\
      --output ultrachat-emb/
  # a reward model, 4 worker processes (one per GPU), the store on a shared disk
  hf-diverse score --dataset pool.jsonl --scorer reward --model OpenAssistant/reward-model-deberta-v3-large-v2 \\
      --num-proc 4 --checkpoint-dir /shared/scores --output rewarded/
  # any other argument of the scorer
  hf-diverse score --dataset pool.jsonl --scorer lm-quality --scorer-arg max_length=512 --output quality/
"""


def _tag_scorer():
    try:
        from ..scorers.tags import TagScorer
    except ImportError as e:
        raise MissingDependencyError(
            "The `tags` scorer (hf_diverse.scorers.tags.TagScorer) is not part of this version of hf_diverse."
        ) from e
    return TagScorer


# --scorer value -> the scorer class (tags: imported when asked for)
SCORERS = {
    "adg": lambda: AnswerDivergenceScorer,
    "embedding": lambda: EmbeddingScorer,
    "lm-quality": lambda: LMQualityScorer,
    "reward": lambda: RewardModelScorer,
    "tags": _tag_scorer,
}
# scorer options with a flag of their own; anything else goes through --scorer-arg
SCORER_FLAGS = (
    "model",
    "text_columns",
    "what",
    "output_column",
    "device",
    "num_samples",
    "max_new_tokens",
    "temperature",
    "top_p",
    "backend",
    "keep_answers",
    "seed",
)


def add_parser(sub):
    p = sub.add_parser(
        "score",
        help="Add a scorer's columns to a dataset (resumable; rows scored before are found again).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score every row of a dataset and write it (save_to_disk folder + provenance.json). Finished "
        "shards and batches are kept in a store (--checkpoint-dir, default $HF_DIVERSE_CACHE/scores), so the same "
        "command resumes after a crash and any later run (Python, CLI, Space) finds the rows again.\n\n" + EXAMPLES,
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="Hub dataset id, local .json/.jsonl/.parquet/.csv file, or save_to_disk folder "
        "(default: the embedded IFBench sample).",
    )
    p.add_argument("--split", default="train", help="Split(s) to score, comma-separated (default: train).")
    p.add_argument("--dataset-config", default=None, help="Hub dataset config name.")
    p.add_argument("--revision", default=None, help="Hub dataset revision.")
    p.add_argument("--limit", type=int, default=None, help="Score only the first N rows (of each split).")
    p.add_argument("--streaming", action="store_true", help="Stream the dataset (no full download first).")
    p.add_argument("--scorer", required=True, choices=list(SCORERS), help="The scorer to run.")
    p.add_argument("--output", required=True, help="Output folder. Written atomically.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    group = p.add_argument_group("scorer options", "Passed to the scorer when it takes them (an error otherwise).")
    group.add_argument("--model", default=None, help="Model name or path (default: the scorer's own).")
    group.add_argument("--text-columns", default=None, help="Comma-separated columns instead of the detected format.")
    group.add_argument("--what", default=None, choices=WHAT, help="embedding: the text view to embed.")
    group.add_argument("--output-column", default=None, help="embedding, reward: the column written.")
    group.add_argument("--device", default=None, help=DEVICE_HELP)
    group.add_argument("--num-samples", type=int, default=None, help="adg: answers sampled per instruction (K).")
    group.add_argument("--max-new-tokens", type=int, default=None, help="adg: longest sampled answer.")
    group.add_argument("--temperature", type=float, default=None, help="adg: sampling temperature.")
    group.add_argument("--top-p", type=float, default=None, help="adg: nucleus sampling mass.")
    group.add_argument("--backend", default=None, choices=("transformers", "vllm"), help="adg: generation backend.")
    group.add_argument("--keep-answers", action="store_true", default=None, help="adg: keep the sampled answers.")
    group.add_argument("--seed", type=int, default=None, help="adg: sampling seed.")
    group.add_argument(
        "--scorer-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Any other argument of the scorer (VALUE read as YAML), e.g. --scorer-arg max_length=512.",
    )
    run_group = p.add_argument_group("how it runs")
    run_group.add_argument("--checkpoint-dir", default=None, help="The store (default: $HF_DIVERSE_CACHE/scores).")
    run_group.add_argument("--shard-size", type=int, default=None, help="Rows per finished file (default: 4096).")
    run_group.add_argument("--batch-size", type=int, default=256, help="Rows per scorer call and checkpoint.")
    run_group.add_argument("--num-proc", type=int, default=None, help="Worker processes (rank r on cuda:r).")
    run_group.add_argument(
        "--reuse", action=argparse.BooleanOptionalAction, default=True, help="Copy rows scored before (default: yes)."
    )
    add_progress_and_config(p, run_group)
    p.set_defaults(command="score")
    return p


def build_scorer(args):
    """The scorer `args` ask for, with the options given on the command line; unknown options name the valid ones."""
    cls = SCORERS[args.scorer]()
    accepted = [name for name in inspect.signature(cls).parameters if name != "self"]
    options = {name: getattr(args, name) for name in SCORER_FLAGS if getattr(args, name, None) is not None}
    for item in args.scorer_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidParameterError(f"--scorer-arg expects KEY=VALUE, got {item!r}.")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in unknown)
        raise InvalidParameterError(f"{flags} do(es) not apply to --scorer {args.scorer}; it takes {accepted}.")
    return cls(**options)


def load_input(args):
    """The dataset to score: one split or a `DatasetDict` of several, streamed with `--streaming`."""
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not splits:
        raise InvalidParameterError("--split names no split.")
    load = _load_stream if args.streaming else _load_split
    loaded = {name: load(args, name) for name in splits}
    return loaded[splits[0]] if len(splits) == 1 else DatasetDict(loaded)


def _load_split(args, split):
    return load_pool(args.dataset, split=split, config=args.dataset_config, revision=args.revision, limit=args.limit)


def _load_stream(args, split):
    source = args.dataset
    if source in (None, EMBEDDED_DEFAULT):
        stream = datasets.load_dataset("json", data_files=str(embedded_default_path()), split="train", streaming=True)
    else:
        suffix = "." + source.rsplit(".", 1)[-1].lower() if "." in source else ""
        try:
            if suffix in _FILE_BUILDERS:
                stream = datasets.load_dataset(
                    _FILE_BUILDERS[suffix], data_files=source, split="train", streaming=True
                )
            else:
                stream = datasets.load_dataset(
                    source, args.dataset_config, split=split, revision=args.revision, streaming=True
                )
        except Exception as e:
            raise DatasetLoadError(f"Could not stream {source!r} split {split!r}: {type(e).__name__}: {e}") from e
    return stream.take(args.limit) if args.limit is not None else stream


def run(args) -> int:
    scorer = build_scorer(args)  # bad options fail before anything is loaded
    t0 = time.perf_counter()
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        dataset = load_input(args)
        scored = score(
            dataset,
            scorer,
            checkpoint_dir=args.checkpoint_dir,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            num_proc=args.num_proc,
            reuse=args.reuse,
            show_progress=args.progress,
        )
        if isinstance(scored, DatasetDict):
            scored.save_to_disk(str(tmp))
            records = {name: get_provenance(split) for name, split in scored.items()}
            (tmp / "provenance.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
        else:
            write_subset(scored, tmp)
    _print_summary(scored, scorer, args.output, time.perf_counter() - t0)
    return 0


def _print_summary(scored, scorer, output, seconds):
    splits = scored.items() if isinstance(scored, DatasetDict) else [(None, scored)]
    for name, split in splits:
        run = get_provenance(split)["scoring"][type(scorer).__name__]
        rows = run["rows"]
        where = f" [{name}]" if name else ""
        print(
            f"Scored {len(split)} rows{where} with {scorer!r}: {rows['computed']} computed, {rows['reused']} found "
            f"again, {rows['resumed'] + rows['finished']} already done (store {run['store']})."
        )
    print(f"Wrote {output} in {seconds:.1f}s (load it with `datasets.load_from_disk({str(output)!r})`).")
