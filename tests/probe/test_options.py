"""ProbeOptions: the one options type of every probe engine; unsupported settings are refused."""

import numpy as np
import pytest
import torch

from erf import ConvStack, measure_erf, measure_erfs
from erf.probe.bench import run_benchmark
from erf.probe.distributed import measure_erf_sharded
from erf.probe.draws import measure_erf_draws
from erf.probe.measure import probe_units
from erf.probe.options import ProbeOptions

SHAPE = (1, 15, 15)


def _net(seed: int = 0) -> ConvStack:
    return ConvStack(
        depth=3, channels=2, in_channels=1, init="random", activation="relu", seed=seed
    )


def test_defaults_match_measure_erf_and_resolve_channels_last_from_fast():
    assert ProbeOptions().channels_last is False
    assert ProbeOptions(fast=True).channels_last is True
    assert ProbeOptions(fast=True, channels_last=False).channels_last is False
    resolved = ProbeOptions(channel=np.int64(1), n_samples=np.int64(4))
    assert type(resolved.channel) is int and type(resolved.n_samples) is int


def test_of_with_fast_resolves_channels_last_as_the_constructor_does():
    assert ProbeOptions.of(fast=True) == ProbeOptions(fast=True)
    assert ProbeOptions.of(fast=True).channels_last is True
    assert ProbeOptions.of(ProbeOptions(fast=True), fast=False).channels_last is False
    explicit = ProbeOptions(channels_last=False)  # asked for: kept when fast changes
    assert ProbeOptions.of(explicit, fast=True).channels_last is False


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"reduce": "max"}, "reduce='max' is not allowed: expected one of abs, relu"),
        ({"on_nonfinite": "ignore"}, "on_nonfinite='ignore' is not allowed: expected one of skip"),
        ({"crop": "maybe"}, "crop='maybe' is not allowed: expected off, auto or on"),
        ({"n_samples": 0}, "n_samples=0 is not allowed: expected an integer >= 1"),
        (
            {"batch_size": "big"},
            "batch_size='big' is not allowed: expected an integer >= 1 or auto",
        ),
        ({"fast": True, "dtype": torch.float64}, "use dtype=float32"),
    ],
)
def test_bad_settings_fail_in_one_line_at_construction(settings, message):
    with pytest.raises(ValueError, match=message) as err:
        ProbeOptions(**settings)
    assert "\n" not in str(err.value)


def test_of_replaces_settings_and_names_an_unknown_one():
    base = ProbeOptions(n_samples=8, seed=3)
    assert ProbeOptions.of(base, seed=4) == ProbeOptions(n_samples=8, seed=4)
    with pytest.raises(TypeError, match=r"unknown probe option\(s\) \['n_sampels'\]"):
        ProbeOptions.of(base, n_sampels=2)


def test_refuse_names_every_setting_that_is_set_and_passes_plain_options():
    ProbeOptions(batch_size=4, channel=None).refuse(("batch_size", "channel", "fast"), "job")
    options = ProbeOptions(batch_size="auto", fast=True, crop="auto")
    with pytest.raises(ValueError) as err:
        options.refuse(("fast", "compile", "crop", "batch_size"), "the job", prefix="probe.")
    assert str(err.value) == (
        "probe.fast, probe.crop=auto, probe.batch_size=auto does not combine with the job"
    )


def test_probe_units_with_options_is_bitwise_measure_erf_and_measure_erfs():
    settings = dict(n_samples=5, batch_size=2, device="cpu", seed=7, reduce="square")
    model = _net()
    direct = measure_erf(model, SHAPE, target="3", **settings)
    (many,) = measure_erfs(model, SHAPE, ["3"], **settings)
    (engine,) = probe_units(model, SHAPE, ["3"], ProbeOptions(**settings))
    np.testing.assert_array_equal(direct.total, engine.total)
    np.testing.assert_array_equal(many.total, engine.total)
    assert direct.meta["fingerprint"] == engine.meta["fingerprint"]


