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
  indices. It resolves the device and hands over to the subclass's `score_batch(batch, indices, device)`. A
  `pyarrow.Table` batch (Ray Data's `map_batches(..., batch_format="pyarrow")`) comes back as the same table with the
  scorer's columns added, typed by `output_features`, so the class runs unchanged as a Ray Data callable class.
- Re-use (`hf_diverse.scoring.score`): results are stored and found again by row content and scorer configuration.
  `input_columns` names the columns a row's result depends on (default: all), `reuse_ignores` the configuration
  fields that do not change results (device, batch sizes). A scorer's output must depend only on the row's content
  and its configuration, not on the row's position.
"""

from abc import ABC, abstractmethod

import pyarrow as pa
import torch
from datasets import Dataset, Features
from datasets.arrow_writer import TypedSequence

from ..textviews import TextView
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
    # configuration fields that do not change the results: left out of the key results are stored under
    reuse_ignores: tuple[str, ...] = ("device", "batch_size")
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

    def input_columns(self, column_names: list[str]) -> list[str]:
        """The columns of a dataset with `column_names` that this scorer's result for a row depends on; rows equal on
        these columns share a stored result (`hf_diverse.scoring`). The default is every column."""
        return list(column_names)

    def text_view_columns(self, column_names: list[str]) -> list[str]:
        """`input_columns` of a scorer that reads rows through a `TextView` (its `text_columns`, else the detected
        format): the text columns only."""
        view = TextView.for_columns(column_names, text_columns=getattr(self, "text_columns", None))
        return view.columns(column_names)

    def __call__(self, batch: dict[str, list], indices=None, rank: int | None = None) -> dict[str, list]:
        # map(with_rank=True) without with_indices passes the rank second
        if isinstance(indices, int):
            indices, rank = None, indices
        if isinstance(batch, pa.Table):  # Ray Data, batch_format="pyarrow": the whole table back, columns added
            scored = self.score_batch(batch.to_pydict(), indices, resolve_device(self.device, rank))
            return append_columns(batch, columns_to_table(scored, self.output_features()))
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


def columns_to_table(columns: dict, features: dict | None = None) -> pa.Table:
    """A scorer's output batch (`{column: list or array}`) as an Arrow table, encoded as `Dataset.map` encodes it;
    `features` (`{column: datasets feature}`) fixes the types of the columns it names, the rest are inferred. The
    `datasets` features go into the schema metadata, so `Dataset.from_file` reads the same types back.

    Example:
    ```py
    >>> from datasets import List, Value
    >>> table = columns_to_table({"e": np.ones((2, 3), dtype="float32")}, {"e": List(Value("float32"), length=3)})
    >>> table.schema.field("e").type
    FixedSizeListType(fixed_size_list<item: float>[3])
    ```
    """
    features = features or {}
    arrays = [pa.array(TypedSequence(values, type=features.get(name))) for name, values in columns.items()]
    table = pa.Table.from_arrays(arrays, names=list(columns))
    return _with_features(table, {name: features[name] for name in columns if name in features})


def append_columns(table: pa.Table, columns: pa.Table) -> pa.Table:
    """`table` with the columns of `columns` added (a column of the same name is replaced), as `Dataset.map` does."""
    known = {**_features_of(table), **_features_of(columns)}
    out = table.drop_columns([name for name in columns.column_names if name in table.column_names])
    for name in columns.column_names:
        out = out.append_column(columns.schema.field(name), columns.column(name))
    return _with_features(out, known)


def _features_of(table: pa.Table) -> dict:
    """The `datasets` feature of each column of `table` (from its schema metadata when it has one)."""
    try:
        feats = Features.from_arrow_schema(table.schema)
    except Exception:  # metadata of other columns (a table whose columns were changed): the Arrow types alone
        feats = Features.from_arrow_schema(table.schema.remove_metadata())
    return {name: feats[name] for name in table.column_names if name in feats}


def _with_features(table: pa.Table, known: dict) -> pa.Table:
    inferred = Features.from_arrow_schema(table.schema.remove_metadata())
    feats = Features({name: known.get(name, inferred[name]) for name in table.column_names})
    return table.replace_schema_metadata(feats.arrow_schema.metadata)
