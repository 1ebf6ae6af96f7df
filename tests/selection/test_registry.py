"""`hf_diverse.selection.registry`: adding a method is one module plus one registry line (API, CLI flags and help)."""

from dataclasses import dataclass

import numpy as np
import pytest

from hf_diverse import METHODS, get_provenance, select_diverse
from hf_diverse.cli import main
from hf_diverse.selection import Method, MethodConfig, SelectionResult, option


@dataclass
class EveryOtherConfig(MethodConfig):
    offset: int = option(0, "First row taken; then every other row.", bounds=(0, None))
    verbose: bool = option(False, "A yes/no option, to see its --x/--no-x flag.")


def select_every_other(ctx, config):
    rows = np.arange(config.offset, config.offset + 2 * ctx.k, 2) % ctx.n
    return SelectionResult(indices=rows, gains=np.zeros(ctx.k))


def test_adding_a_method_is_one_module_plus_one_registry_line(monkeypatch, ifbench, capsys, tmp_path):
    method = Method(
        name="every-other",
        select=select_every_other,
        config=EveryOtherConfig,
        label="every other row (a test method)",
        summary="Every other row of the pool.",
    )
    monkeypatch.setitem(METHODS, method.name, method)
    subset = select_diverse(ifbench.add_column("i", list(range(len(ifbench)))), 4, "every-other", offset=1)
    assert subset["i"] == [1, 3, 5, 7]
    assert get_provenance(subset)["parameters"]["offset"] == 1
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    assert "every-other" in out and "--offset" in out and "--no-verbose" in out
    assert (
        main(["select", "--method", "every-other", "--k", "3", "--offset", "2", "--output", str(tmp_path / "o")]) == 0
    )
