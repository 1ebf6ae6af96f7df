"""The embedding stages of a report: normalised embeddings of the pool and the subset per component (read from their
columns, or computed with `hf_diverse.embeddings.compute_embeddings`), then embedding distance, coverage and cluster
coverage per set."""

from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import Dataset

from .. import metrics as M
from ..clustering import fit_kmeans
from ..embeddings import compute_embeddings, read_embeddings_chunked
from ..errors import EmbeddingError
from ..textviews import TextView
from .options import ReportOptions
from .result import finite_or_none
from .sets import ReportSets, needed_columns

KMEANS_SETTINGS = {
    "algorithm": "sklearn MiniBatchKMeans on L2-normalised pool embeddings, single-threaded",
    "n_init": 1,
    "batch_size": 4096,
    "init": "k-means++",
}
EMBEDDING_METRICS = ("embedding_distance", "coverage", "cluster_coverage")


@dataclass
class ComponentEmbeddings:
    """L2-normalised embeddings of one component.

    Attributes:
        pool (`torch.Tensor` or `None`): `(N, d)`; `None` when unavailable (then every embedding metric is skipped).
        subset (`torch.Tensor` or `None`): `(m, d)`; `None` without a subset or when its rows cannot be embedded.
        sources (`dict`): where each came from (`{"pool": "column 'embedding'", "subset": ...}`), for the settings.
        notes (`list[str]`): caveats (skipped metrics, a subset embedded with another model than the pool column).
    """

    pool: torch.Tensor | None
    subset: torch.Tensor | None = None
    sources: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def component_embeddings(
    dataset: Dataset, subset: Dataset | None, sets: ReportSets, component: str, options: ReportOptions, device
) -> ComponentEmbeddings:
    """Embeddings of `component` for the pool and the subset.

    Each dataset's own column (`options.embedding_column_of(component)`) is used when present. Otherwise the pool is
    embedded with `options.embedding_model`, and subset rows re-use the embeddings of the pool rows they match
    (`sets.match_idx`); only unmatched rows are embedded. With `options.compute_embeddings=False` nothing is
    embedded and what is missing is `None`, with a note.

    Args:
        dataset (`datasets.Dataset`): the pool.
        subset (`datasets.Dataset`, *optional*): the subset.
        sets (`ReportSets`): from `collect_sets` (text views and row matching).
        component (`str`): `"instruction"` or `"response"`.
        options (`ReportOptions`): columns, model, batch size, progress.
        device (`torch.device`): where the embeddings live.
    """
    column = options.embedding_column_of(component)
    sources: dict = {}
    if column in dataset.column_names:
        pool_emb = M.normalize_rows(read_embeddings_chunked(dataset, column)).to(device)
        sources["pool"] = f"column {column!r}"
    elif options.compute_embeddings:
        pool_emb, model_info = _embed(dataset, sets.pool_view, component, column, options, device)
        pool_emb = M.normalize_rows(pool_emb)
        sources["pool"] = f"computed with {model_info['name']}"
    else:
        sources["pool"] = None
        note = (
            f"No {component} embeddings (column {column!r} missing, compute_embeddings=False): "
            f"embedding distance, coverage and cluster coverage of {component}s are skipped."
        )
        return ComponentEmbeddings(None, None, sources, [note])
    out = ComponentEmbeddings(pool_emb, None, sources)
    if subset is None:
        return out
    if column in subset.column_names:
        sub_emb = M.normalize_rows(read_embeddings_chunked(subset, column)).to(device)
        sources["subset"] = f"column {column!r}"
    else:
        sub_emb = _matched_subset_embeddings(dataset, subset, sets, component, column, options, out, device)
        if sub_emb is None:
            return out
    if sub_emb.shape[1] != pool_emb.shape[1]:
        raise EmbeddingError(
            f"Subset {component} embeddings ({column!r}) have dimension {sub_emb.shape[1]}, the pool's "
            f"{pool_emb.shape[1]}: they must come from the same model."
        )
    out.subset = sub_emb
    return out


