"""Tag normalisation: from the raw tags of `TagScorer` to tag categories (the macro-to-micro paper, Appendix D.2).

The paper filters non-words, merges synonyms, clusters the tags with HDBSCAN (eps=0.15, min_samples=2) over tag
embeddings and replaces each tag by its cluster's central tag. Here (`fit_tag_categories`, `normalize_tags`):

1. *Clean*: every tag goes through `clean_tag` (lowercase, stripped, whitespace collapsed; tags without a letter and
   over-long ones are dropped). Spellings that differ only by `-`, `_` or spacing (`problem-solving`,
   `problem solving`) are one tag, written as its most frequent spelling.
2. *Embed* the distinct tags with a sentence-transformers model (default: the bundled all-MiniLM-L6-v2), unit rows.
3. *Cluster* with scikit-learn's `HDBSCAN(min_cluster_size=2, min_samples=2, cluster_selection_epsilon=0.15)`,
   euclidean on the unit rows (the paper's settings; min_cluster_size=2 so that a pair of synonyms is a cluster).
   Noise tags (label -1) are categories of their own.
4. *Central tag* of a cluster: its member with the largest occurrence-weighted similarity to the members (a
   weighted medoid; ties: the more frequent, then the alphabetically first tag).
5. *Guard* (hf_diverse's choice): a member is replaced by the central tag only when their cosine similarity is at
   least `min_similarity` (0.75). HDBSCAN with clusters of two merges whatever is densest around a point, which on a
   small or sparse tag set joins tags that are related but not synonyms ("biology" and "chemistry", cosine 0.48
   with MiniLM); `min_similarity=None` applies the clusters as they are (the paper).

Diversity at this level is distinct categories / total tags (`hf_diverse.metrics.tag_diversity`).
"""

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from datasets import Dataset, List, Value

from ..errors import ColumnNotFoundError, InvalidParameterError
from ..models import load_sentence_transformer, resolve_embedding_model
from ..utils.logging import get_logger
from .tags import clean_tag

logger = get_logger(__name__)

PAPER_EPS, PAPER_MIN_SAMPLES = 0.15, 2
MIN_SIMILARITY = 0.75


@dataclass
class TagCategories:
    """The category (central tag) of every distinct tag, and how it was found.

    Attributes:
        mapping (`dict[str, str]`): cleaned tag -> category.
        counts (`dict[str, int]`): occurrences of each cleaned tag.
        settings (`dict`): model, HDBSCAN settings, guard, and the counts of tags and categories.
    """

    mapping: dict
    counts: dict
    settings: dict = field(default_factory=dict)

    @property
    def n_tags(self) -> int:
        return len(self.mapping)

    @property
    def n_categories(self) -> int:
        return len(set(self.mapping.values()))

    def apply(self, tags) -> list[str]:
        """The categories of one row's tags, de-duplicated in order (unknown tags are cleaned and kept as they are).

        Example:
        ```py
        >>> TagCategories({"maths": "math", "math": "math"}, {"maths": 1, "math": 3}).apply(["Maths", "math", "art"])
        ['math', 'art']
        ```
        """
        out: list[str] = []
        for tag in tags or ():
            tag = clean_tag(tag)
            if tag is None:
                continue
            category = self.mapping.get(_key(tag), self.mapping.get(tag, tag))
            if category not in out:
                out.append(category)
        return out


def _key(tag: str) -> str:
    return " ".join(re.sub(r"[-_/]+", " ", tag).split())


