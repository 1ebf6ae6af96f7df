"""`Scorer`: the base class of every scorer, a picklable callable for `Dataset.map(batched=True)` that adds columns.

The base class owns what every scorer needs to live inside `datasets`; a subclass only says how to load its model
and how to score one batch.

- State: the public attributes set by `__init__` from plain arguments are the scorer's whole configuration. What a
  scorer builds at run time (the loaded model, the tokenizer, caches) lives in attributes whose name starts with an
  underscore, which `__getstate__` drops. So the `map(num_proc=n)` workers receive the configuration only, and
  `datasets.fingerprint.Hasher.hash(scorer)` is the same before and after a call, which lets a second identical
  `map` re-use its cache. Runtime attributes are declared on the class (`_weights = None`), so an unpickled copy
  reads the class default until it loads again.
- Loading: `load(device)` calls the subclass's `load_model(device)` on the first use, and again only when the device
  changes.
- Calling: `__call__(batch, indices=None, rank=None)` accepts every calling convention of `map(batched=True)`:
  `with_indices`, `with_rank` (rank `r` runs on `cuda:{r % n_gpus}`), and the rank passed second when there are no
  indices. It resolves the device and hands over to the subclass's `score_batch(batch, indices, device)`.
"""

from abc import ABC, abstractmethod

import torch
from datasets import Dataset, Features

from ..utils.device import resolve_device


class Scorer(ABC):
    """Base class of the scorers: subclasses keep plain `__init__` arguments and implement `score_batch`.

    A subclass sets its configuration as public attributes in `__init__` (no model there), declares any runtime
    attribute on the class with a leading underscore, and implements:

    - `score_batch(batch, indices, device)` (required): the new columns of one batch, one list entry per row; it gets
      its model with `self.load(device)`;
    - `load_model(device)`: build the model (or `(model, tokenizer)`, any object) on `device`; `load` caches it;
    - `output_features()`: the `datasets` feature of each column written, so `features(dataset)` can type them;
    - `model_info`: what provenance records about the model, when the default (`model` and `revision` as given)
      says too little;
    - `repr_fields`: the attributes `repr` shows (all public attributes when empty).

    Example:
    ```py
    >>> from datasets import Value
    >>> class LengthScorer(Scorer):
    ...     def output_features(self):
    ...         return {"length": Value("int64")}
    ...     def score_batch(self, batch, indices, device):
    ...         return {"length": [len(t) for t in batch["prompt"]]}
    >>> scorer = LengthScorer()
    >>> ds = Dataset.from_dict({"prompt": ["Hi", "Name a prime.", "Write a haiku."]})
    >>> ds = ds.map(scorer, batched=True, features=scorer.features(ds))  # `num_proc=n` works too (picklable)
    >>> ds["length"][:]
    [2, 13, 14]
    ```
    """

    # the device a subclass runs on (`None`: auto); subclasses that take a `device` argument set it in `__init__`
    device: str | None = None
    repr_fields: tuple[str, ...] = ()
    # runtime state, never pickled nor hashed: what `load_model` returned and the device it is on
    _loaded = None
    _loaded_device: torch.device | None = None

    def __getstate__(self) -> dict:
        # the configuration only: runtime attributes (leading underscore) fall back to their class defaults
        return {name: value for name, value in self.__dict__.items() if not name.startswith("_")}

    def __repr__(self) -> str:
        names = self.repr_fields or tuple(self.__getstate__())
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({args})"

    @property
    def model_info(self) -> dict:
        """What provenance records about the scorer's model: `name`, `source`, `revision` (this default: as given)."""
        model = getattr(self, "model", None)
        return {
            "name": None if model is None else str(model),
            "source": "user",
            "revision": getattr(self, "revision", None),
        }

    def load(self, device=None):
        """Load (once per device) and return what `load_model` builds.

        Args:
            device (`str` or `torch.device`, *optional*): where to load; `None` is the scorer's own `device`
                (auto when that is `None` too: cuda, mps, cpu).
        """
        device = resolve_device(device if device is not None else self.device)
        if self._loaded is None or self._loaded_device != device:
            self._loaded = self.load_model(device)
            self._loaded_device = device
        return self._loaded

    def load_model(self, device: torch.device):
        """Build the scorer's model on `device` (called by `load`). The default loads nothing: scorers without a model
        need not override it."""
        return None

    def output_features(self) -> dict:
        """`{column: datasets feature}` of the columns written. The default declares none (`map` then infers them)."""
        return {}

    def features(self, dataset: Dataset) -> Features:
        """`dataset`'s features plus the scorer's output columns: pass as `map(features=...)`."""
        feats = dataset.features.copy()
        feats.update(self.output_features())
        return feats

    def __call__(self, batch: dict[str, list], indices=None, rank: int | None = None) -> dict[str, list]:
        # map(with_rank=True) without with_indices passes the rank second
        if isinstance(indices, int):
            indices, rank = None, indices
        return self.score_batch(batch, indices, resolve_device(self.device, rank))

    @abstractmethod
    def score_batch(self, batch: dict[str, list], indices: list[int] | None, device: torch.device) -> dict[str, list]:
        """The new columns of one batch.

        Args:
            batch (`dict[str, list]`): the batch's columns, as `map(batched=True)` passes them.
            indices (`list[int]`, *optional*): the rows' dataset indices (`map(with_indices=True)`), else `None`.
            device (`torch.device`): where this call runs (resolved from `device` and the rank).

        Returns:
            `dict[str, list]`: one list (or array) per output column, one entry per row of `batch`.
        """
