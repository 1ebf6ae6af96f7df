"""`compare_methods(train=True)`: the same model fine-tuned on every subset at the same budget, held-out loss of each.

- **Budget.** `"examples"`: every subset trains on all its k rows with the same settings (so the same number of
  steps). `"tokens"`: every subset is cut, in pick order, to the largest prefix whose instruction + response tokens
  fit the smallest subset's total, so each run sees (nearly) the same number of tokens; the rows and tokens used are
  recorded.
- **Run.** `hf_diverse.train_sft` with `seed` and `data_seed` fixed, into `output_dir/<label>` (or a temporary
  folder that is removed afterwards); every `SFTConfig` field can be given in `train_options`.
- **Held-out loss.** The trainer's own `evaluate` on the held-out rows as prompt/completion pairs, so the loss is on
  the responses (completion tokens) only, with the same evaluation settings for every subset.
"""

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from datasets import Dataset

from ..errors import InvalidParameterError
from ..train import train_sft
from ..train.data import to_prompt_completion
from ..utils.logging import get_logger
from ..utils.progress import are_progress_bars_enabled, tqdm

logger = get_logger(__name__)

BUDGETS = ("examples", "tokens")


def token_budget_rows(token_counts: dict[str, np.ndarray]) -> tuple[int, dict[str, int]]:
    """`(budget, rows per label)` for `budget="tokens"`: the smallest total, and for each subset the longest prefix
    (in pick order) whose tokens fit it.

    Example:
    ```py
    >>> token_budget_rows({"a": np.array([5, 5, 5]), "b": np.array([2, 2, 2])})
    (6, {'a': 1, 'b': 3})
    ```
    """
    budget = int(min(int(np.sum(c)) for c in token_counts.values()))
    rows = {label: int(np.searchsorted(np.cumsum(c), budget, side="right")) for label, c in token_counts.items()}
    return budget, rows


def _folder_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "subset"


def train_subsets(
    subsets: dict[str, Dataset],
    heldout: Dataset,
    token_counts: dict[str, np.ndarray],
    *,
    model=None,
    budget: str = "examples",
    seed: int = 0,
    output_dir: str | None = None,
    text_columns=None,
    train_options: dict | None = None,
    show_progress: bool = True,
) -> tuple[dict[str, dict], dict]:
    """Fine-tune `model` on every subset (see the module docstring) and measure the held-out loss.

    Args:
        subsets (`dict[str, datasets.Dataset]`): the selected rows, in pick order, by label.
        heldout (`datasets.Dataset`): the held-out rows.
        token_counts (`dict[str, np.ndarray]`): instruction + response tokens of each subset's rows, in pick order.
        model (*optional*): any causal LM `train_sft` takes (default: the offline SmolLM2-135M-Instruct).
        budget (`str`, defaults to `"examples"`): `"examples"` or `"tokens"`.
        seed (`int`, defaults to 0): `seed` and `data_seed` of every run.
        output_dir (`str`, *optional*): keep each run's model in `output_dir/<label>`; default: a temporary folder.
        text_columns (*optional*): passed to `train_sft` and the held-out conversion.
        train_options (`dict`, *optional*): `SFTConfig` fields for every run (e.g. `max_steps`, `learning_rate`).
        show_progress (`bool`, defaults to `True`): progress bars (over the subsets, and the trainer's).

    Returns:
        `(runs, settings)`: per label `{"heldout_loss", "train_loss", "losses", "examples", "tokens",
        "global_step", "output_dir"}`, and the shared settings (budget, tokens, model, options).
    """
    if budget not in BUDGETS:
        raise InvalidParameterError(f"Unknown budget {budget!r}. Valid values of budget: {list(BUDGETS)}.")
    progress = show_progress and are_progress_bars_enabled()
    options = {"seed": seed, "data_seed": seed, "disable_tqdm": not progress}
    options.update(train_options or {})
    rows = {label: len(ds) for label, ds in subsets.items()}
    token_budget = None
    if budget == "tokens":
        token_budget, rows = token_budget_rows(token_counts)
    eval_rows = to_prompt_completion(heldout, text_columns=text_columns)
    root = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="hf_diverse_compare_"))
    runs = {}
    try:
        for label, subset in tqdm(subsets.items(), desc="compare_methods: fine-tuning", disable=not progress):
            used = subset.select(range(rows[label]))
            if len(used) == 0:
                raise InvalidParameterError(
                    f"budget='tokens': the subset {label!r} has no row within the budget of {token_budget} tokens."
                )
            logger.info("Fine-tuning on %s: %d rows.", label, len(used))
            folder = root / _folder_name(label)
            run = train_sft(
                used, model=model, output_dir=str(folder), overwrite=True, text_columns=text_columns, **options
            )
            evaluation = run.trainer.evaluate(eval_dataset=eval_rows)
            runs[label] = {
                "heldout_loss": float(evaluation["eval_loss"]),
                "train_loss": float(run.metrics.get("train_loss", float("nan"))),
                "losses": [float(x) for x in run.losses],
                "examples": len(used),
                "tokens": int(np.sum(token_counts[label][: len(used)])),
                "global_step": int(run.trainer.state.global_step),
                "output_dir": str(folder) if output_dir is not None else None,
            }
    finally:
        if output_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    settings = {
        "budget": budget,
        "token_budget": token_budget,
        "model": str(model) if model is not None else "HuggingFaceTB/SmolLM2-135M-Instruct (offline default)",
        "heldout_examples": len(eval_rows),
        "options": {k: v for k, v in options.items() if k != "disable_tqdm"},
        "heldout_loss": "trainer.evaluate on the held-out rows as prompt/completion (loss on the responses)",
    }
    return runs, settings
