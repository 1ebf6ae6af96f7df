"""The tag stage of a report: the meso (tag) diversity of each set when the datasets carry a tag column.

Tag diversity is the macro-to-micro paper's meso measure (Appendix D.2): distinct tag categories / total tags
(`hf_diverse.metrics.tag_diversity`). The columns are those `TagScorer` and `normalize_tags` write: for instructions
`tags_normalized`, else `tags`; for responses `response_tags_normalized`, else `response_tags` (the normalised
categories are preferred, raw tags count every spelling as its own category).
"""

import numpy as np
from datasets import Dataset

from .. import metrics as M
from .result import finite_or_none
from .sets import ReportSets

# component -> tag columns looked for, best first
TAG_COLUMNS = {
    "instruction": ("tags_normalized", "tags"),
    "response": ("response_tags_normalized", "response_tags"),
}


def find_tag_column(dataset: Dataset | None, component: str, requested: str | None = None) -> str | None:
    """The tag column of `component` in `dataset`: `requested` when given and present, else the first of
    `TAG_COLUMNS[component]` that is there, else `None`."""
    if dataset is None:
        return None
    names = (requested,) if requested else TAG_COLUMNS[component]
    return next((c for c in names if c in dataset.column_names), None)


def tag_metrics(
    dataset: Dataset, subset: Dataset | None, sets: ReportSets, component: str, requested: str | None = None
) -> tuple[dict, list]:
    """`({label: {"tag_diversity": value}}, notes)`; empty when neither dataset has a tag column for `component`.

    The subset's tags are its own column, else (for rows matched to pool rows) the pool's; the random subset uses the
    pool's. A set without tags gets `None`.

    Example:
    ```py
    >>> from hf_diverse.report.sets import collect_sets
    >>> from hf_diverse.textviews import TextView
    >>> tagged = Dataset.from_dict({"prompt": ["a", "b", "c"], "response": ["x", "y", "z"],
    ...                             "tags": [["math"], ["math", "code"], ["poem"]]})
    >>> view = TextView.for_columns(tagged.column_names)
    >>> sets = collect_sets(tagged, tagged.select([0, 1]), view, view, random_baseline=False)
    >>> tag_metrics(tagged, tagged.select([0, 1]), sets, "instruction")[0]
    {'subset': {'tag_diversity': 0.6666666666666666}, 'pool': {'tag_diversity': 0.75}}
    ```
    """
    pool_column = find_tag_column(dataset, component, requested)
    subset_column = find_tag_column(subset, component, requested)
    if pool_column is None and subset_column is None:
        return {}, []
    pool_tags = list(dataset[pool_column]) if pool_column else None
    out = {"pool": pool_tags}
    notes = []
    if subset is not None:
        if subset_column is not None:
            out["subset"] = list(subset[subset_column])
        elif pool_tags is not None and sets.match_idx is not None and bool(np.all(sets.match_idx >= 0)):
            out["subset"] = [pool_tags[j] for j in sets.match_idx.tolist()]
        else:
            out["subset"] = None
            notes.append(f"Tag diversity ({component}): the subset has no tag column and not every row is a pool row.")
    if sets.random_idx is not None:
        out["random"] = [pool_tags[i] for i in sets.random_idx.tolist()] if pool_tags is not None else None
    rows = {
        label: {"tag_diversity": None if out.get(label) is None else finite_or_none(M.tag_diversity(out[label]))}
        for label in sets.labels
    }
    return rows, notes
