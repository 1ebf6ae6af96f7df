"""Unit tests of the Space's callbacks (`space/app.py`), called directly without a server or a browser."""

import importlib.util
import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest

import hf_diverse
from hf_diverse import METHODS, get_provenance

pytest.importorskip("gradio", reason="the Space needs gradio: pip install 'hf_diverse[space]'")

APP_PATH = Path(__file__).resolve().parents[2] / "space" / "app.py"


def _no_progress(*args, **kwargs):
    return None


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("hf_diverse_space_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SELF_BLEU_SAMPLES = 10  # the report's Self-BLEU sample, kept small for test time
    return module


@pytest.fixture(scope="module")
def loaded(app):
    """The embedded sample loaded through the Load button's callback."""
    state, description, quality, status = app.load_source("Embedded sample", "", "train", None, None)
    assert status == "Loaded 294 rows."
    return state, description, quality


@pytest.fixture(scope="module")
def qdit20(app, loaded):
    outputs = app.run_selection(
        loaded[0],
        "qdit",
        20,
        0,
        app.NO_QUALITY,
        "",
        "",
        options={"alpha": 0.7, "diversity": 1.0},
        progress=_no_progress,
    )
    return outputs


@pytest.fixture(scope="module")
def scored_jsonl(tmp_path_factory):
    """An uploaded Alpaca-format pool of 40 rows with a numeric `score` column."""
    words = ["alpha", "beta", "gamma", "delta"]
    rows = [
        {
            "instruction": f"Task number {i}: " + " ".join(words[: 1 + i % 4] * (1 + i % 3)),
            "input": "",
            "output": f"Answer {i} " * (1 + i % 5),
            "score": float(i % 7),
        }
        for i in range(40)
    ]
    path = tmp_path_factory.mktemp("upload") / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def uploaded(app, scored_jsonl):
    """Load state of the uploaded pool, shared so its embeddings are computed once."""
    return app.load_source("Upload a file", "", "train", None, str(scored_jsonl))[0]


@pytest.fixture
def light(app, monkeypatch):
    """No report and no map, for tests about other outputs (both are checked on the QDIT run and in the browser)."""
    monkeypatch.setattr(app, "_report", lambda *args: None)
    monkeypatch.setattr(app, "_projection_png", lambda *args: None)


def _is_noop(update) -> bool:
    return isinstance(update, dict) and update == {"__type__": "update"}


def test_blocks_built_at_import_not_launched(app):
    import gradio as gr

    assert isinstance(app.demo, gr.Blocks)
    assert not getattr(app.demo, "is_running", False)
    assert next(iter(app.METHODS)) == "qdit" and {"qdit", "random", "quality"} <= set(app.METHODS)
    assert str(app.MAX_ROWS) in app.LIMITS_MD and "all-MiniLM-L6-v2" in app.LIMITS_MD


def test_parse_k_and_text_columns(app):
    assert app.parse_k(20) == 20 and isinstance(app.parse_k(20.0), int)
    assert app.parse_k(0.25) == 0.25
    for bad in (None, "", 0, -3, 2.5):
        with pytest.raises(app.InvalidParameterError):
            app.parse_k(bad)
    assert app.parse_text_columns("", "") is None
    assert app.parse_text_columns("a, b", "") == ["a", "b"]
    assert app.parse_text_columns("a", "c") == {"instruction": ["a"], "response": ["c"]}
    with pytest.raises(app.InvalidParameterError, match="instruction column"):
        app.parse_text_columns("", "c")


def test_load_embedded_sample(loaded):
    state, description, quality = loaded
    assert len(state["pool"]) == 294
    assert "`prompt_response`" in description and "`prompt`" in description
    assert quality["choices"] == ["(none)"]


def test_load_upload_detects_format_and_quality_columns(app, scored_jsonl):
    state, description, quality, status = app.load_source("Upload a file", "", "train", None, str(scored_jsonl))
    assert status == "Loaded 40 rows."
    assert "`alpaca`" in description
    assert quality["choices"] == ["(none)", "score"]


def test_row_cap_and_limit(app, scored_jsonl, monkeypatch):
    monkeypatch.setattr(app, "MAX_ROWS", 25)
    state, description, _, _ = app.load_source("Upload a file", "", "train", None, str(scored_jsonl))
    assert len(state["pool"]) == 25 and "Capped at 25 rows" in description
    state, description, _, _ = app.load_source("Upload a file", "", "train", 10, str(scored_jsonl))
    assert len(state["pool"]) == 10 and "Capped" not in description


@pytest.mark.parametrize(
    ("kind", "hub_id", "upload", "expected"),
    [
        ("Hub dataset", "nobody/does-not-exist", None, "Could not load 'nobody/does-not-exist'"),
        ("Hub dataset", "  ", None, "Enter a Hub dataset id"),
        ("Upload a file", "", None, "Upload a .json"),
        ("Somewhere", "", None, "Unknown source 'Somewhere'"),
    ],
)
def test_load_errors_are_messages(app, kind, hub_id, upload, expected):
    with pytest.warns(UserWarning):  # gr.Warning outside a request
        outputs = app.load_source(kind, hub_id, "train", None, upload)
    assert all(_is_noop(o) for o in outputs[:3])
    assert outputs[3].startswith("**Error:**") and expected in outputs[3]
    assert "Traceback" not in outputs[3]


def test_unsupported_upload_type(app, tmp_path):
    path = tmp_path / "pool.txt"
    path.write_text("hello\n")
    with pytest.warns(UserWarning):
        outputs = app.load_source("Upload a file", "", "train", None, str(path))
    assert "Unsupported file type '.txt'" in outputs[3]


def test_qdit_selection_outputs(app, qdit20):
    result, table, map_png, report, quadrant, files, status = qdit20
    assert status.startswith("Selected **20** of 294 rows with `qdit`")
    assert isinstance(table, pd.DataFrame) and len(table) == 20
    assert list(table["rank"]) == list(range(20))
    assert {"instruction", "response"} <= set(table.columns)
    assert all(len(t) <= app.TABLE_TEXT_CHARS for t in table["instruction"])
    assert len(result["subset"]) == 20 and len(result["pool"]) == 294
    assert quadrant == {"__type__": "update", "value": None, "visible": False}
    assert isinstance(report, pd.DataFrame) and len(report) > 0
    names = {Path(f).name for f in files}
    assert {"subset.jsonl", "subset.parquet"} <= names
    jsonl = next(f for f in files if f.endswith(".jsonl"))
    rows = [json.loads(line) for line in Path(jsonl).read_text().splitlines()]
    assert len(rows) == 20 and "embedding" not in rows[0] and rows[0]["selection_rank"] == 0
    assert [r["prompt"] for r in rows] == result["subset"]["prompt"]
    parquet = next(f for f in files if f.endswith(".parquet"))
    assert len(pd.read_parquet(parquet)) == 20


def test_qdit_selection_plots_and_card(app, qdit20):
    # the map, report and card come from other modules of hf_diverse; they must be there in a full install
    _, _, map_png, report, _, files, _ = qdit20
    assert map_png is not None and Path(map_png).stat().st_size > 1000
    assert "note" not in report.columns
    card = next(f for f in files if f.endswith("README.md"))
    assert "qdit" in Path(card).read_text()


def test_old_output_folders_are_removed(app, monkeypatch, tmp_path):
    monkeypatch.setattr(app, "_OUTPUT_ROOT", tmp_path)
    old, recent = tmp_path / "old", tmp_path / "recent"
    old.mkdir()
    recent.mkdir()
    os.utime(old, (1, 1))
    new = app._new_output_dir()
    assert new.parent == tmp_path and new.is_dir()
    assert not old.exists() and recent.exists()


def test_quality_method_with_uploaded_scores_and_fraction(app, uploaded, light):
    outputs = app.run_selection(
        uploaded, "quality", 0.25, 3, "score", "", "", options={"alpha": 0.7, "diversity": 1.0}, progress=_no_progress
    )
    result, table, status = outputs[0], outputs[1], outputs[-1]
    assert status.startswith("Selected **10** of 40 rows with `quality`")
    assert sorted(result["subset"]["score"], reverse=True) == result["subset"]["score"]
    assert min(result["subset"]["score"]) == 5.0 and "score" in table.columns


def test_method_parameters_reach_select_diverse(app, uploaded, light):
    result = app.run_selection(
        uploaded, "qdit", 8, 1, "score", "", "", options={"alpha": 0.3, "diversity": 1.0}, progress=_no_progress
    )[0]
    record = get_provenance(result["subset"])
    assert record["parameters"]["alpha"] == 0.3 and record["parameters"]["quality_column"] == "score"
    assert record["seed"] == 1 and record["k"] == 8
    result = app.run_selection(
        uploaded,
        "clusters",
        8,
        0,
        app.NO_QUALITY,
        "",
        "",
        options={"alpha": 0.3, "diversity": 0.5},
        progress=_no_progress,
    )[0]
    assert get_provenance(result["subset"])["parameters"]["diversity"] == 0.5


def test_text_column_override(app, uploaded, light):
    outputs = app.run_selection(
        uploaded,
        "random",
        5,
        0,
        app.NO_QUALITY,
        "output",
        "",
        options={"alpha": 0.7, "diversity": 1.0},
        progress=_no_progress,
    )
    table = outputs[1]
    assert len(table) == 5 and "response" not in table.columns
    assert all(t.startswith("Answer") for t in table["instruction"])


@pytest.mark.parametrize(
    ("method", "k", "columns", "expected"),
    [
        ("qdit", 5000, "", "k must be in [1, 294]"),
        ("qdit", 2.5, "", "whole number of rows"),
        ("qdit", 10, "no_such_column", "Text column(s) ['no_such_column"),
        ("quality", 10, "", "quality"),
        ("nonsense", 10, "", "Unknown method 'nonsense'"),
    ],
)
def test_selection_errors_are_messages(app, loaded, method, k, columns, expected):
    with pytest.warns(UserWarning):
        outputs = app.run_selection(
            loaded[0],
            method,
            k,
            0,
            app.NO_QUALITY,
            columns,
            "",
            options={"alpha": 0.7, "diversity": 1.0},
            progress=_no_progress,
        )
    assert all(_is_noop(o) for o in outputs[:-1])
    assert outputs[-1].startswith("**Error:**") and expected in outputs[-1]
    assert "Traceback" not in outputs[-1]


def test_select_before_load(app):
    with pytest.warns(UserWarning):
        outputs = app.run_selection(
            None,
            "qdit",
            10,
            0,
            app.NO_QUALITY,
            "",
            "",
            options={"alpha": 0.7, "diversity": 1.0},
            progress=_no_progress,
        )
    assert "Load a source first" in outputs[-1]


def test_adg_row_cap(app, loaded):
    assert "adg" in app.METHODS
    with pytest.warns(UserWarning):
        outputs = app.run_selection(
            loaded[0],
            "adg",
            10,
            0,
            app.NO_QUALITY,
            "",
            "",
            options={"alpha": 0.7, "diversity": 1.0},
            progress=_no_progress,
        )
    assert f"at most {app.ADG_MAX_ROWS} rows" in outputs[-1]


def test_tags_row_cap_unless_the_pool_has_tags(app, loaded, monkeypatch, light):
    monkeypatch.setattr(app, "TAGS_MAX_ROWS", 5)
    state = loaded[0]
    with pytest.warns(UserWarning):  # the page shows the message
        outputs = app.run_selection(state, "tags", 4, 0, app.NO_QUALITY, "", "", options={}, progress=_no_progress)
    assert "at most 5 rows" in outputs[-1] and "`tags` column" in outputs[-1]
    # a pool that carries its tags needs no language model: no cap
    n = len(state["pool"])
    tags = [["math"] if i % 2 else ["poetry"] for i in range(n)]
    tagged = {**state, "pool": state["pool"].add_column("tags", tags), "cache": {}}  # a new pool: nothing cached
    outputs = app.run_selection(tagged, "tags", 4, 0, app.NO_QUALITY, "", "", options={}, progress=_no_progress)
    assert outputs[-1].startswith("Selected **4** of 294 rows with `tags`"), outputs[-1]


def test_adg_with_a_tiny_model_shows_the_quadrant(app, uploaded, tiny_llama_path, monkeypatch, light):
    assert "adg" in app.METHODS
    monkeypatch.setattr(app, "ADG_MODEL", tiny_llama_path)
    monkeypatch.setattr(app, "ADG_NUM_SAMPLES", 3)
    monkeypatch.setattr(app, "ADG_MAX_NEW_TOKENS", 4)
    result, table, _, _, quadrant, _, status = app.run_selection(
        uploaded, "adg", 6, 0, app.NO_QUALITY, "", "", options={"alpha": 0.7, "diversity": 1.0}, progress=_no_progress
    )
    assert status.startswith("Selected **6** of 40 rows with `adg`"), status
    assert quadrant["visible"] is True and Path(quadrant["value"]).stat().st_size > 1000
    assert "adg_score" in table.columns and len(table) == 6
    # the whole pool was scored (the quadrant shows it) and the provenance names the LM and its settings
    assert {"adg_divergence", "adg_isotropy", "adg_score"} <= set(result["pool"].column_names)
    record = get_provenance(result["subset"])
    assert record["models"]["lm"]["max_new_tokens"] == 4 and record["models"]["lm"]["num_samples"] == 3
    assert record["parameters"]["max_new_tokens"] == 4 and record["parameters"]["num_samples"] == 3


def test_push_needs_a_subset_repo_and_the_visitors_token(app, qdit20, monkeypatch):
    with pytest.warns(UserWarning):
        assert "Select a subset first" in app.push_to_hub(None, "me/x", "hf_secret", True)
    with pytest.warns(UserWarning):
        assert "Enter a dataset repository id" in app.push_to_hub(qdit20[0], " ", "hf_secret", True)
    with pytest.warns(UserWarning):
        assert "must look like" in app.push_to_hub(qdit20[0], "a/b/c", "hf_secret", True)
    # a token of the machine (a Space's HF_TOKEN secret) is never used in place of the visitor's
    monkeypatch.setenv("HF_TOKEN", "hf_machine_token")
    monkeypatch.setattr(hf_diverse, "push_curated", lambda *a, **kw: pytest.fail("must not push"))
    with pytest.warns(UserWarning):
        assert "Enter your Hugging Face token" in app.push_to_hub(qdit20[0], "me/x", "  ", True)


def test_push_failure_never_shows_or_logs_the_token(app, qdit20, monkeypatch, caplog):
    token = "hf_SECRETtoken1234567890"
    calls = {}

    def failing_push(subset, repo_id, **kwargs):
        calls.update(kwargs, repo_id=repo_id)
        raise hf_diverse.errors.HubError(f"401 Unauthorized for {repo_id} with token {kwargs['token']}")

    monkeypatch.setattr(hf_diverse, "push_curated", failing_push, raising=False)
    with caplog.at_level(logging.DEBUG), pytest.warns(UserWarning) as warned:
        message = app.push_to_hub(qdit20[0], "me/subset", f"  {token} ", False)
    assert calls["token"] == token and calls["private"] is False and calls["repo_id"] == "me/subset"
    assert message.startswith("**Error:**") and "401 Unauthorized" in message
    assert token not in message and "***" in message
    assert token not in caplog.text and all(token not in str(w.message) for w in warned)


def test_push_success_message(app, qdit20, monkeypatch):
    monkeypatch.setattr(
        hf_diverse, "push_curated", lambda subset, repo_id, **kw: f"https://hub.test/datasets/{repo_id}", raising=False
    )
    assert app.push_to_hub(qdit20[0], "me/subset", "hf_x", True) == "Pushed to https://hub.test/datasets/me/subset"


def test_push_offline_is_a_readable_error(app, qdit20):
    assert hasattr(hf_diverse, "push_curated")
    # the real push_curated (no pool: no report or plots to build first) fails on HF_HUB_OFFLINE=1 set by conftest
    result = {"subset": qdit20[0]["subset"], "pool": None, "report": None}
    with pytest.warns(UserWarning):
        message = app.push_to_hub(result, "me/subset", "hf_offline_token_abc", True)
    assert message.startswith("**Error:**") and "me/subset" in message and "hf_offline_token_abc" not in message


def test_controls_come_from_the_method_configs(app):
    assert list(app.METHOD_LABELS) == list(METHODS)  # every registered method, none hidden
    expected = {opt.name for m in METHODS.values() for opt in m.config.options() if opt.space is not None}
    assert set(app.SPACE_OPTIONS) == expected and {"alpha", "diversity", "tau"} <= expected
    for name, method in METHODS.items():
        shown = [u["visible"] for u in app._method_controls(name)]
        own = {opt.name for opt in method.config.options()}
        assert shown == [option in own for option in app.SPACE_OPTIONS], name
