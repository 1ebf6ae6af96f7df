"""`hf_diverse.compare`: `compare_methods` on a small pool, its figures against computations written out here."""

import json
from collections import Counter

import numpy as np
import pytest
from transformers import AutoTokenizer

from hf_diverse import ComparisonResult, InvalidParameterError, compare_methods, get_provenance, render_card
from hf_diverse.compare.split import heldout_split

pytestmark = pytest.mark.usefixtures("one_thread")
K = 8
OPTIONS = dict(holdout=12, self_bleu_samples=20, n_clusters=4, show_progress=False)


@pytest.fixture(scope="module")
def rows_pool(pool):
    return pool.add_column("row", list(range(len(pool))))


@pytest.fixture(scope="module")
def result(rows_pool):
    return compare_methods(rows_pool, K, methods=["qdit", "tokens", "quality"], quality_column="score", **OPTIONS)


def test_heldout_rows_are_never_selected_and_the_split_does_not_depend_on_the_methods(rows_pool, result):
    split = heldout_split(rows_pool["prompt"], rows_pool["response"], holdout=12, seed=0)
    held = set(split.heldout.tolist())
    assert set(result.heldout_rows.tolist()) == held and len(held) == 12
    assert result.labels == ["qdit (alpha=0.7)", "tokens", "quality", "random"]
    for label, subset in result.datasets.items():
        assert len(subset) == K and not held & set(subset["row"]), label
    assert result.settings["split"]["candidate_rows"] == 48
    other = compare_methods(rows_pool, K, methods=["random", "quality", "tokens"], quality_column="score", **OPTIONS)
    assert set(other.heldout_rows.tolist()) == held
    # the same rows for the same method, whatever the order it ran in
    assert other.datasets["tokens"]["row"] == result.datasets["tokens"]["row"]
    assert other.datasets["random"]["row"] == result.datasets["random"]["row"]
    # a shuffled pool holds out the same texts
    shuffled = compare_methods(rows_pool.shuffle(seed=4), K, methods=["random"], **OPTIONS)
    heldout_texts = {rows_pool["prompt"][i] for i in held}
    assert {rows_pool.shuffle(seed=4)["prompt"][i] for i in shuffled.heldout_rows} == heldout_texts


