"""`hf-diverse select`: select a subset and save it (atomically) with its provenance."""

import argparse

from datasets import DatasetDict

from ..data import load_pool, load_pool_splits
from ..errors import HfDiverseError, InvalidParameterError
from ..hub import check_push_target, push_curated
from ..io import atomic_directory, write_subset
from ..provenance import get_provenance
from ..scorers.embedding import LONG_TEXT
from ..selection import METHODS, Option, select_diverse
from ..textviews import TURNS, WHAT, TextView
from .config import DEVICE_HELP, add_progress_and_config

EXAMPLES = """Examples:
  # embedded default (294 IFBench prompt/response pairs, bundled MiniLM), 50 rows by QDIT
  hf-diverse select --k 50 --output curated/
  # a Hub dataset, 3000 rows, quality from a numeric column
  hf-diverse select --dataset tatsu-lab/alpaca --k 3000 --method qdit --quality-column score --output curated/
  # a local file, 10% of the pool at random
  hf-diverse select --dataset pool.jsonl --k 0.1 --method random --output curated/
  # ShareGPT conversations, instruction = the last user turn, long responses embedded whole
  hf-diverse select --dataset chats.jsonl --k 500 --turns last --what response --long-text chunks --output curated/
  # every split of a save_to_disk DatasetDict folder, the same selection on each
  hf-diverse select --dataset pool/ --split all --k 0.1 --output curated/
  # the first 100k rows of a Hub dataset, streamed
  hf-diverse select --dataset HuggingFaceH4/ultrachat_200k --split train_sft --streaming --limit 100000 --k 5000
  # options from a YAML file; flags override it
  hf-diverse select --config select.yaml --k 100
  # ... and publish it: data, lineage card and plots in one commit (token from HF_TOKEN or `hf auth login`)
  hf-diverse select --k 3000 --output curated/ --push-to me/alpaca-qdit-3k --private
"""


def _k_value(text: str):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be a count or a fraction in (0, 1], got {text!r}") from None
    return int(value) if value.is_integer() and value > 1 else value


def method_options() -> dict[str, dict[str, Option]]:
    """Every method option, by name: `{name: {method: Option}}` (an option shared by methods appears once)."""
    out: dict[str, dict[str, Option]] = {}
    for name, method in METHODS.items():
        for opt in method.config.options():
            out.setdefault(opt.name, {})[name] = opt
    return out


