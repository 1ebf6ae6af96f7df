"""`ComparisonResult`: the subsets of a comparison and their numbers, as a table, JSON, Markdown (card) and plots."""

import json
import math
from dataclasses import dataclass, field

from ..plots.compare import plot_comparison
from .measure import metric_rows

# what each method maximises, in the comparison's metric keys (`None`: not one of the measured metrics)
OPTIMISES = {
    "qdit": ("pool_coverage", "quality_mean", "facility-location coverage of the instructions, plus alpha x quality"),
    "qdit-threshold": ("quality_mean", None, "quality, keeping rows whose instructions are at most tau similar"),
    "qdit-cluster": (
        "quality_mean",
        "instruction.cluster_coverage",
        "quality within equal shares of k-means clusters",
    ),
    "tokens": ("response_mid_band_coverage", None, "mid-band response token-type coverage, evenly represented"),
    "clusters": ("instruction.cluster_coverage", None, "spread over semantic clusters of the instructions"),
    "adg": (None, None, "answer divergence of sampled responses, spread over instruction bins (not measured here)"),
    "quality": ("quality_mean", None, "mean quality (top-k)"),
    "random": (None, None, "nothing: the reference"),
}


def optimises(method: str) -> tuple[list[str], str]:
    """`(metric keys, description)` of what `method` maximises.

    Example:
    ```py
    >>> optimises("tokens")
    (['response_mid_band_coverage'], 'mid-band response token-type coverage, evenly represented')
    ```
    """
    first, second, text = OPTIMISES.get(method, (None, None, "its own objective (see its dataset card)"))
    keys = [key for key in (first, second) if key]
    if "quality_mean" in keys:  # the rescaled mean ranks subsets the same way
        keys.insert(keys.index("quality_mean") + 1, "quality_scaled_mean")
    return keys, text


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


_ARROW = {True: "higher", False: "lower", None: "cost"}


def _finite(value):
    """`value` with every NaN / inf float replaced by `None` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@dataclass
class ComparisonResult:
    """What `compare_methods` returns.

    Attributes:
        subsets (`list[dict]`): one entry per subset, in order: `label`, `method`, `parameters` (the options it ran
            with), `optimises` (what its objective is, and which metric keys), `metrics` (`{key: value}`; `None` where
            undefined or not measured), `provenance` (the subset's selection record) and, with `train=True`,
            `training` (held-out loss, training loss and losses, examples, tokens).
        settings (`dict`): pool and candidate sizes, k, the held-out split, seed, tokenizer, embedding model, quality
            column, components, Self-BLEU samples and (with training) the budget and model.
        notes (`list[str]`): what was skipped, added or approximated.
        timings (`dict`): seconds per stage.
        datasets (`dict`): the selected `datasets.Dataset` of each label (not serialised).
        heldout_rows (`np.ndarray`, *optional*): pool rows of the held-out split (not serialised; its size and how
            it was drawn are in `settings["split"]`).
    """

    subsets: list
    settings: dict
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict, repr=False)
    heldout_rows: object = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        return [s["label"] for s in self.subsets]

    def rows(self) -> list[tuple[str, str, bool | None]]:
        """`(key, label, higher is better)` of the metrics measured for at least one subset, in table order."""
        components = self.settings.get("components", ("instruction", "response"))
        return [r for r in metric_rows(components) if any(s["metrics"].get(r[0]) is not None for s in self.subsets)]

    def value(self, label: str, key: str):
        """The value of metric `key` for subset `label`."""
        return next(s for s in self.subsets if s["label"] == label)["metrics"].get(key)

    def table(self) -> str:
        """The metrics x subsets table as plain text, with the better direction and the methods optimising each row."""
        rows = self.rows()
        header = ["metric", "better", *self.labels, "optimised by"]
        body = []
        for key, name, better in rows:
            by = [s["label"] for s in self.subsets if key in s["optimises"]["metrics"]]
            body.append([name, _ARROW[better], *(_fmt(s["metrics"].get(key)) for s in self.subsets), ", ".join(by)])
        widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
        lines = [self._title(), ""]
        for cells in [header, *body]:
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
        lines += ["", "What each method maximises:"]
        lines += [f"  {s['label']}: {s['optimises']['text']}" for s in self.subsets]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _title(self) -> str:
        st = self.settings
        split = st.get("split", {})
        return (
            f"Comparison of {len(self.subsets)} subsets of k={st.get('k')} rows from {split.get('candidate_rows')} "
            f"candidates; {split.get('heldout_rows')} held-out rows never selected (seed {st.get('seed')})"
        )

    def __str__(self) -> str:
        return self.table()

    def to_markdown(self) -> str:
        """The comparison as a Markdown section body for a dataset card (`render_card(..., comparison=result)`)."""
        rows = self.rows()
        lines = [self._title() + ".", ""]
        lines.append("| metric | better | " + " | ".join(f"`{label}`" for label in self.labels) + " |")
        lines.append("|---|---|" + "---|" * len(self.labels))
        for key, name, better in rows:
            cells = " | ".join(_fmt(s["metrics"].get(key)) for s in self.subsets)
            lines.append(f"| {name.replace('|', '/')} | {_ARROW[better]} | {cells} |")
        lines += ["", "What each method maximises:", ""]
        lines += [f"- `{s['label']}`: {s['optimises']['text']}" for s in self.subsets]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict (`from_dict` inverts it; the datasets are left out; NaN and inf become `None`)."""
        return _finite(
            {"subsets": self.subsets, "settings": self.settings, "notes": self.notes, "timings": self.timings}
        )

    @classmethod
    def from_dict(cls, data: dict) -> "ComparisonResult":
        return cls(data["subsets"], data["settings"], list(data.get("notes", [])), dict(data.get("timings", {})))

    def to_json(self, path=None) -> str:
        """The result as JSON text, written to `path` when given (NaN written as null)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)
        if path is not None:
            with open(path, "w") as f:
                f.write(text + "\n")
        return text

    def plot(self, path_dir) -> list[str]:
        """Write the comparison's PNGs into `path_dir` (see `hf_diverse.plots.compare.plot_comparison`)."""
        return plot_comparison(self, path_dir)
