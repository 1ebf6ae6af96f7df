"""Every name the README documents is importable from `hf_diverse`."""

import builtins
import re
from pathlib import Path

import hf_diverse

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
NOT_OURS = {"SFTConfig"}  # trl's


def test_readme_imports_and_public_classes_exist():
    names = set()
    for line in re.findall(r"from hf_diverse import ([^\n]+)", README):
        names |= {n.strip(" ()") for n in line.split(",") if n.strip(" ()")}
    names |= set(re.findall(r"`([A-Z][A-Za-z]+(?:Error|Scorer|Config|Report))`", README))
    names -= NOT_OURS | {n for n in names if hasattr(builtins, n)}
    assert len(names) > 20
    missing = sorted(n for n in names if not hasattr(hf_diverse, n))
    assert not missing, missing
    assert set(hf_diverse.__all__) <= set(dir(hf_diverse))
