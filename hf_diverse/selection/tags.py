"""`method="tags"`: meso (tag-level) diversity with a `diversity` dial (the macro-to-micro paper, Appendix D.2).

Each row carries tag categories (`tags_normalized` from `TagScorer` + `normalize_tags`; see
`hf_diverse.scorers.tags` and `hf_diverse.scorers.tag_categories`). The paper's measure of a set is its *tag
diversity*: distinct tag categories / total tags. The dial (hf_diverse's design where the paper is silent):

1. **Categories** are ranked by how many pool rows hold them, most frequent first (ties: alphabetical). Choosing the
   first c categories makes *eligible* the rows whose categories all lie among them; each eligible row belongs to its
   rarest category (the one that made it eligible). `c_min` is the fewest categories whose eligible rows number at
   least k, `C` all categories.
2. **Uniform over the chosen categories**: the k rows are spread over the rows' categories by water-filling
   (`hf_diverse.quota.equal_quota`: counts differ by at most one where categories are large enough; rows left over
   go to the rarer categories first), best `quality_column` first inside a category, else a seeded random order.
3. **The dial** lands on a fixed grid of levels c from `C` down to `c_min` (every level, or at most 64 evenly spaced).
   With r_top / r_bottom the tag diversity at the first / last level, the target is
   `r_bottom + diversity * (r_top - r_bottom)` and the subset is the one of the *first* level whose tag diversity is
   at most the target. First passage over one fixed sequence makes the tag diversity monotone non-decreasing in
   `diversity` by construction (the argument of `hf_diverse.selection.tokens`). `diversity=1` draws from every
   category, `diversity=0` reaches the lowest tag diversity of the grid.

Rows without tags are never picked (counted in `details`). When the pool has raw tags only (`tags`), they are
normalised first (`normalize_tags`, the bundled MiniLM); when it has none, the rows are tagged with `TagScorer`
(`tagger_model`, default the embedded SmolLM2) first: the costly step, logged. `what="response"` reads the response
tags (`response_tags_normalized`, ...).
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from ..metrics import tag_diversity
from ..quota import equal_quota, take_round_robin, within_cluster_orders
from ..scorers.tag_categories import fit_tag_categories
from ..scorers.tags import TagScorer, column_names
from ..utils.logging import get_logger
from .base import Method, SelectionContext, SelectionResult
from .config import MethodConfig, diversity_option, option

logger = get_logger(__name__)

MAX_LEVELS = 64


@dataclass
class TagsConfig(MethodConfig):
    """Options of `method="tags"` (`select_diverse`'s `what=` picks instruction or response tags)."""

    diversity: float = diversity_option(
        "0 draws from the fewest (most frequent) tag categories that can supply k rows, 1 from every category; the "
        "tag diversity (distinct categories / total tags) is monotone in between."
    )
    tag_column: str | None = option(
        None,
        "Column of tag categories (list of strings); default tags_normalized (response_tags_normalized with "
        "what='response'), normalised from tags / response_tags when only those exist, else tagged first.",
    )
    tagger_model: str | None = option(
        None, "Chat model that tags the pool when it has no tag column (default: the embedded SmolLM2-135M-Instruct)."
    )


def pool_tags(ctx: SelectionContext, config: TagsConfig) -> tuple[list, dict]:
    """The tag categories of every pool row and where they came from (`details["tags"]`)."""
    if ctx.what not in ("instruction", "response"):
        raise InvalidParameterError(f"method='tags' reads instruction or response tags; got what={ctx.what!r}.")
    raw, _ = column_names(ctx.what)
    names = ctx.dataset.column_names
    if config.tag_column is not None:
        if config.tag_column not in names:
            raise InvalidParameterError(
                f"tag_column={config.tag_column!r} not in the dataset. Current columns in the dataset: {names}."
            )
        return list(ctx.dataset[config.tag_column][:]), {"column": config.tag_column, "source": "column"}
    if f"{raw}_normalized" in names:
        return list(ctx.dataset[f"{raw}_normalized"][:]), {"column": f"{raw}_normalized", "source": "column"}
    info = {"column": raw}
    if raw in names:
        tag_lists = list(ctx.dataset[raw][:])
        info["source"] = "column, normalised here"
    else:
        logger.warning(
            "tags: the pool has no %r column; tagging %d rows with %s first (the costly step: tag once with "
            "`pool.map(TagScorer(), batched=True)` and re-use the column).",
            raw,
            ctx.n,
            config.tagger_model or "the embedded SmolLM2-135M-Instruct",
        )
        scorer = TagScorer(model=config.tagger_model, component=ctx.what, text_columns=ctx.text_columns)
        tagged = ctx.dataset.map(scorer, batched=True, batch_size=64, features=scorer.features(ctx.dataset))
        tag_lists = list(tagged[raw][:])
        info.update(source="tagged here", tagger=scorer.model_info)
    cats = fit_tag_categories(tag_lists, device=str(ctx.device))
    info["normalisation"] = cats.settings
    return [cats.apply(tags) for tags in tag_lists], info


@dataclass
class TagLevels:
    """The pool's categories and the subsets of the dial's levels (computed when needed)."""

    row_cats: list  # category indices of each row (rank order: 0 = most frequent)
    primary: np.ndarray  # each tagged row's rarest category, -1 for an untagged row
    names: list  # category names in rank order
    k: int
    quality: np.ndarray | None
    seed: int

    def __post_init__(self):
        tagged = np.sort(self.primary[self.primary >= 0])
        if len(tagged) < self.k:
            raise InvalidParameterError(
                f"method='tags' needs k={self.k} rows with tags; the pool has {len(tagged)} "
                f"(of {len(self.primary)} rows)."
            )
        self.c_min = int(tagged[self.k - 1]) + 1
        self.c_all = len(self.names)
        levels = np.arange(self.c_all, self.c_min - 1, -1)
        if len(levels) > MAX_LEVELS:
            levels = np.unique(np.round(np.linspace(self.c_min, self.c_all, MAX_LEVELS)).astype(np.int64))[::-1]
        self.levels = levels
        self._subsets: dict[int, tuple] = {}

    def subset(self, g: int) -> tuple[np.ndarray, np.ndarray, float]:
        """`(rows, category of each row, tag diversity)` at level `g` of the grid (memoised)."""
        if g not in self._subsets:
            c = int(self.levels[g])
            eligible = (self.primary >= 0) & (self.primary < c)
            labels = np.where(eligible, self.primary, -1)
            groups, sizes = np.unique(labels[eligible], return_counts=True)
            orders = within_cluster_orders(labels, groups, self.quality, self.seed)
            quota = equal_quota(sizes, self.k, tie_scores=groups.astype(np.float64))  # leftovers: rarer first
            rows, pos = take_round_robin(orders, quota, self.quality)
            ratio = tag_diversity([[self.names[j] for j in self.row_cats[i]] for i in rows])
            self._subsets[g] = (rows, groups[pos], ratio)
        return self._subsets[g]

    def landing(self, diversity: float) -> tuple[int, float]:
        """`(level index, target)`: the first level whose tag diversity is at most the target."""
        top, bottom = self.subset(0)[2], self.subset(len(self.levels) - 1)[2]
        target = bottom + diversity * (top - bottom)
        g = 0
        while g < len(self.levels) - 1 and self.subset(g)[2] > target + 1e-12:
            g += 1
        return g, target


def tag_levels(tag_lists: list, k: int, quality, seed: int) -> TagLevels:
    """Categories ranked by the rows holding them (most first, ties alphabetical) and the rows' rarest category."""
    holders: dict[str, int] = {}
    for tags in tag_lists:
        for t in set(tags or ()):
            holders[t] = holders.get(t, 0) + 1
    names = sorted(holders, key=lambda t: (-holders[t], t))
    index = {t: i for i, t in enumerate(names)}
    row_cats = [sorted({index[t] for t in tags or ()}) for tags in tag_lists]
    primary = np.array([cats[-1] if cats else -1 for cats in row_cats], dtype=np.int64)
    return TagLevels(row_cats, primary, names, k, quality, seed)


def select_tags(ctx: SelectionContext, config: TagsConfig) -> SelectionResult:
    """Meso diversity: k rows whose tag diversity is set by `diversity` (see the module docstring).

    Args:
        ctx (`SelectionContext`): from `select_diverse` (`what` picks instruction or response tags; an optional
            `quality_column` orders rows inside a category).
        config (`TagsConfig`): the dial and where the tags come from.

    Returns:
        `SelectionResult` with a `selection_tag` column (the category each row was drawn for); `objective` has
        `tag_diversity`, `categories_used` and `tags_total`.

    Example:
    ```py
    >>> from hf_diverse import get_provenance, select_diverse
    >>> tags = [["math"], ["math", "algebra"], ["poetry"], ["math"], ["cooking", "recipes"], ["travel"]] * 5
    >>> pool = Dataset.from_dict({"prompt": [f"q{i}" for i in range(30)], "response": ["a"] * 30,
    ...                          "tags_normalized": tags})
    >>> low = select_diverse(pool, k=6, method="tags", diversity=0.0, show_progress=False)
    >>> high = select_diverse(pool, k=6, method="tags", diversity=1.0, show_progress=False)
    >>> [round(get_provenance(s)["objective"]["tag_diversity"], 3) for s in (low, high)]
    [0.167, 0.75]
    ```
    """
    tag_lists, source = pool_tags(ctx, config)
    quality = ctx.quality()
    levels = tag_levels(tag_lists, ctx.k, quality, ctx.seed)
    g, target = levels.landing(config.diversity)
    rows, drawn_for, ratio = levels.subset(g)
    subset_tags = [tag_lists[i] for i in rows]
    total = sum(len(t) for t in subset_tags)
    untagged = int((levels.primary < 0).sum())
    if untagged:
        logger.info("tags: %d of %d rows have no tags and are never picked.", untagged, ctx.n)
    return SelectionResult(
        indices=rows.astype(np.int64),
        gains=np.asarray([len(t) for t in subset_tags], dtype=np.float64),
        objective={
            "tag_diversity": ratio,
            "categories_used": len({t for tags in subset_tags for t in tags}),
            "tags_total": total,
            "categories_pool": levels.c_all,
        },
        details={
            "diversity": config.diversity,
            "what": ctx.what,
            "tags": source,
            "categories_chosen": int(levels.levels[g]),
            "categories_min": levels.c_min,
            "levels": len(levels.levels),
            "target_tag_diversity": target,
            "untagged_rows": untagged,
            "within_category": "quality descending" if quality is not None else f"random (seed {ctx.seed})",
        },
        columns={"selection_tag": [levels.names[j] for j in drawn_for.tolist()]},
    )


METHOD = Method(
    name="tags",
    select=select_tags,
    config=TagsConfig,
    label="tags: meso diversity over LLM tag categories (diversity dial)",
    summary="Meso diversity (macro-to-micro paper): InsTag-style tags from an LLM, normalised into categories; the "
    "`diversity` dial sets the tag diversity (distinct categories / total tags), rows spread evenly over the chosen "
    "categories.",
    choices=(
        "Tags come from `TagScorer` (default: the embedded SmolLM2-135M-Instruct with a prompt written for "
        "hf_diverse) instead of the paper's Llama-3.1-70B-Nemotron, without the second-model consistency check; "
        "synonyms are merged by HDBSCAN (eps 0.15, min_samples 2) with a cosine guard of 0.75 to the central tag.",
        "Categories are chosen most frequent first and each row counts for its rarest category; the dial lands on "
        "the first of at most 64 levels whose tag diversity is at most its target, so it is monotone.",
    ),
)