def _matched_subset_embeddings(dataset, subset, sets, component, column, options, out, device) -> torch.Tensor | None:
    """Subset embeddings from the pool rows its rows match, unmatched rows embedded; records sources and notes in
    `out`. `None` when unmatched rows may not be embedded."""
    pool_emb, match_idx = out.pool, sets.match_idx
    sub_emb = torch.zeros((len(subset), pool_emb.shape[1]), dtype=torch.float32, device=device)
    found = match_idx >= 0
    if found.any():
        sub_emb[torch.from_numpy(np.flatnonzero(found)).to(device)] = pool_emb[
            torch.from_numpy(match_idx[found]).to(device)
        ]
    missing = np.flatnonzero(~found)
    by = "source_index" if sets.matching.get("by") == "source_index" else "text"
    out.sources["subset"] = f"pool rows matched by {by} ({int(found.sum())} of {len(subset)})"
    if not missing.size:
        return sub_emb
    if not options.compute_embeddings:
        out.notes.append(
            f"{missing.size} subset rows are not pool rows and have no {column!r} column "
            f"(compute_embeddings=False): {component} embedding metrics are skipped."
        )
        return None
    extra, model_info = _embed(subset.select(missing), sets.subset_view, component, column, options, device)
    if extra.shape[1] != pool_emb.shape[1]:
        raise EmbeddingError(
            f"The pool's {component} embeddings ({column!r}) have dimension {pool_emb.shape[1]} but "
            f"{model_info['name']} gives {extra.shape[1]}; pass the subset with its own {column!r} column "
            "or the same `embedding_model`."
        )
    sub_emb[torch.from_numpy(missing).to(device)] = M.normalize_rows(extra)
    out.sources["subset"] += f", {missing.size} embedded with {model_info['name']}"
    if column in dataset.column_names:
        out.notes.append(
            f"{missing.size} subset rows were embedded with {model_info['name']} while the pool's "
            f"{component} embeddings come from column {column!r}: make sure it is the same model."
        )
    return sub_emb


def _embed(dataset: Dataset, view: TextView, component: str, column: str, options: ReportOptions, device):
    """`(embeddings, model record)` of the `component` texts of `dataset`, as the encoder gives them, on `device`."""
    # only the text columns go through `map`: no embedding lists decoded, a small cache file
    texts = dataset.select_columns(needed_columns(view, dataset.column_names))
    embedded, model_info = compute_embeddings(
        texts,
        column,
        options.embedding_model,
        options.text_columns,
        component,
        str(device),
        options.batch_size,
        None,
        options.progress,
        turns=options.turns,
    )
    return read_embeddings_chunked(embedded, column, device=device), model_info


def embedding_metrics(
    emb: ComponentEmbeddings, sets: ReportSets, n_clusters: int, seed: int = 0
) -> dict[str, dict[str, float | None]]:
    """Embedding distance, coverage d(A)/N and cluster coverage of each set, `{label: {metric: value}}`.

    The pool covers itself (coverage and cluster coverage 1). A subset whose rows are all pool rows, and the random
    subset, are measured by pool row; otherwise by their embeddings (nearest pool centroid for clusters). k-means
    (`fit_kmeans`, `KMEANS_SETTINGS`) runs on the pool with `min(n_clusters, N)` clusters.

    Args:
        emb (`ComponentEmbeddings`): from `component_embeddings`; a `None` pool gives all `None`.
        sets (`ReportSets`): labels, row matching and the random subset.
        n_clusters (`int`): k-means clusters (capped at the pool size).
        seed (`int`, defaults to 0): k-means seed.
    """
    rows = {label: dict.fromkeys(EMBEDDING_METRICS) for label in sets.labels}
    if emb.pool is None:
        return rows
    pool = emb.pool
    rows["pool"]["embedding_distance"] = finite_or_none(M.mean_pairwise_cosine_distance(pool))
    # A = V: every pool row covers itself (cos = 1), and every cluster is hit
    rows["pool"]["coverage"] = 1.0
    rows["pool"]["cluster_coverage"] = 1.0
    others = {}
    if "subset" in rows and emb.subset is not None:
        whole = sets.match_idx is not None and bool((sets.match_idx >= 0).all())
        others["subset"] = (emb.subset, sets.match_idx if whole else None)
    if sets.random_idx is not None:
        others["random"] = (pool[torch.from_numpy(sets.random_idx).to(pool.device)], sets.random_idx)
    if not others:
        return rows
    model = fit_kmeans(
        M.normalize_rows(pool),
        min(n_clusters, pool.shape[0]),
        seed=seed,
        n_init=KMEANS_SETTINGS["n_init"],
        batch_size=KMEANS_SETTINGS["batch_size"],
    )
    for label, (sub, idx) in others.items():
        rows[label]["embedding_distance"] = finite_or_none(M.mean_pairwise_cosine_distance(sub))
        if idx is not None:
            rows[label]["coverage"] = finite_or_none(M.facility_location_coverage(pool, indices=idx))
            labels = model.labels[idx]
        else:
            rows[label]["coverage"] = finite_or_none(M.facility_location_coverage(pool, subset=sub))
            labels = model.predict(M.normalize_rows(sub))
        rows[label]["cluster_coverage"] = finite_or_none(M.cluster_coverage(model.labels, labels))
    return rows
