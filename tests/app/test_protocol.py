"""probe.protocol (erf.app.protocol): luo turns the draws x inputs budget into one-input fresh
draws, ours keeps it; luo is refused where weights or inputs are not drawn from the seed."""

import pytest
from hydra import compose, initialize_config_dir

from erf.app.config import CONFIG_DIR
from erf.app.protocol import apply_protocol, check_protocol, runs_of
from erf.app.rules import ConfigError
from erf.app.validate import validate


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_ours_is_the_default_and_changes_nothing():
    cfg = _cfg("probe.draws=4", "probe.n_samples=8")
    assert cfg.probe.protocol == "ours"
    assert apply_protocol(cfg) is cfg


def test_luo_spends_the_same_budget_on_one_input_per_fresh_draw():
    cfg = _cfg("probe.protocol=luo", "probe.draws=4", "probe.n_samples=8", "probe.batch_size=8")
    out = apply_protocol(cfg)
    assert (out.probe.draws, out.probe.n_samples, out.probe.batch_size) == (32, 1, 1)
    assert out.probe.runs == 32 == 4 * 8
    assert cfg.probe.draws == 4  # the given config is not changed
    validate(out)
    assert apply_protocol(out).probe.draws == 32  # idempotent


def test_luo_takes_R_from_probe_runs():
    out = apply_protocol(_cfg("probe.protocol=luo", "probe.runs=20", "probe.n_samples=64"))
    assert (out.probe.draws, out.probe.n_samples) == (20, 1)


def test_activation_sweep_compares_the_protocols_at_an_equal_budget():
    ours = _cfg("experiment=activation_sweep")
    luo = apply_protocol(_cfg("experiment=activation_sweep", "probe.protocol=luo"))
    assert luo.probe.n_samples == 1
    assert luo.probe.draws == runs_of(ours) == ours.probe.draws * ours.probe.n_samples


def test_ours_with_a_runs_value_that_breaks_the_budget_is_refused():
    with pytest.raises(ConfigError, match=r"probe.runs=5 differs from probe.draws x"):
        check_protocol(_cfg("probe.runs=5", "probe.draws=2", "probe.n_samples=4"))


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        (["model=torchvision", "model.weights=DEFAULT"], "pretrained weights"),
        (["model=timm", "model.pretrained=true"], "pretrained weights"),
        (["inputs=imagefolder", "inputs.root=/data"], "real images or datasets"),
        (["inputs=photos"], "real images or datasets"),
        (["setting=classification"], "training jobs"),
        (["model=timm", "model.checkpoint=net.pth"], "loaded weights"),
    ],
)
def test_luo_is_refused_in_one_line_where_it_cannot_apply(overrides, why):
    cfg = _cfg(*overrides, "probe.protocol=luo")
    with pytest.raises(ConfigError, match=f"probe.protocol=luo does not apply to {why}") as err:
        check_protocol(cfg)
    assert "\n" not in str(err.value)


def test_an_unknown_protocol_is_refused():
    with pytest.raises(ConfigError, match="expected ours or luo"):
        validate(_cfg("probe.protocol=paper"))
