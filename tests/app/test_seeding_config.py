"""probe.seeding, the renamed reductions and the probe=openerf / probe=replknet presets in the
config: refusals before any work, and presets that build exactly ``erf.PRESETS``."""

import pytest
from hydra import compose, initialize_config_dir

from erf import PRESETS
from erf.app.build import probe_options
from erf.app.config import CONFIG_DIR
from erf.app.validate import ConfigError, preflight, validate


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["probe.reduce=signed_clamp"], ["probe.reduce=clamp_after_mean", "clamp_per_image"]),
        (["probe.seeding=channel"], ["probe.seeding=channel needs probe.channel=K"]),
        (["probe.channel=2", "probe.seeding=relu_gated"], ["probe.channel=2", "relu_gated"]),
        (["probe.seeding=gated"], ["probe.seeding=gated", "relu_gated"]),
        (["probe.normalise=max"], ["probe.normalise=max is not allowed"]),
        (
            ["probe.seeding=per_channel_normalised", "probe.reduce=clamp_after_mean"],
            ["probe.reduce=clamp_after_mean is signed"],
        ),
    ],
)
def test_bad_seeding_settings_fail_before_any_work_in_one_line(overrides, words):
    with pytest.raises(ConfigError) as info:
        preflight(overrides)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.mark.parametrize(
    "overrides",
    [
        ["probe=openerf"],
        ["probe=replknet"],
        ["probe.channel=2"],
        ["probe.channel=2", "probe.seeding=channel"],
        ["probe.seeding=per_channel_normalised", "probe.reduce=clamp_per_image"],
    ],
)
def test_good_seeding_settings_pass(overrides):
    preflight(overrides)


def _composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    validate(cfg)
    return cfg


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_config_preset_builds_the_python_preset(preset):
    cfg = _composed(f"probe={preset}")
    options = probe_options(cfg, "gaussian")
    for key, value in PRESETS[preset].items():
        got = cfg.probe.position if key == "position" else getattr(options, key)
        assert got == value, key


def test_the_replknet_preset_sets_their_1024_pixel_input_and_keeps_other_inputs():
    assert list(_composed("probe=replknet").inputs.size) == [1024, 1024]
    real = _composed("probe=replknet", "inputs=imagefolder", "inputs.root=/data/val")
    assert real.inputs.source == "imagefolder" and list(real.inputs.size) == [1024, 1024]
    assert list(_composed("probe=replknet", "inputs.size=[64,64]").inputs.size) == [64, 64]


def test_the_default_seeding_is_all_channels_or_the_probed_channel():
    assert probe_options(_composed(), "gaussian").seeding == "all_channels"
    assert probe_options(_composed("probe.channel=3"), "gaussian").seeding == "channel"
