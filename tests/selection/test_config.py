"""Method configs and the registry: validation, the CLI flags and help derived from them, adding a method."""

from dataclasses import dataclass

import numpy as np
import pytest

from hf_diverse import METHODS, InvalidParameterError, QditConfig, TokensConfig, get_provenance, select_diverse
from hf_diverse.cli import build_parser, main
from hf_diverse.selection import Method, MethodConfig, SelectionResult, option
from hf_diverse.selection.api import build_config


def test_configs_validate_on_construction():
    assert QditConfig().alpha == 0.7 and QditConfig(alpha=1).alpha == 1.0  # ints become floats
    with pytest.raises(InvalidParameterError, match=r"alpha must be in \[0, 1\], got 1.5"):
        QditConfig(alpha=1.5)
    with pytest.raises(InvalidParameterError, match="alpha must be a number"):
        QditConfig(alpha="high")
    with pytest.raises(InvalidParameterError, match=r"Unknown knn 'annoy'\. Valid values of knn: \['auto'"):
        QditConfig(knn="annoy")
    with pytest.raises(InvalidParameterError, match="knn_cache must be True or False"):
        QditConfig(knn_cache="yes")
    with pytest.raises(InvalidParameterError, match="n_neighbors must be an integer"):
        QditConfig(n_neighbors=2.5)
    with pytest.raises(InvalidParameterError, match=r"epsilon must be in \(0, 1\)"):
        QditConfig(epsilon=0.0)
    assert TokensConfig(low_threshold=None).low_threshold is None  # `X | None` accepts None
    with pytest.raises(InvalidParameterError, match="must be set"):
        QditConfig(block_size=None)


def test_every_option_has_help_and_a_valid_default():
    for name, method in METHODS.items():
        method.config()  # the defaults validate
        assert method.label and method.summary, name
        for opt in method.config.options():
            assert len(opt.help) > 15, (name, opt.name)
            assert opt.type in (bool, int, float, str), (name, opt.name)


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


def test_cli_help_describes_every_option_and_booleans_are_x_no_x(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for method in METHODS.values():
        for opt in method.config.options():
            flag = "--" + opt.name.replace("_", "-")
            assert flag in out, flag
            assert " ".join(opt.help.split())[:40] in out, flag
            if opt.type is bool:
                assert f"--no-{opt.name.replace('_', '-')}" in out
    assert "default: 'auto'" in out and "--progress, --no-progress" in out
    args = build_parser().parse_args(["select", "--no-knn-cache", "--alpha", "0.3", "--memory-budget", "none"])
    assert args.knn_cache is False and args.alpha == 0.3 and args.memory_budget is None


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("hf-diverse 0.")


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
