"""`hf-diverse select`: select a subset and save it (atomically) with its provenance."""

import argparse
import inspect

from ..selection.api import VALID_METHODS, method_function

EXAMPLES = """Examples:
  # embedded default (294 IFBench prompt/response pairs, bundled MiniLM), 50 rows by QDIT
  hf-diverse select --k 50 --output curated/
  # a Hub dataset, 3000 rows, quality from a numeric column
  hf-diverse select --dataset tatsu-lab/alpaca --k 3000 --method qdit --quality-column score --output curated/
  # a local file, 10% of the pool at random
  hf-diverse select --dataset pool.jsonl --k 0.1 --method random --output curated/
  # options from a YAML file; flags override it
  hf-diverse select --config select.yaml --k 100
  # ... and publish it: data, lineage card and plots in one commit (token from HF_TOKEN or `hf auth login`)
  hf-diverse select --k 3000 --output curated/ --push-to me/alpaca-qdit-3k --private
"""
# handled by explicit flags below, not generated from method signatures
_EXPLICIT = {"alpha"}


def _k_value(text: str):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k must be a count or a fraction in (0, 1], got {text!r}") from None
    return int(value) if value.is_integer() and value > 1 else value


def _method_options() -> dict:
    """Method-specific parameters from the method functions' signatures: name -> (annotation, {method: default})."""
    options = {}
    for method in VALID_METHODS:
        for p in list(inspect.signature(method_function(method)).parameters.values())[1:]:
            if p.name in _EXPLICIT:
                continue
            entry = options.setdefault(p.name, [p.annotation, {}])
            entry[1][method] = p.default
    return options


def _converter(annotation, default):
    text = str(annotation)
    if annotation is bool or isinstance(default, bool):
        return lambda s: s.lower() in ("1", "true", "yes")
    if annotation is int or "int" in text and "float" not in text and "str" not in text:
        return lambda s: None if s.lower() == "none" else int(s)
    if annotation is float or "float" in text and "str" not in text:
        return lambda s: None if s.lower() == "none" else float(s)
    return str


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
    p.add_argument("--split", default="train", help="Split to load (default: train).")
    p.add_argument("--dataset-config", default=None, help="Hub dataset config name.")
    p.add_argument("--revision", default=None, help="Hub dataset revision.")
    p.add_argument("--limit", type=int, default=None, help="Use only the first N rows of the pool.")
    p.add_argument("--k", type=_k_value, default=0.1, help="Rows to select: a count, or a fraction in (0, 1].")
    p.add_argument("--method", default="qdit", choices=VALID_METHODS, help="Selection method (default: qdit).")
    p.add_argument("--output", default="curated", help="Output folder (default: curated). Written atomically.")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    p.add_argument("--quality-column", default=None, help="Numeric column with quality scores (higher is better).")
    p.add_argument("--alpha", type=float, default=None, help="QDIT quality weight in [0, 1] (default: 0.7).")
    p.add_argument("--seed", type=int, default=0, help="Random seed (default: 0).")
    p.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: auto).")
    p.add_argument(
        "--text-columns", default=None, help="Comma-separated columns to embed instead of the detected format."
    )
    p.add_argument(
        "--what",
        default="instruction",
        choices=("instruction", "response", "both"),
        help="Text view to embed (default: instruction).",
    )
    p.add_argument("--embedding-model", default=None, help="sentence-transformers model (default: all-MiniLM-L6-v2).")
    p.add_argument("--embedding-column", default="embedding", help="Embedding column to use or write.")
    p.add_argument("--batch-size", type=int, default=64, help="Embedding batch size.")
    p.add_argument("--num-proc", type=int, default=None, help="Processes for the embedding map.")
    p.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    p.add_argument("--config", default=None, help="YAML file of options; flags override it.")
    p.add_argument(
        "--push-to",
        default=None,
        metavar="REPO",
        help="After saving, publish the subset to this Hub dataset repo (see `hf-diverse push`).",
    )
    p.add_argument("--private", action="store_true", default=None, help="With --push-to: make the repo private.")
    group = p.add_argument_group("method-specific options")
    for name, (annotation, defaults) in _method_options().items():
        if len(set(map(repr, defaults.values()))) == 1:
            help_text = f"[{', '.join(defaults)}] default: {next(iter(defaults.values()))!r}."
        else:
            help_text = "defaults: " + ", ".join(f"{m}: {d!r}" for m, d in defaults.items()) + "."
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_converter(annotation, next(iter(defaults.values()))),
            default=None,
            help=help_text,
        )
    p.set_defaults(command="select")
    return p


def selection_kwargs(args) -> dict:
    """Keyword arguments for `select_diverse` from parsed CLI args (method options only when given)."""
    fn_params = set(list(inspect.signature(method_function(args.method)).parameters)[1:])
    method_kwargs = {}
    for name in _method_options():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in fn_params:
            from ..errors import InvalidParameterError

            raise InvalidParameterError(
                f"--{name.replace('_', '-')} does not apply to --method {args.method}; "
                f"its options: {sorted(n for n in fn_params if n not in _EXPLICIT)}."
            )
        method_kwargs[name] = value
    return dict(
        k=args.k,
        method=args.method,
        quality_column=args.quality_column,
        alpha=args.alpha,
        seed=args.seed,
        device=args.device,
        text_columns=args.text_columns,
        what=args.what,
        embedding_model=args.embedding_model,
        embedding_column=args.embedding_column,
        embedding_batch_size=args.batch_size,
        num_proc=args.num_proc,
        show_progress=not args.no_progress,
        **method_kwargs,
    )


def run(args) -> int:
    from ..data import load_pool
    from ..io import atomic_directory, write_subset
    from ..provenance import get_provenance
    from ..selection import select_diverse

    kwargs = selection_kwargs(args)
    if getattr(args, "push_to", None):
        from ..hub import check_push_target

        check_push_target(args.push_to)  # no token or a bad repo id: fail before the selection runs
    # refuse an existing output before doing any work
    with atomic_directory(args.output, overwrite=args.overwrite) as tmp:
        pool = load_pool(
            args.dataset, split=args.split, config=args.dataset_config, revision=args.revision, limit=args.limit
        )
        subset = select_diverse(pool, **kwargs)
        write_subset(subset, tmp)
    record = get_provenance(subset)
    _print_summary(subset, record, args.output)
    if getattr(args, "push_to", None):
        from ..hub import push_curated

        commit = push_curated(subset, args.push_to, pool=pool, private=args.private)
        print(f"Published to {commit.repo_url} (commit {commit.oid[:8]}): {commit.commit_url}")
    return 0


def _print_summary(subset, record, output):
    from ..textviews import TextView

    print(
        f"Selected {record['k']} of {record['pool_size']} rows with method={record['method']!r} "
        f"(seed {record['seed']}) in {record['timings']['total_s']:.1f}s."
    )
    for key, value in record["objective"].items():
        print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    try:
        view = TextView.for_columns(subset.column_names, text_columns=record["parameters"].get("text_columns"))
        head = subset.select(range(min(5, len(subset))))
        for rank, text in enumerate(view.texts(head[:], what="instruction")):
            print(f"  #{rank}: {' '.join(text.split())[:100]}")
    except Exception:
        pass
    print(f"Wrote {output} (load it with `datasets.load_from_disk({str(output)!r})`; provenance in provenance.json).")
