"""Which method for my data? `compare_methods` runs several selection methods (and alphas) on the same candidates
and measures every subset on a held-out split that no selection sees, against a random subset of the same size.

- `split`: the held-out split, by content hash;
- `measure`: the metrics of every subset (held-out coverage and wins, pool coverage, quality, response token entropy
  and mid-band coverage, tokens, and the report's diversity metrics);
- `training`: `train=True`, the same model fine-tuned on every subset at the same budget, held-out loss;
- `result`: `ComparisonResult` (table, JSON, Markdown for the card, plots);
- `api`: `compare_methods` itself.
"""

from .api import compare_methods, write_comparison
from .result import ComparisonResult
from .split import HeldoutSplit, heldout_split

__all__ = ["ComparisonResult", "HeldoutSplit", "compare_methods", "heldout_split", "write_comparison"]
