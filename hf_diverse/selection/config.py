"""Method configs: one dataclass per method whose fields carry their defaults, help text and valid values.

The CLI flags, the Space controls, the card's parameter table and the provenance all read these fields, so a
method's options are declared once, the way trl declares `SFTConfig`:

    @dataclass
    class MyConfig(MethodConfig):
        tau: float = option(0.5, "Similarity threshold.", bounds=(-1.0, 1.0))

`option(default, help, choices=..., bounds=..., space=...)` is `dataclasses.field` with that metadata. A config
validates itself when built: a value of the wrong type, outside `bounds` or not in `choices` raises
`InvalidParameterError` naming the value and the valid ones.
"""

import dataclasses
import math
import types
import typing
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError


def option(default, help: str, *, choices=None, bounds=None, space: dict | None = None):
    """A config field with its default and documentation.

    Args:
        default: the default value (an immutable value; use `None` for "decided at run time").
        help (`str`): one or two sentences for `--help`, the Space and the card.
        choices (`tuple`, *optional*): the valid values of a string option.
        bounds (`tuple[float, float]`, *optional*): inclusive lower and upper bounds of a number (`None`: unbounded).
        space (`dict`, *optional*): show the option in the Space as a slider, e.g. `{"minimum": 0, "maximum": 1,
            "step": 0.05}`.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "bounds": bounds, "space": space}
    return dataclasses.field(default=default, metadata=metadata)


def diversity_option(meaning: str):
    """The `diversity` dial shared by the macro-to-micro strategies: a number in [0, 1], 1 by default."""
    return option(
        1.0,
        f"The diversity dial in [0, 1] (0 = minimal, 1 = maximal diversity): {meaning}",
        bounds=(0, 1),
        space={"minimum": 0, "maximum": 1, "step": 0.05},
    )


@dataclass(frozen=True)
class Option:
    """A config field as the CLI and the Space see it."""

    name: str
    type: type  # bool, int, float or str (`None` stripped from `X | None`)
    default: object
    help: str
    optional: bool = False  # `None` is a valid value
    choices: tuple | None = None
    bounds: tuple | None = None
    space: dict | None = None


@dataclass
class MethodConfig:
    """Base class of method configs: validation on construction, options and a JSON-able dict."""

    def __post_init__(self):
        for opt in self.options():
            setattr(self, opt.name, _check(self, opt, getattr(self, opt.name)))

    @classmethod
    def options(cls) -> list[Option]:
        """The fields as `Option`s, in declaration order."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            base, optional = _base_type(hints[f.name])
            meta = f.metadata
            out.append(
                Option(
                    name=f.name,
                    type=base,
                    default=f.default,
                    help=meta.get("help", ""),
                    optional=optional,
                    choices=meta.get("choices"),
                    bounds=meta.get("bounds"),
                    space=meta.get("space"),
                )
            )
        return out

    def to_dict(self) -> dict:
        """The field values as a plain dict (for the provenance)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _base_type(hint) -> tuple[type, bool]:
    """`(base type, None allowed)` of an annotation such as `int`, `float | None`, `str`."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return hint, False


def _check(config, opt: Option, value):
    """`value` converted to the option's type, else `InvalidParameterError` naming the value and the valid ones."""
    where = f"{type(config).__name__}.{opt.name}"
    if value is None:
        if opt.optional:
            return None
        raise InvalidParameterError(f"{opt.name} must be set ({where} does not accept None).")
    if opt.type is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(f"{opt.name} must be True or False, got {value!r}.")
        value = bool(value)
    elif opt.type in (int, float):
        value = _number(opt, value)
    elif opt.type is str and not isinstance(value, str):
        raise InvalidParameterError(f"{opt.name} must be a string, got {value!r}.")
    if opt.choices is not None and value not in opt.choices:
        raise InvalidParameterError(f"Unknown {opt.name} {value!r}. Valid values of {opt.name}: {list(opt.choices)}.")
    if opt.bounds is not None:
        lo, hi = opt.bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            shown = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise InvalidParameterError(f"{opt.name} must be in {shown}, got {value!r}.")
    return value


def _number(opt: Option, value):
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not is_number or not math.isfinite(float(value)):
        kind = "an integer" if opt.type is int else "a number"
        raise InvalidParameterError(f"{opt.name} must be {kind}, got {value!r}.")
    if opt.type is int:
        if float(value) != int(value):
            raise InvalidParameterError(f"{opt.name} must be an integer, got {value!r}.")
        return int(value)
    return float(value)
