"""`hf-diverse` command line: one module per subcommand, each with `add_parser(subparsers)` and `run(args)`."""

import argparse
import importlib
import sys

from .. import __version__
from ..errors import HfDiverseError
from .config import apply_config

# subcommand -> module in hf_diverse.cli
SUBCOMMANDS = {
    "select": "hf_diverse.cli.select",
    "env": "hf_diverse.cli.env",
    "report": "hf_diverse.cli.report",
    "push": "hf_diverse.cli.push",
    "train": "hf_diverse.cli.train",
    "compare": "hf_diverse.cli.compare",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-diverse",
        description="Select diverse, high-quality instruction-tuning subsets from Hugging Face datasets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `hf-diverse <command> --help` for the options and examples of each command.",
    )
    parser.add_argument("--version", action="version", version=f"hf-diverse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """Parse `argv`, applying `--config x.yaml` values as defaults that explicit flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        args = apply_config(parser, args, argv)
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except HfDiverseError as e:
        print(f"hf-diverse: error: {e}", file=sys.stderr)
        return 1
    if args.command is None:
        build_parser().print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command])
    try:
        return int(module.run(args) or 0)
    except HfDiverseError as e:
        print(f"hf-diverse {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
