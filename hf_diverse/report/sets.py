"""The first stage of a report: the texts of each set (pool, subset, random) and how subset rows map to pool rows."""

from dataclasses import dataclass, field

import numpy as np
from datasets import Dataset

from ..provenance import get_provenance
from ..textviews import TextView
from ..utils.logging import get_logger
from .result import COMPONENTS, LABELS

logger = get_logger(__name__)


@dataclass
class ReportSets:
    """The sets a report measures, with their texts per component.

    Attributes:
        pool_texts (`dict[str, list[str]]`): instruction and response text of every pool row.
        subset_texts (`dict[str, list[str]]` or `None`): the same for every subset row.
        pool_view (`TextView`) and subset_view (`TextView` or `None`): how the texts were read.
        match_idx (`np.ndarray` or `None`): the pool row of each subset row, -1 when it is not a pool row.
        random_idx (`np.ndarray` or `None`): sorted pool rows of the random subset.
        sizes (`dict`): rows per label, in label order.
        matching (`dict`): `matched`, `unmatched` and `by` (empty without a subset).
        notes (`list[str]`): caveats found here (provenance pool size, no random baseline).
    """

    pool_texts: dict
    subset_texts: dict | None = None
    pool_view: TextView | None = None
    subset_view: TextView | None = None
    match_idx: np.ndarray | None = None
    random_idx: np.ndarray | None = None
    sizes: dict = field(default_factory=dict)
    matching: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [label for label in LABELS if label in self.sizes]

    def texts(self, component: str) -> dict[str, list[str]]:
        """`{label: texts}` of `component` for every label (the random subset's are pool texts)."""
        pool = self.pool_texts[component]
        out = {"pool": pool}
        if self.subset_texts is not None:
            out["subset"] = self.subset_texts[component]
        if self.random_idx is not None:
            out["random"] = [pool[i] for i in self.random_idx]
        return {label: out[label] for label in self.labels}


def collect_sets(
    dataset: Dataset,
    subset: Dataset | None,
    pool_view: TextView,
    subset_view: TextView | None = None,
    *,
    seed: int = 0,
    random_baseline: bool = True,
) -> ReportSets:
    """Read the texts of the pool and the subset, match subset rows to pool rows and draw the random subset.

    Args:
        dataset (`datasets.Dataset`): the pool.
        subset (`datasets.Dataset`, *optional*): the subset.
        pool_view (`TextView`) and subset_view (`TextView`, *optional*): text views of the two datasets.
        seed (`int`, defaults to 0): seed of the random subset.
        random_baseline (`bool`, defaults to `True`): draw a random pool subset of the subset's size (when it fits).

    Example:
    ```py
    >>> subset = pool.select(range(0, 60, 2))
    >>> sets = collect_sets(pool, subset, TextView.for_columns(pool.column_names),
    ...                     TextView.for_columns(subset.column_names))
    >>> sets.labels, sets.matching["matched"]
    (['subset', 'pool', 'random'], 30)
    ```
    """
    pool_texts = read_texts(dataset, pool_view)
    n = len(dataset)
    if subset is None:
        return ReportSets(pool_texts, pool_view=pool_view, sizes={"pool": n})
    subset_texts = read_texts(subset, subset_view)
    m = len(subset)
    match_idx, by = link_rows(subset, pool_texts, subset_texts)
    matching = {"matched": int((match_idx >= 0).sum()), "unmatched": int((match_idx < 0).sum()), "by": by}
    notes = []
    record = get_provenance(subset) or {}
    if record.get("pool_size") is not None and record["pool_size"] != n:
        notes.append(
            f"The subset's provenance says it was selected from a pool of {record['pool_size']} rows; "
            f"this pool has {n}."
        )
    if matching["unmatched"]:
        message = (
            f"Only {matching['matched']} of {m} subset rows match rows of this pool (by {by}): this is not the pool "
            "the subset was selected from, or it changed since. The subset's text metrics stand; its coverage is "
            "measured against this pool."
        )
        logger.warning(message)
        notes.append(message)
    sizes = {"subset": m, "pool": n}
    random_idx = None
    if random_baseline:
        if m > n:
            notes.append(f"No random baseline: the subset ({m} rows) is larger than the pool ({n}).")
        else:
            random_idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
            sizes["random"] = m
    return ReportSets(pool_texts, subset_texts, pool_view, subset_view, match_idx, random_idx, sizes, matching, notes)


def needed_columns(view: TextView, column_names: list[str]) -> list[str]:
    """The columns `view` reads its texts from, in dataset order."""
    return view.columns(column_names)


def link_rows(subset: Dataset, pool_texts: dict, subset_texts: dict) -> tuple[np.ndarray, str]:
    """The pool row of each subset row (-1 when none) and how they were linked.

    A subset made by `select_diverse` names its pool rows in `source_index`; a row counts as linked when the pool row
    it names has the same instruction and response (so a subset compared with another pool links nothing). Other
    subsets are matched by exact text (`match_rows`).
    """
    if "source_index" not in subset.column_names:
        return match_rows(pool_texts, subset_texts), "exact (instruction, response) text"
    idx = np.asarray(subset.with_format("numpy")["source_index"], dtype=np.int64)
    n = len(pool_texts["instruction"])
    out = np.full(len(idx), -1, dtype=np.int64)
    for j, i in enumerate(idx):
        if 0 <= i < n and all(pool_texts[c][i] == subset_texts[c][j] for c in COMPONENTS):
            out[j] = i
    return out, "source_index"


def read_texts(dataset: Dataset, view: TextView, chunk: int = 10_000) -> dict[str, list[str]]:
    """Instruction and response text of every row (only the text columns are read: no embedding lists)."""
    ds = dataset.select_columns(needed_columns(view, dataset.column_names))
    out: dict[str, list[str]] = {c: [] for c in COMPONENTS}
    for start in range(0, len(ds), chunk):
        batch = ds[start : start + chunk]
        rows = range(start, min(start + chunk, len(ds)))
        for component in COMPONENTS:
            out[component].extend(view.texts(batch, what=component, indices=rows))
    return out


def match_rows(pool_texts: dict, subset_texts: dict) -> np.ndarray:
    """Pool row of each subset row by exact (instruction, response) text, -1 when absent. Duplicates in the pool
    are matched in order (the i-th copy in the subset gets the i-th copy in the pool).

    Example:
    ```py
    >>> match_rows({"instruction": ["a", "b", "a"], "response": ["x", "y", "x"]},
    ...            {"instruction": ["a", "a", "a", "c"], "response": ["x", "x", "x", "z"]}).tolist()
    [0, 2, -1, -1]
    ```
    """
    where: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(pool_texts["instruction"], pool_texts["response"], strict=True)):
        where.setdefault(key, []).append(i)
    used: dict[tuple[str, str], int] = {}
    out = np.full(len(subset_texts["instruction"]), -1, dtype=np.int64)
    for j, key in enumerate(zip(subset_texts["instruction"], subset_texts["response"], strict=True)):
        rows = where.get(key)
        if rows:
            taken = used.get(key, 0)
            if taken < len(rows):
                out[j] = rows[taken]
                used[key] = taken + 1
    return out
