"""`hf_diverse.report.result`: `DiversityReport` as a table, JSON and plots."""

import json

from hf_diverse import DiversityReport


def test_report_table_json_round_trip_and_plots(report, tmp_path):
    text = str(report)
    for needle in (
        "instruction",
        "response",
        "subset",
        "pool",
        "random",
        "distinct-1",
        "Self-BLEU",
        "token entropy (bits)",
        "coverage d(A)/N",
        "cluster coverage",
    ):
        assert needle in text
    again = DiversityReport.from_json(report.to_json())
    assert again.to_dict() == report.to_dict()
    path = tmp_path / "report.json"
    report.to_json(str(path))
    assert DiversityReport.from_json(str(path)).to_dict() == json.loads(path.read_text())
    paths = again.plot(tmp_path / "plots")  # plots need only what the JSON holds
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == [
        "metrics_instruction.png",
        "metrics_response.png",
        "token_frequency_instruction.png",
        "token_frequency_response.png",
    ]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
