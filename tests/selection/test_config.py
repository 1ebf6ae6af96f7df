"""`hf_diverse.selection.config`: method configs validate on construction; every option has help and a valid
default."""

import pytest

from hf_diverse import METHODS, InvalidParameterError, QditConfig, TokensConfig


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