def test_figures_equal_an_independent_computation(rows_pool, result, smollm2_tokenizer_path):
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_path)
    e = np.asarray(rows_pool["embedding"], dtype=np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    held = np.sort(result.heldout_rows)
    cand = np.setdiff1d(np.arange(len(rows_pool)), held)
    score = np.asarray(rows_pool["score"])
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in rows_pool["response"]]
    inst_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in rows_pool["prompt"]]
    # mid band of the candidates' responses, with the `tokens` method's rule written out
    pool_counts = Counter(t for i in cand for t in ids[i])
    s = sum(pool_counts.values()) / 58_500_000
    low = max(2, round(10 * s))
    high = max(50 * low, round(500 * s))
    mid = {t for t, c in pool_counts.items() if low <= c <= high}

    def nearest(rows):
        return (e[held] @ e[rows].T).max(axis=1)

    random_near = nearest(result.datasets["random"]["row"])
    for label, subset in result.datasets.items():
        rows = np.asarray(subset["row"])
        m = result.subsets[result.labels.index(label)]["metrics"]
        near = nearest(rows)
        assert m["heldout_coverage"] == pytest.approx(near.mean(), abs=1e-6), label
        wins = np.mean(near > random_near) + 0.5 * np.mean(near == random_near)
        assert m["heldout_wins"] == pytest.approx(wins), label
        cover = np.maximum(e[cand] @ e[rows].T, 0).max(axis=1).sum() / len(cand)
        assert m["pool_coverage"] == pytest.approx(cover, abs=1e-6), label
        counts = Counter(t for i in rows for t in ids[i])
        p = np.array(list(counts.values()), dtype=np.float64) / sum(counts.values())
        assert m["response_entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum()), label
        assert m["response_mid_band_coverage"] == pytest.approx(len(mid & set(counts)) / len(mid)), label
        lengths = [len(ids[i]) + len(inst_ids[i]) for i in rows]
        assert m["total_tokens"] == sum(lengths) and m["mean_tokens"] == pytest.approx(np.mean(lengths))
        sc = (score - score[cand].min()) / (score[cand].max() - score[cand].min())
        assert m["quality_mean"] == pytest.approx(score[rows].mean())
        assert m["quality_scaled_mean"] == pytest.approx(sc[rows].mean())
    assert result.value("random", "heldout_wins") == 0.5


def test_table_json_markdown_plots_and_card(rows_pool, result, tmp_path):
    text = str(result)
    assert text.startswith("Comparison of 4 subsets of k=8 rows from 48 candidates; 12 held-out rows")
    assert "held-out wins vs random" in text and "What each method maximises:" in text
    line = next(row for row in text.splitlines() if row.startswith("pool coverage d(A)/N"))
    assert line.rstrip().endswith("qdit (alpha=0.7)")  # the "optimised by" column
    assert "response Self-BLEU [BL]" in text and "random was added as the reference" in text
    data = json.loads(result.to_json(tmp_path / "c.json"))
    again = ComparisonResult.from_dict(data)
    assert again.labels == result.labels and again.table() == result.table()
    assert data["subsets"][0]["provenance"]["method"] == "qdit"
    assert data["subsets"][0]["parameters"]["alpha"] == 0.7
    paths = result.plot(tmp_path / "plots")
    assert sorted(p.rsplit("/", 1)[-1] for p in paths) == [
        "coverage_vs_quality.png",
        "metrics_instruction.png",
        "metrics_response.png",
        "metrics_selection.png",
    ]
    card = render_card(result.datasets["qdit (alpha=0.7)"], comparison=result).text
    assert "## Comparison with other methods on held-out data" in card
    assert "| held-out wins vs random | higher |" in card and "`tokens`" in card
    assert "## Comparison" not in render_card(result.datasets["tokens"]).text
    assert render_card(result.datasets["tokens"], comparison=result.to_markdown()).text.count("## Comparison") == 1
    with pytest.raises(InvalidParameterError, match="from_dict"):
        render_card(result.datasets["tokens"], comparison=data)


def test_alpha_sweep_in_one_call(rows_pool):
    sweep = compare_methods(rows_pool, K, methods=["qdit"], alphas=[0, 0.5, 1], quality_column="score", **OPTIONS)
    assert sweep.labels == ["qdit (alpha=0)", "qdit (alpha=0.5)", "qdit (alpha=1)", "random"]
    means = [sweep.value(label, "quality_mean") for label in sweep.labels[:3]]
    assert means[0] <= means[1] <= means[2]
    candidates = np.setdiff1d(np.arange(len(rows_pool)), sweep.heldout_rows)
    best = sorted(np.asarray(rows_pool["score"])[candidates], reverse=True)[:K]
    assert sorted(sweep.datasets["qdit (alpha=1)"]["score"], reverse=True) == pytest.approx(best)
    # the range scaling's ends are computed once for the candidates and k, whatever the alpha
    ends = get_provenance(sweep.datasets["qdit (alpha=0.5)"])["details"]["range_ends"]
    assert ends["diversity_coverage"] > ends["quality_coverage"]


def test_without_a_quality_column_labels_name_the_alpha_that_ran(rows_pool):
    plain = rows_pool.remove_columns("score")
    result = compare_methods(plain, K, methods=["qdit"], alphas=[0, 0.7], **OPTIONS)
    assert result.labels == ["qdit (alpha=0)", "qdit (alpha=0; 0.7 asked)", "random"]
    assert "qdit (alpha=0; 0.7 asked) ran with alpha=0, not 0.7: no quality column." in result.notes
    assert "qdit (alpha=0; 0.7 asked)" in result.to_markdown()


def test_output_dir_is_written_atomically(rows_pool, tmp_path):
    out = tmp_path / "cmp"
    compare_methods(rows_pool, K, methods=["random"], output_dir=str(out), **OPTIONS)
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "comparison.md", "plots"]
    with pytest.raises(InvalidParameterError, match="already exists"):
        compare_methods(rows_pool, K, methods=["random"], output_dir=str(out), **OPTIONS)
    bad = tmp_path / "bad"
    with pytest.raises(InvalidParameterError):
        compare_methods(rows_pool, 100, methods=["random"], output_dir=str(bad), **OPTIONS)
    assert not bad.exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(methods=["best"]), "Valid methods"),
        (dict(methods=[]), "methods is empty"),
        (dict(alphas=[1.5]), r"alphas must be numbers in \[0, 1\]"),
        (dict(budget="hours"), r"Unknown budget 'hours'.*'tokens'"),
        (dict(components=["code"]), "Unknown component"),
        (dict(method_options={"adg": {}}), r"method_options names method\(s\) \['adg'\]"),
        (dict(holdout=0.0), "holdout"),
    ],
)
def test_bad_arguments(rows_pool, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        compare_methods(rows_pool, K, **{**OPTIONS, **kwargs})


def test_bar_panels_draw_random_as_the_reference_line(result):
    from hf_diverse.plots.compare import plot_coverage_quality, plot_metric_panels

    fig = plot_metric_panels(result, "selection", None)
    panel = next(ax for ax in fig.axes if ax.get_title().startswith("held-out instruction coverage"))
    (line,) = panel.get_lines()
    assert line.get_ydata()[0] == pytest.approx(result.value("random", "heldout_coverage"))
    heights = [bar.get_height() for bar in panel.patches]
    assert heights == pytest.approx([result.value(label, "heldout_coverage") for label in result.labels])
    fig = plot_coverage_quality(result, None)
    xs = np.concatenate([line.get_xdata() for line in fig.axes[0].get_lines()])
    assert sorted(xs) == pytest.approx(sorted(result.value(label, "heldout_coverage") for label in result.labels))
