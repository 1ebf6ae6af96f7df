"""`hf-diverse report` (`hf_diverse.cli.report`)."""

import pytest

from hf_diverse import DiversityReport
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
