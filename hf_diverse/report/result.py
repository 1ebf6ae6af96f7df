"""`DiversityReport`: the numbers of a diversity report, as a table, JSON and plots."""

import json
from dataclasses import dataclass, field

import numpy as np

from ..metrics import METRIC_LABELS, metric_label
from ..plots.report import plot_report

COMPONENTS = ("instruction", "response")
LABELS = ("subset", "pool", "random")


def finite_or_none(value) -> float | None:
    """`value` as a float, or `None` when it is `None`, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else value


@dataclass
class DiversityReport:
    """Diversity metrics of a pool (and a subset and a random subset of the same size), per component.

    Attributes:
        metrics (`dict`): `metrics[component][label][metric]`, a float or `None` (undefined or skipped); component in
            `("instruction", "response")`, label in `("subset", "pool", "random")`, metric keys as in
            `hf_diverse.metrics.METRIC_LABELS`.
        sizes (`dict`): rows per label.
        settings (`dict`): everything needed to read the numbers (tokenizer, seed, Self-BLEU samples, k-means
            settings, embedding sources, entropy base, ...).
        notes (`list[str]`): skipped metrics and other caveats.
        matching (`dict`): how subset rows were matched to pool rows (`matched`, `unmatched`).
        rank_frequency (`dict`): `rank_frequency[component][label] = {"rank": [...], "frequency": [...]}`, relative
            token frequencies at up to 200 log-spaced ranks (what `plot` draws).
        timings (`dict`): seconds per stage.

    Example:
    ```py
    >>> from hf_diverse import diversity_report, select_diverse
    >>> report = diversity_report(pool, select_diverse(pool, k=10), components=["instruction"])
    >>> print(report)  # a table
    Diversity report (subset 10 rows, pool 60 rows, random 10 rows; ...)
    ...
    >>> round(report.metrics["instruction"]["subset"]["entropy_bits"], 3)
    7.899
    >>> text = report.to_json("report.json")
    >>> report.plot("plots/")
    ['plots/token_frequency_instruction.png', 'plots/metrics_instruction.png']
    ```
    """

    metrics: dict
    sizes: dict
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    matching: dict = field(default_factory=dict)
    rank_frequency: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [label for label in LABELS if label in self.sizes]

    @property
    def components(self) -> list[str]:
        return list(self.metrics)

    def to_dict(self) -> dict:
        """A JSON-ready dict (`from_dict` inverts it)."""
        return {
            "metrics": self.metrics,
            "sizes": self.sizes,
            "settings": self.settings,
            "notes": list(self.notes),
            "matching": self.matching,
            "rank_frequency": self.rank_frequency,
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DiversityReport":
        return cls(
            **{
                key: data.get(key, {} if key != "notes" else [])
                for key in ("metrics", "sizes", "settings", "notes", "matching", "rank_frequency", "timings")
            }
        )

    def to_json(self, path: str | None = None, indent: int = 2) -> str:
        """The report as JSON; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> "DiversityReport":
        """Read a report from a JSON string or a file written by `to_json`."""
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        return cls.from_dict(json.loads(text))

    def plot(self, path_dir) -> list[str]:
        """Write PNGs into `path_dir` (created): per component, `token_frequency_<component>.png` (rank-frequency,
        log-log, one line per label) and `metrics_<component>.png` (one bar panel per metric). Returns the paths."""
        return plot_report(self, path_dir)

    def __str__(self) -> str:
        labels = self.labels
        head = ", ".join(f"{label} {self.sizes[label]} rows" for label in labels)
        lines = [
            f"Diversity report ({head}; tokenizer {self.settings.get('tokenizer')}, seed {self.settings.get('seed')})"
        ]
        width = max(len(metric_label(key)) for key in METRIC_LABELS) + 2
        for component, by_label in self.metrics.items():
            lines.append("")
            lines.append(f"{component:<{width}}" + "".join(f"{label:>12}" for label in labels))
            for key in METRIC_LABELS:
                if not any(key in by_label.get(label, {}) for label in labels):
                    continue  # not measured for this component (e.g. tag diversity without a tag column)
                values = [by_label.get(label, {}).get(key) for label in labels]
                cells = "".join(f"{_fmt(v):>12}" for v in values)
                lines.append(f"{metric_label(key):<{width}}{cells}")
        lines.append("")
        lines.append(
            "(+) higher = more diverse, (-) lower = more diverse. Self-BLEU on "
            f"{self.settings.get('self_bleu_samples')} sampled texts per set; entropy in bits; kurtosis and Gini at "
            f"an equal token budget ({_budgets(self.settings.get('token_budgets'))})."
        )
        if self.matching:
            lines.append(
                f"Subset rows matched to pool rows: {self.matching.get('matched')} of {self.sizes.get('subset')}."
            )
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def __repr__(self):
        return f"DiversityReport(sizes={self.sizes}, components={self.components})"


def _budgets(budgets) -> str:
    if not budgets:
        return "n/a"
    return ", ".join(f"{component} {budget} tokens" for component, budget in budgets.items())


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"