def fit_tag_categories(
    tag_lists,
    model: str | None = None,
    eps: float = PAPER_EPS,
    min_samples: int = PAPER_MIN_SAMPLES,
    min_similarity: float | None = MIN_SIMILARITY,
    batch_size: int = 256,
    device: str | None = None,
) -> TagCategories:
    """Categories of the tags of a pool (see the module docstring).

    Args:
        tag_lists (`list[list[str]]`): the tags of every row.
        model (`str`, *optional*): sentence-transformers model for the tag embeddings (default all-MiniLM-L6-v2).
        eps (`float`, defaults to 0.15): HDBSCAN's `cluster_selection_epsilon` (the paper's).
        min_samples (`int`, defaults to 2): HDBSCAN's `min_samples` (the paper's).
        min_similarity (`float`, *optional*, defaults to 0.75): the guard; `None` keeps HDBSCAN's clusters as they are.
        batch_size (`int`, defaults to 256): encoder batch size.
        device (`str`, *optional*): encoder device (`None`: auto).

    Example:
    ```py
    >>> cats = fit_tag_categories([["math", "poetry"], ["mathematics"], ["poems", "travel"], ["math", "cooking"]])
    >>> cats.apply(["mathematics", "poems", "travel"])
    ['math', 'poetry', 'travel']
    ```
    """
    if not 0 <= eps:
        raise InvalidParameterError(f"eps must be >= 0, got {eps!r}.")
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise InvalidParameterError(f"min_samples must be a positive integer, got {min_samples!r}.")
    if min_similarity is not None and not -1 <= min_similarity <= 1:
        raise InvalidParameterError(f"min_similarity must be in [-1, 1] or None, got {min_similarity!r}.")
    counts: Counter = Counter()
    spellings: dict[str, Counter] = {}
    for tags in tag_lists:
        for tag in tags or ():
            tag = clean_tag(tag)
            if tag is not None:
                counts[_key(tag)] += 1
                spellings.setdefault(_key(tag), Counter())[tag] += 1
    # each key is written as its most frequent spelling (ties: the alphabetically first)
    spelled = {key: min(s.items(), key=lambda kv: (-kv[1], kv[0]))[0] for key, s in spellings.items()}
    keys = sorted(counts)
    settings = {
        "model": resolve_embedding_model(model)[1]["name"],
        "hdbscan": {"min_cluster_size": 2, "min_samples": min_samples, "cluster_selection_epsilon": eps},
        "metric": "euclidean on unit embeddings",
        "min_similarity": min_similarity,
    }
    if len(keys) < 3:  # HDBSCAN needs more points than min_samples; nothing to merge anyway
        mapping = {key: spelled[key] for key in keys}
    else:
        mapping = _cluster(
            keys, [spelled[k] for k in keys], counts, model, eps, min_samples, min_similarity, batch_size, device
        )
    for key in keys:  # the raw spellings map too
        for spelling in spellings[key]:
            mapping.setdefault(spelling, mapping[key])
    cats = TagCategories(mapping, {spelled[k]: counts[k] for k in keys}, settings)
    cats.settings.update(n_tags=len(keys), n_categories=len({mapping[k] for k in keys}))
    logger.info(
        "Tag categories: %d distinct tags -> %d categories (HDBSCAN eps=%s, min_samples=%d; min_similarity %s).",
        len(keys),
        cats.settings["n_categories"],
        eps,
        min_samples,
        min_similarity,
    )
    return cats


def _cluster(keys, names, counts, model, eps, min_samples, min_similarity, batch_size, device) -> dict:
    from sklearn.cluster import HDBSCAN

    encoder = load_sentence_transformer(model, device=device)
    emb = np.asarray(encoder.encode(names, batch_size=batch_size, normalize_embeddings=True), dtype=np.float64)
    labels = (
        HDBSCAN(min_cluster_size=2, min_samples=min_samples, cluster_selection_epsilon=eps, copy=True).fit(emb).labels_
    )
    weights = np.array([counts[k] for k in keys], dtype=np.float64)
    mapping = {key: name for key, name in zip(keys, names, strict=True)}
    for label in np.unique(labels[labels >= 0]).tolist():
        members = np.flatnonzero(labels == label)
        sim = emb[members] @ emb[members].T
        score = sim @ weights[members]
        # the weighted medoid; ties: the more frequent, then the alphabetically first
        best = min(range(len(members)), key=lambda i: (-round(score[i], 9), -weights[members[i]], names[members[i]]))
        for i, row in enumerate(members.tolist()):
            if min_similarity is None or sim[i, best] >= min_similarity - 1e-9:
                mapping[keys[row]] = names[members[best]]
    return mapping


def normalize_tags(
    dataset: Dataset,
    column: str = "tags",
    output_column: str | None = None,
    categories: TagCategories | None = None,
    **kwargs,
) -> Dataset:
    """`dataset` with a column of tag categories: `<column>_normalized` by default (e.g. `tags_normalized`).

    Args:
        dataset (`datasets.Dataset`): rows with a list-of-strings tag column (e.g. from `TagScorer`).
        column (`str`, defaults to `"tags"`): the raw tags.
        output_column (`str`, *optional*): where the categories go (replaced when it exists).
        categories (`TagCategories`, *optional*): categories fitted before (e.g. on a larger pool); default: fitted
            here on this dataset's tags.
        **kwargs: passed to `fit_tag_categories` (`model`, `eps`, `min_samples`, `min_similarity`, ...).

    Example:
    ```py
    >>> ds = Dataset.from_dict({"tags": [["Math", "poetry"], ["mathematics"], ["poems"], ["math", "travel"]]})
    >>> normalize_tags(ds)["tags_normalized"][:]
    [['math', 'poetry'], ['math'], ['poetry'], ['math', 'travel']]
    ```
    """
    if column not in dataset.column_names:
        raise ColumnNotFoundError(
            f"Tag column {column!r} not in the dataset. Current columns in the dataset: {dataset.column_names}. "
            "Add tags with `dataset.map(TagScorer(), batched=True)`."
        )
    output_column = output_column or f"{column}_normalized"
    tag_lists = list(dataset[column][:])
    cats = categories if categories is not None else fit_tag_categories(tag_lists, **kwargs)
    values = [cats.apply(tags) for tags in tag_lists]
    if output_column in dataset.column_names:
        dataset = dataset.remove_columns(output_column)
    return dataset.add_column(output_column, values, feature=List(Value("string")))
