"""`hf-diverse report` (`hf_diverse.cli.report`)."""

import pytest

from hf_diverse import DiversityReport, select_diverse
from hf_diverse.cli import main
from hf_diverse.io import save_subset
from tests.report.common import K


def test_cli_report_end_to_end(pool, subset, tmp_path, capsys):
    pool_dir, sub_dir, out = tmp_path / "pool", tmp_path / "curated", tmp_path / "report"
    pool.save_to_disk(str(pool_dir))
    save_subset(subset, sub_dir)
    rc = main(
        [
            "report",
            "--dataset",
            str(pool_dir),
            "--subset",
            str(sub_dir),
            "--output-dir",
            str(out),
            "--self-bleu-samples",
            "10",
            "--n-clusters",
            "10",
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "token entropy (bits)" in printed and "Wrote" in printed
    rep = DiversityReport.from_json(str(out / "report.json"))
    assert rep.sizes == {"subset": K, "pool": len(pool), "random": K}
    assert sorted(p.name for p in out.glob("*.png")) == [
        "metrics_instruction.png",
        "metrics_response.png",
        "token_frequency_instruction.png",
        "token_frequency_response.png",
    ]
    # an existing output is refused before any work
    assert main(["report", "--dataset", str(pool_dir), "--output-dir", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_bad_tokenizer_writes_nothing(pool, tmp_path, capsys):
    pool_dir, out = tmp_path / "pool", tmp_path / "report"
    pool.save_to_disk(str(pool_dir))
    rc = main(
        [
            "report",
            "--dataset",
            str(pool_dir),
            "--output-dir",
            str(out),
            "--tokenizer",
            "no/such-tokenizer",
            "--no-progress",
        ]
    )
    assert rc == 1
    assert "no/such-tokenizer" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pool"]  # no temporary folder left behind either


def test_cli_report_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and "--subset" in out and "--output-dir" in out


# --- issue 12: the pool comes from the subset's provenance -----------------------------------------------------
REPORT_FAST = ["--self-bleu-samples", "5", "--n-clusters", "5", "--no-embeddings", "--no-progress"]


def test_report_without_dataset_uses_the_pool_the_subset_came_from(pool, tmp_path, capsys):
    jsonl = tmp_path / "pool.jsonl"
    pool.select(range(100, 160)).remove_columns(["embedding", "response_embedding"]).to_json(str(jsonl))
    curated, out = tmp_path / "curated", tmp_path / "report"
    assert main(["select", "--dataset", str(jsonl), "--k", "6", "--method", "random", "--output", str(curated)]) == 0
    assert main(["report", "--subset", str(curated), "--output-dir", str(out), *REPORT_FAST]) == 0
    rep = DiversityReport.from_json(str(out / "report.json"))
    assert rep.sizes["pool"] == 60 and rep.matching["matched"] == 6 and rep.matching["by"] == "source_index"
    assert "pool.jsonl" in capsys.readouterr().out


def test_report_without_a_reloadable_pool_is_an_error(pool, tmp_path, capsys):
    from datasets import Dataset

    in_memory = Dataset.from_dict({"prompt": pool["prompt"][:40], "response": pool["response"][:40]})
    curated = tmp_path / "curated"
    save_subset(select_diverse(in_memory, k=5, method="random", show_progress=False), curated)
    assert main(["report", "--subset", str(curated), "--output-dir", str(tmp_path / "out"), *REPORT_FAST]) == 1
    err = capsys.readouterr().err
    assert "cannot be loaded again" in err and "--dataset" in err
    assert not (tmp_path / "out").exists()


def test_report_against_another_pool_warns(pool, tmp_path, caplog):
    from datasets import Dataset

    chats = Dataset.from_dict(
        {
            "conversations": [
                [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}] for i in range(30)
            ]
        }
    )
    curated = tmp_path / "curated"
    save_subset(select_diverse(chats, k=5, method="random", show_progress=False), curated)
    args = ["report", "--subset", str(curated), "--dataset", "embedded:ifbench", "--output-dir", str(tmp_path / "o")]
    assert main([*args, *REPORT_FAST]) == 0
    assert any(r.levelname == "WARNING" and "0 of 5 subset rows match" in r.getMessage() for r in caplog.records)
