"""The selection methods: a plain dict from name to `Method`, built from the method modules.

Adding a method is one module (a `MethodConfig`, a `select_<name>(ctx, config)` function and a `Method` record) plus
one line here; `select_diverse`, the CLI flags, the Space and the dataset card read everything else from the record.
The order is the order of menus and `--help`.
"""

from ..errors import InvalidParameterError
from .adg import METHOD as ADG
from .base import Method
from .baselines import QUALITY, RANDOM
from .clusters import METHOD as CLUSTERS
from .qdit import METHOD as QDIT
from .tags import METHOD as TAGS
from .tokens import METHOD as TOKENS
from .variants import CLUSTER, THRESHOLD

METHODS: dict[str, Method] = {
    m.name: m for m in (QDIT, ADG, TOKENS, TAGS, CLUSTERS, RANDOM, QUALITY, THRESHOLD, CLUSTER)
}
VALID_METHODS = tuple(METHODS)


def get_method(name: str) -> Method:
    """The registered method called `name`, e.g. `get_method("qdit").config().alpha == 0.7`."""
    if name not in METHODS:
        raise InvalidParameterError(f"Unknown method {name!r}. Valid methods: {list(VALID_METHODS)}.")
    return METHODS[name]


def method_parameters(method: str) -> dict:
    """A method's options and their defaults, e.g. `method_parameters("qdit")["alpha"] == 0.7`."""
    return get_method(method).config().to_dict()
