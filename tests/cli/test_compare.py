"""`hf-diverse compare` (`hf_diverse.cli.compare`)."""

import json

from hf_diverse.cli import main, parse_args


def test_cli_compare_end_to_end(pool, tmp_path, capsys):
    pool_dir, out = tmp_path / "pool", tmp_path / "cmp"
    pool.add_column("quality", [float(len(r)) for r in pool["response"]]).save_to_disk(str(pool_dir))
    args = ["compare", "--dataset", str(pool_dir), "--k", "20", "--methods", "qdit,tokens", "--alphas", "0,0.7"]
    args += ["--quality-column", "quality", "--holdout", "0.1", "--self-bleu-samples", "10", "--n-clusters", "8"]
    args += ["--method-options", "{tokens: {diversity: 0.5}}", "--output-dir", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "held-out wins vs random" in printed and f"Wrote {out}/comparison.json" in printed
    data = json.loads((out / "comparison.json").read_text())
    assert [s["label"] for s in data["subsets"]] == ["qdit (alpha=0)", "qdit (alpha=0.7)", "tokens", "random"]
    assert data["subsets"][2]["parameters"]["diversity"] == 0.5
    assert data["settings"]["split"]["heldout_rows"] == 29 and data["settings"]["k"] == 20
    # the response embedding column of this pool is used
    assert data["subsets"][0]["metrics"]["response.embedding_distance"] is not None
    assert (out / "comparison.md").read_text().startswith("Comparison of 4 subsets")
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "coverage_vs_quality.png",
        "metrics_instruction.png",
        "metrics_response.png",
        "metrics_selection.png",
    ]
    # an existing output is refused before any work
    assert main(["compare", "--dataset", str(pool_dir), "--k", "20", "--output-dir", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_compare_errors(tmp_path, capsys):
    assert main(["compare", "--output-dir", str(tmp_path / "x")]) == 1
    assert "--k is required" in capsys.readouterr().err
    assert main(["compare", "--k", "5", "--methods", "best", "--output-dir", str(tmp_path / "y")]) == 1
    assert "Valid methods" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_cli_compare_training_flags():
    args = parse_args(["compare", "--k", "5", "--train", "--budget", "tokens", "--max-steps", "3"])
    assert args.train and args.budget == "tokens" and args.max_steps == 3 and args.methods == ["qdit", "random"]
    assert parse_args(["compare", "--k", "0.5", "--holdout", "20"]).holdout == 20
