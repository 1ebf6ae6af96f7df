"""`hf_diverse.compare.training`: `compare_methods(train=True)` with the tiny random-init Llama."""

import numpy as np
import pytest

from hf_diverse.compare.training import token_budget_rows

pytest.importorskip("trl")

TRAIN = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "per_device_eval_batch_size": 4,
    "logging_steps": 1,
    "max_length": 512,
    "save_strategy": "no",
    "learning_rate": 1e-3,
}
OPTIONS = dict(holdout=6, self_bleu_samples=0, n_clusters=4, show_progress=False, components=["response"])


def test_token_budget_rows():
    budget, rows = token_budget_rows({"long": np.array([40, 40, 40]), "short": np.array([10, 20, 30, 5])})
    assert budget == 65 and rows == {"long": 1, "short": 4}  # 40 fits, 80 does not; 10+20+30+5 = 65 fits


def _run(pool, model, methods, budget="examples"):
    from hf_diverse import compare_methods

    return compare_methods(
        pool, 6, methods=methods, quality_column="score", train=True, model=model, budget=budget,
        train_options=TRAIN, **OPTIONS,
    )  # fmt: skip


def test_training_is_recorded_and_deterministic(pool, tiny_llama_path):
    pool = pool.select(range(30))
    first, second = (_run(pool, tiny_llama_path, ["random"]) for _ in range(2))
    a, b = first.subsets[0]["training"], second.subsets[0]["training"]
    assert len(a["losses"]) == 2 and a["global_step"] == 2 and a["examples"] == 6
    assert a["losses"] == b["losses"] and a["heldout_loss"] == b["heldout_loss"]
    assert np.isfinite(a["heldout_loss"]) and first.value("random", "heldout_loss") == a["heldout_loss"]
    assert a["output_dir"] is None  # trained in a temporary folder, removed afterwards
    assert first.settings["training"]["budget"] == "examples" and "held-out loss" in first.table()
    assert first.settings["training"]["options"]["seed"] == 0


@pytest.mark.slow
def test_one_run_per_method_at_equal_token_budgets(pool, tiny_llama_path):
    pool = pool.select(range(30))
    result = _run(pool, tiny_llama_path, ["qdit", "tokens"])
    losses = {result.value(label, "heldout_loss") for label in result.labels}
    assert len(losses) == 3 and all(np.isfinite(x) for x in losses)  # every subset trains its own model
    again = _run(pool, tiny_llama_path, ["qdit", "tokens"])
    assert [s["training"]["losses"] for s in again.subsets] == [s["training"]["losses"] for s in result.subsets]
    tokens = _run(pool, tiny_llama_path, ["qdit", "tokens"], budget="tokens")
    budget = tokens.settings["training"]["token_budget"]
    assert budget == min(s["metrics"]["total_tokens"] for s in tokens.subsets)
    for entry in tokens.subsets:
        assert entry["training"]["tokens"] <= budget and 1 <= entry["training"]["examples"] <= 6
        if entry["metrics"]["total_tokens"] == budget:
            assert entry["training"]["examples"] == 6