def _converter(opt: Option):
    """Parse a flag's text into the option's type; `none` gives None where None is allowed."""

    def convert(text: str):
        if opt.optional and text.lower() == "none":
            return None
        try:
            return opt.type(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(opt.type, opt.type.__name__)
            raise argparse.ArgumentTypeError(f"--{opt.name.replace('_', '-')} must be {kind}, got {text!r}") from None

    return convert


def _add_method_option(group, name: str, by_method: dict[str, Option]) -> None:
    first = next(iter(by_method.values()))
    defaults = {m: opt.default for m, opt in by_method.items()}
    if len({repr(d) for d in defaults.values()}) == 1:
        where = f"[{', '.join(defaults)}; default: {first.default!r}]"
    else:
        where = "[" + "; ".join(f"{m} default: {d!r}" for m, d in defaults.items()) + "]"
    helps = {m: opt.help for m, opt in by_method.items()}
    text = first.help if len(set(helps.values())) == 1 else " | ".join(f"{m}: {h}" for m, h in helps.items())
    flag = "--" + name.replace("_", "-")
    kwargs = dict(dest=name, default=None, help=f"{text} {where}")
    if first.type is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
    else:
        metavar = "{" + ",".join(first.choices) + "}" if first.choices else name.upper()
        group.add_argument(flag, type=_converter(first), metavar=metavar, **kwargs)


def _add_text_and_embedding_options(p) -> None:
    """The flags of the text views and of the embedding step (the same arguments as `select_diverse`)."""
    p.add_argument(
        "--text-columns", default=None, help="Comma-separated columns to read instead of the detected format."
    )
    p.add_argument(
        "--what",
        default=None,
        choices=WHAT,
        help="Text view the method reads: embedded when embeddings are computed, tokenized by `tokens` "
        "(default: the method's own, response for tokens, instruction otherwise).",
    )
    p.add_argument(
        "--turns",
        default="first",
        choices=TURNS,
        help="Which turns of multi-turn rows (messages, ShareGPT) make the instruction and response: the first user "
        "turn and its answer (default), all turns, or the last.",
    )
    p.add_argument(
        "--keep-empty",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Keep rows whose text view is empty among the candidates (default: no, they are left out and counted).",
    )
    p.add_argument("--embedding-model", default=None, help="sentence-transformers model (default: all-MiniLM-L6-v2).")
    p.add_argument(
        "--max-seq-length",
        type=int,
        default=None,
        help="The encoder's token limit when embeddings are computed (default: the model's, 256 for MiniLM).",
    )
    p.add_argument(
        "--long-text",
        default="truncate",
        choices=LONG_TEXT,
        help="Texts over the limit: cut them (truncate, default) or embed them whole as the mean of their windows "
        "(chunks). Either way they are counted.",
    )
    p.add_argument("--embedding-column", default="embedding", help="Embedding column to use or write.")
    p.add_argument("--batch-size", type=int, default=64, help="Embedding batch size.")


def add_parser(sub):
    p = sub.add_parser(
        "select",
        help="Select a diverse subset of a dataset.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Select k rows of a pool and write them (save_to_disk folder + provenance.json).\n\n" + EXAMPLES,
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="Hub dataset id, local .json/.jsonl/.parquet/.csv file, or save_to_disk folder "
        "(default: the embedded IFBench sample).",
    )
    p.add_argument(
        "--split",
        default="train",
        help="Split to load (default: train); 'all' runs the same selection on every split and writes a DatasetDict "
        "(Python: select_diverse(DatasetDict) without split=).",
    )
    p.add_argument("--dataset-config", default=None, help="Hub dataset config name.")
    p.add_argument("--revision", default=None, help="Hub dataset revision.")
    p.add_argument("--limit", type=int, default=None, help="Use only the first N rows of the pool.")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="Stream the Hub dataset or file and keep its first --limit rows (needed) without downloading the rest.",
    )
    p.add_argument("--k", type=_k_value, default=0.1, help="Rows to select: a count, or a fraction in (0, 1].")
    p.add_argument("--method", default="qdit", choices=list(METHODS), help="Selection method (default: qdit).")
    p.add_argument("--output", default="curated", help="Output folder (default: curated). Written atomically.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    p.add_argument("--quality-column", default=None, help="Numeric column with quality scores (higher is better).")
    p.add_argument("--seed", type=int, default=0, help="Random seed (default: 0).")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    _add_text_and_embedding_options(p)
    p.add_argument("--num-proc", type=int, default=None, help="Processes for the embedding map.")
    add_progress_and_config(p)
    p.add_argument(
        "--push-to",
        default=None,
        metavar="REPO",
        help="After saving, publish the subset to this Hub dataset repo (see `hf-diverse push`).",
    )
    p.add_argument(
        "--private",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="With --push-to: make the repo private (--no-private: public; default: a new repo is public, an existing "
        "one keeps its visibility).",
    )
    group = p.add_argument_group(
        "method options", "Options of the selection methods; each applies to the methods named in brackets."
    )
    for name, by_method in method_options().items():
        _add_method_option(group, name, by_method)
    p.set_defaults(command="select")
    return p


def selection_kwargs(args) -> dict:
    """Keyword arguments for `select_diverse` from parsed CLI args (method options only when given)."""
    valid = {opt.name for opt in METHODS[args.method].config.options()}
    options = {}
    for name in method_options():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in valid:
            raise InvalidParameterError(
                f"--{name.replace('_', '-')} does not apply to --method {args.method}; its options: {sorted(valid)}."
            )
        options[name] = value
    return dict(
        k=args.k,
        method=args.method,
        quality_column=args.quality_column,
        seed=args.seed,
        device=args.device,
        text_columns=args.text_columns,
        what=args.what,
        turns=args.turns,
        keep_empty=args.keep_empty,
        max_seq_length=args.max_seq_length,
        long_text=args.long_text,
        embedding_model=args.embedding_model,
        embedding_column=args.embedding_column,
        embedding_batch_size=args.batch_size,
        num_proc=args.num_proc,
        show_progress=args.progress,
        **options,
    )


def load_cli_pool(args):
    """The pool the flags name: one split, or every split (`--split all`) as a `DatasetDict`."""
    if args.split == "all":
        if args.streaming:
            raise InvalidParameterError("--split all reads whole splits: it cannot be combined with --streaming.")
        return load_pool_splits(args.dataset, config=args.dataset_config, revision=args.revision, limit=args.limit)
    return load_pool(
        args.dataset,
        split=args.split,
        config=args.dataset_config,
        revision=args.revision,
        limit=args.limit,
        streaming=args.streaming,
    )


def run(args) -> int:
    kwargs = selection_kwargs(args)
    if getattr(args, "push_to", None):
        if args.split == "all":
            raise InvalidParameterError("--push-to publishes one split: pass --split NAME instead of --split all.")
        check_push_target(args.push_to)  # no token or a bad repo id: fail before the selection runs
    # refuse an existing output before doing any work
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        pool = load_cli_pool(args)
        subset = select_diverse(pool, **kwargs)
        write_subset(subset, tmp)
    parts = subset.items() if isinstance(subset, DatasetDict) else [(None, subset)]
    for name, part in parts:
        if name is not None:
            print(f"[split {name}]")
        _print_summary(part, get_provenance(part), args.output)
    if getattr(args, "push_to", None):
        commit = push_curated(subset, args.push_to, pool=pool, private=args.private)
        print(f"Published to {commit.repo_url} (commit {commit.oid[:8]}): {commit.commit_url}")
    return 0


def _print_summary(subset, record, output):
    print(
        f"Selected {record['k']} of {record['pool_size']} rows with method={record['method']!r} "
        f"(seed {record['seed']}) in {record['timings']['total_s']:.1f}s."
    )
    for key, value in record["objective"].items():
        print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    try:
        params = record["parameters"]
        view = TextView.for_columns(
            subset.column_names, text_columns=params.get("text_columns"), turns=params.get("turns") or "first"
        )
        head = subset.select(range(min(5, len(subset))))
        for rank, text in enumerate(view.texts(head[:], what="instruction")):
            print(f"  #{rank}: {' '.join(text.split())[:100]}")
    except HfDiverseError:  # a pool without instruction text (e.g. only embeddings): no preview
        pass
    if record.get("inputs", {}).get("texts", {}).get("empty_rows"):
        texts = record["inputs"]["texts"]
        done = "kept" if texts.get("keep_empty") else "left out"
        print(f"  {texts['empty_rows']} rows with an empty {texts['view']} {done}.")
    if not (record.get("reproduce") or {}).get("reloadable", True):
        print(f"  Not reproducible from the card: {record['reproduce']['missing']}.")
    print(f"Wrote {output} (load it with `datasets.load_from_disk({str(output)!r})`; provenance in provenance.json).")