def test_draws_take_options_or_settings_and_refuse_speed_settings():
    by_name = measure_erf_draws(_net, SHAPE, draws=2, n_samples=2, batch_size=2, device="cpu")
    options = ProbeOptions(n_samples=2, batch_size=2, device="cpu")
    by_type = measure_erf_draws(_net, SHAPE, draws=2, options=options)
    for a, b in zip(by_name, by_type):
        np.testing.assert_array_equal(a.total, b.total)
    for speed in ({"fast": True}, {"crop": "auto"}, {"compile": True}, {"batch_size": "auto"}):
        with pytest.raises(ValueError, match="does not combine with the many-draws probe"):
            measure_erf_draws(_net, SHAPE, draws=2, n_samples=2, device="cpu", **speed)


def test_sharded_probe_without_a_process_group_is_measure_erf_and_refuses_auto_batches():
    settings = dict(n_samples=3, batch_size=2, device="cpu", seed=1)
    plain = measure_erf(_net(), SHAPE, **settings)
    sharded = measure_erf_sharded(_net(), SHAPE, options=ProbeOptions(**settings))
    np.testing.assert_array_equal(plain.total, sharded.total)
    with pytest.raises(ValueError, match="batch_size=auto does not combine with the sharded"):
        measure_erf_sharded(_net(), SHAPE, n_samples=2, batch_size="auto", device="cpu")


@pytest.mark.parametrize(
    "setting",
    [{"channel": 0}, {"dtype": torch.float64}, {"fast": True}, {"checkpoint_every": 3}],
)
def test_benchmark_refuses_settings_it_would_otherwise_ignore(setting):
    with pytest.raises(ValueError, match="does not combine with the benchmark"):
        run_benchmark(_net(), SHAPE, target=None, n_samples=2, batch_size=2, **setting)


def test_measure_erf_takes_options_and_keyword_overrides_of_them_alike():
    options = ProbeOptions(n_samples=3, batch_size=2, device="cpu", seed=5)
    by_options = measure_erf(_net(), SHAPE, options, target="3")
    by_name = measure_erf(
        _net(), SHAPE, target="3", n_samples=3, batch_size=2, device="cpu", seed=5
    )
    overridden = measure_erf(_net(), SHAPE, options, target="3", seed=6)
    np.testing.assert_array_equal(by_options.total, by_name.total)
    assert overridden.meta["fingerprint"]["seed"] == 6
    with pytest.raises(TypeError, match=r"unknown probe option\(s\) \['n_sampels'\]"):
        measure_erf(_net(), SHAPE, n_sampels=3)


def test_a_seeded_source_is_fingerprinted_by_its_settings_so_other_inputs_do_not_resume():
    from erf.probe.photos import PhotoSource

    plain = ProbeOptions(inputs=PhotoSource(names=("astronaut",)))
    normalised = ProbeOptions(
        inputs=PhotoSource(names=("astronaut",), mean=(0.5,) * 3, std=(0.5,) * 3)
    )
    assert plain.fingerprint()["inputs"] != normalised.fingerprint()["inputs"]
    assert "astronaut" in plain.fingerprint()["inputs"]
    assert ProbeOptions(inputs=[1, 2]).fingerprint()["inputs"] == "list"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"checkpoint_every": 0}, "checkpoint_every=0 is not allowed"),
        ({"n_samples": 10**12}, "n_samples=1000000000000 is not allowed"),
        ({"n_samples": 2.5}, "n_samples=2.5 is not allowed"),
        ({"channel": -1}, "channel=-1 is not allowed"),
    ],
)
def test_the_api_refuses_what_the_cli_refuses(settings, message):
    with pytest.raises(ValueError, match=message) as err:
        ProbeOptions(**settings)
    assert "\n" not in str(err.value)


def test_an_unknown_target_names_the_nearest_modules():
    from erf.probe.forward import unknown_module

    text = unknown_module("layer3.0.conv", ["layer3.0.conv1", "layer3.0.conv2", "fc"])
    assert "(did you mean layer3.0.conv2 or layer3.0.conv1?)" in text
