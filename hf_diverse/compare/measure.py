"""The numbers of a comparison: what every subset is measured by, computed once per candidate pool and reused.

Held-out metrics come from the held-out split (`hf_diverse.compare.split`); the diversity metrics are the report's
stages (`hf_diverse.report.text_metrics`, `hf_diverse.metrics`) run with one label per subset, so every figure is
defined as in `diversity_report`.

- held-out instruction coverage: for each held-out row h, max over the subset's rows a of cos(e_h, e_a) (the raw
  cosine of L2-normalised instruction embeddings); the mean over held-out rows.
- held-out wins against random: the fraction of held-out rows closer (by that max cosine) to the subset than to the
  random subset of the same size, ties counted as half; random against itself is 0.5.
- pool coverage: d(A)/N over the candidate pool, d(A) = sum_v max_a max(0, cos(a, v)).
- mean quality: of the quality column as given, and rescaled to [0, 1] over the candidates (min-max).
- response token entropy (bits) and mid-band token-type coverage (the macro-to-micro paper's best predictors):
  entropy of the response token distribution of the subset; the fraction of the candidate pool's mid-band response
  token types (`hf_diverse.selection.tokens.TokenIncidence`, the `tokens` method's bands and thresholds) in it.
- mean and total tokens per example: instruction + response tokens (the tokenizer's, no special tokens), the
  training cost.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import metrics as M
from ..clustering import fit_kmeans
from ..metrics import HIGHER_IS_MORE_DIVERSE, METRIC_LABELS
from ..report.embedding_metrics import KMEANS_SETTINGS
from ..report.result import finite_or_none
from ..report.text_metrics import compression_metrics, self_bleu_metrics, token_metrics
from ..selection.tokens import TokenIncidence

# key -> (label, higher is better: True / False / None for costs)
MAIN_METRICS = {
    "heldout_coverage": ("held-out instruction coverage (mean max cos)", True),
    "heldout_wins": ("held-out wins vs random", True),
    "pool_coverage": ("pool coverage d(A)/N", True),
    "quality_mean": ("mean quality", True),
    "quality_scaled_mean": ("mean quality, rescaled to [0, 1]", True),
    "response_entropy_bits": ("response token entropy (bits) [IE]", True),
    "response_mid_band_coverage": ("response mid-band token-type coverage", True),
    "mean_tokens": ("mean tokens per example (instruction + response)", None),
    "total_tokens": ("total tokens (training cost)", None),
    "heldout_loss": ("held-out loss after fine-tuning", False),
}
# diversity metrics already shown among the main ones
_SHOWN_AS_MAIN = {"instruction.coverage": "pool_coverage", "response.entropy_bits": "response_entropy_bits"}


def metric_rows(components) -> list[tuple[str, str, bool | None]]:
    """`(key, label, higher is better)` of every row of a comparison table, main metrics first.

    Example:
    ```py
    >>> [key for key, _, _ in metric_rows(["response"])][:3]
    ['heldout_coverage', 'heldout_wins', 'pool_coverage']
    >>> ("response.self_bleu", "response Self-BLEU [BL]", False) in metric_rows(["response"])
    True
    ```
    """
    rows = [(key, label, better) for key, (label, better) in MAIN_METRICS.items()]
    for component in components:
        for key in METRIC_LABELS:
            name = f"{component}.{key}"
            if name not in _SHOWN_AS_MAIN:
                label, short = METRIC_LABELS[key]
                rows.append(
                    (name, f"{component} {label}" + (f" [{short}]" if short else ""), HIGHER_IS_MORE_DIVERSE[key])
                )
    return rows


@dataclass
class CandidateData:
    """What every subset is measured against, computed once.

    Attributes:
        texts (`dict[str, list[str]]`): instruction and response text of every candidate row.
        tokens (`dict[str, list[np.ndarray]]`): their token ids (both components: the token counts and the response
            token metrics need them whatever `components` says).
        vocab_size (`int`): the tokenizer's vocabulary size.
        embeddings (`dict[str, torch.Tensor | None]`): L2-normalised candidate embeddings per component (`None`:
            embedding metrics of that component are skipped).
        heldout (`torch.Tensor`): L2-normalised instruction embeddings of the held-out rows.
        quality (`np.ndarray`, *optional*): the quality column of the candidates.
        components (`tuple[str]`): text views of the diversity metrics.
        n_clusters (`int`): k-means clusters for cluster coverage.
        seed (`int`): seed of k-means and the Self-BLEU sample.
        self_bleu_samples (`int`): texts sampled per subset for Self-BLEU (0 skips it).
    """

    texts: dict
    tokens: dict
    vocab_size: int
    embeddings: dict
    heldout: torch.Tensor
    quality: np.ndarray | None = None
    components: tuple = ("instruction", "response")
    n_clusters: int = 100
    seed: int = 0
    self_bleu_samples: int = 1000
    _incidence: TokenIncidence | None = field(default=None, repr=False)
    _clusters: dict = field(default_factory=dict, repr=False)

    @property
    def incidence(self) -> TokenIncidence:
        """Mid-band response token types of the candidate pool (the `tokens` method's default bands)."""
        if self._incidence is None:
            self._incidence = TokenIncidence(self.tokens["response"])
        return self._incidence

    def cluster_labels(self, component: str) -> np.ndarray:
        """k-means labels of the candidates' `component` embeddings (the report's settings), fitted once."""
        if component not in self._clusters:
            x = self.embeddings[component]
            fit = fit_kmeans(
                x,
                min(self.n_clusters, x.shape[0]),
                seed=self.seed,
                n_init=KMEANS_SETTINGS["n_init"],
                batch_size=KMEANS_SETTINGS["batch_size"],
            )
            self._clusters[component] = fit.labels
        return self._clusters[component]


def nearest_similarity(queries: torch.Tensor, rows: torch.Tensor, block: int = 4096) -> np.ndarray:
    """max_a cos(q, a) over the rows of `rows`, for each row q of `queries` (both L2-normalised), in blocks.

    Example:
    ```py
    >>> nearest_similarity(torch.eye(3), torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])).round(3).tolist()
    [1.0, 0.8, 0.0]
    ```
    """
    out = np.empty(queries.shape[0], dtype=np.float64)
    rows = rows.to(queries.device, torch.float32)
    for start in range(0, queries.shape[0], block):
        sims = queries[start : start + block].float() @ rows.T
        out[start : start + block] = sims.max(dim=1).values.double().cpu().numpy()
    return out


def wins_against(ours: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows where `ours` beats `reference`, ties counted as half.

    Example:
    ```py
    >>> wins_against(np.array([0.9, 0.5, 0.2]), np.array([0.8, 0.5, 0.3]))
    0.5
    ```
    """
    return float(np.mean(ours > reference) + 0.5 * np.mean(ours == reference))


def measure_subsets(data: CandidateData, subsets: dict[str, np.ndarray], reference: str) -> dict[str, dict]:
    """Every metric of every subset, `{label: {metric key: value or None}}`.

    Args:
        data (`CandidateData`): the candidate pool and the held-out rows.
        subsets (`dict[str, np.ndarray]`): candidate rows of each subset, by label.
        reference (`str`): the label of the random subset (held-out wins are counted against it).
    """
    near = {
        label: nearest_similarity(data.heldout, data.embeddings["instruction"][rows])
        for label, rows in subsets.items()
    }
    rows_out = {}
    diversity = _diversity_rows(data, subsets)
    for label, rows in subsets.items():
        row = dict.fromkeys(MAIN_METRICS)
        row["heldout_coverage"] = float(near[label].mean())
        row["heldout_wins"] = wins_against(near[label], near[reference])
        row.update(_quality(data.quality, rows))
        counts = data.incidence.subset_counts(rows)
        row["response_entropy_bits"] = finite_or_none(M.token_entropy(counts, base=2))
        row["response_mid_band_coverage"] = data.incidence.coverage(rows) if data.incidence.n_mid else None
        lengths = [len(data.tokens["instruction"][i]) + len(data.tokens["response"][i]) for i in rows]
        row["mean_tokens"], row["total_tokens"] = float(np.mean(lengths)), int(np.sum(lengths))
        for name, value in diversity[label].items():
            row[_SHOWN_AS_MAIN.get(name, name)] = value
        rows_out[label] = row
    return rows_out


def _quality(quality: np.ndarray | None, rows: np.ndarray) -> dict:
    if quality is None:
        return {}
    lo, hi = float(quality.min()), float(quality.max())
    scaled = np.zeros_like(quality) if hi == lo else (quality - lo) / (hi - lo)
    return {"quality_mean": float(quality[rows].mean()), "quality_scaled_mean": float(scaled[rows].mean())}


def _diversity_rows(data: CandidateData, subsets: dict[str, np.ndarray]) -> dict[str, dict]:
    """The report's diversity metrics of every subset, keys `<component>.<metric>`."""
    out = {label: {} for label in subsets}
    for component in data.components:
        token_lists = data.tokens[component]
        tokens = {label: [token_lists[i] for i in rows] for label, rows in subsets.items()}
        texts = {label: [data.texts[component][i] for i in rows] for label, rows in subsets.items()}
        rows_by_label, _ = token_metrics(tokens, data.vocab_size)
        ratios = compression_metrics(texts)
        bleu, _ = self_bleu_metrics(texts, data.self_bleu_samples, seed=data.seed)
        emb = data.embeddings.get(component)
        for label, rows in subsets.items():
            values = {**rows_by_label[label], "compression_ratio": ratios[label], "self_bleu": bleu[label]}
            values.update(_embedding_values(data, component, emb, rows))
            out[label].update({f"{component}.{key}": value for key, value in values.items()})
    return out


def _embedding_values(data: CandidateData, component: str, emb: torch.Tensor | None, rows: np.ndarray) -> dict:
    if emb is None:
        return dict.fromkeys(("embedding_distance", "coverage", "cluster_coverage"))
    labels = data.cluster_labels(component)
    return {
        "embedding_distance": finite_or_none(M.mean_pairwise_cosine_distance(emb[torch.as_tensor(rows)])),
        "coverage": finite_or_none(M.facility_location_coverage(emb, indices=rows)),
        "cluster_coverage": finite_or_none(M.cluster_coverage(labels, labels[rows])),
    }
