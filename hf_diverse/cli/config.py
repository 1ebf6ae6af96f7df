"""`--config x.yaml`: a YAML mapping of option names (dashes or underscores) to values; flags given on the command
line override it, unknown keys are an error (as trl's `TrlParser`). A subcommand can accept more keys by setting a
`config_passthrough` default: a function returning `(accepted_keys, description)`; those keys land in
`args.config_extra` (used by `train` for `SFTConfig` fields that have no flag)."""

import argparse
import sys

import yaml

from ..errors import InvalidParameterError

DEVICE_HELP = "cuda, cuda:1, mps or cpu (default: auto)."


def add_progress_and_config(parser, progress_group=None) -> None:
    """`--progress/--no-progress` (in `progress_group` when given) and `--config`, the same in every subcommand."""
    (progress_group or parser).add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="Show progress bars (default: yes)."
    )
    parser.add_argument("--config", default=None, help="YAML file of options; flags override it.")


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv) -> argparse.Namespace:
    try:
        with open(args.config) as f:
            values = yaml.safe_load(f) or {}
    except OSError as e:
        raise InvalidParameterError(f"Could not read config file {args.config}: {e}") from e
    if not isinstance(values, dict):
        raise InvalidParameterError(f"Config file {args.config} must hold a mapping of option: value.")
    subparser = _subparser(parser, args.command)
    dests = {a.dest for a in subparser._actions}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    # a subcommand may accept keys that are not its flags (train: SFTConfig fields); they go to `args.config_extra`
    passthrough, also_valid = subparser.get_default("config_passthrough"), ""
    if passthrough is not None:
        accepted, also_valid = passthrough()
        extra = {key: values.pop(key) for key in list(values) if key not in dests and key in accepted}
        subparser.set_defaults(config_extra=extra)
        also_valid = f", and {also_valid}"
    unknown = sorted(set(values) - dests - {"config"})
    if unknown:
        raise InvalidParameterError(
            f"Unknown key(s) {unknown} in {args.config}. Valid keys: {sorted(dests - {'help', 'config'})}{also_valid}."
        )
    for key, value in values.items():
        if isinstance(value, list) and key in ("text_columns",):
            values[key] = ",".join(map(str, value))
    subparser.set_defaults(**values)
    return parser.parse_args(argv if argv is not None else sys.argv[1:])


def _subparser(parser, command):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise InvalidParameterError(f"Unknown command {command!r}.")
