"""Bad settings fail before any work, in one line naming the key, the value and what is allowed."""

import pytest

from erf.app.validate import ConfigError, preflight


@pytest.mark.parametrize(
    "override, message",
    [
        ("probe.n_sampels=3", "unknown key probe.n_sampels (did you mean probe.n_samples?)"),
        ("model.activatoin=relu", "unknown key model.activatoin (did you mean model.activation?)"),
        ("probe.n_samples=0", "probe.n_samples=0 is not allowed: expected an integer >= 1"),
        ("probe.n_samples=abc", "probe.n_samples=abc is not allowed: expected an integer >= 1"),
        ("probe.batch_size=1.5", "probe.batch_size=1.5 is not allowed"),
        ("model.depth=0", "model.depth=0 is not allowed: expected an integer >= 1"),
        ("model.kernel_size=4", "model.kernel_size=4 is not allowed: expected an odd integer"),
        ("model.dilation=0", "model.dilation=0 is not allowed"),
        ("model.activation=swish", "model.activation=swish is not allowed: expected one of none"),
        ("model.init=xavier", "model.init=xavier is not allowed: expected one of uniform"),
        ("probe.reduce=mean", "probe.reduce=mean is not allowed: expected one of abs, relu"),
        ("probe.position=[1]", "probe.position=[1] is not allowed"),
        ("probe.channel=-1", "probe.channel=-1 is not allowed"),
        ("inputs.size=[10]", "inputs.size=[10] is not allowed"),
        ("device=gpu", "device=gpu is not allowed: expected cpu, cuda, cuda:N or auto"),
        ("model=resnet", "model=resnet is not a known model; available: conv_stack, custom"),
        (
            "experiment=nope",
            "experiment=nope is not a known experiment; available: activation_sweep, benchmark",
        ),
        (
            "probe.batch_size=big",
            "probe.batch_size=big is not allowed: expected an integer >= 1 or",
        ),
        ("probe.crop=maybe", "probe.crop=maybe is not allowed: expected off, auto or on"),
        ("probe.fast=yes", "probe.fast=yes is not allowed: expected true or false"),
        ("benchmark.methods=[probe,warp]", "benchmark.methods=[probe,warp] is not allowed"),
        ("benchmark.multi_targets=all", "benchmark.multi_targets=all is not allowed: expected"),
    ],
)
def test_bad_override_is_one_line_naming_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        preflight([override])
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_every_value_of_a_sweep_is_checked():
    with pytest.raises(ConfigError, match="model.depth=0"):
        preflight(["model.depth=5,10,0"])


def test_good_overrides_and_experiments_pass():
    preflight(["experiment=depth_sweep", "model.depth=2,4", "probe.n_samples=2"])
    preflight(["model=torchvision", "model.name=resnet18", "probe.target=layer3"])
    preflight(["+model.extra=1", "hydra.run.dir=/tmp/x", "probe.position=[3,4]"])
    preflight(["probe.batch_size=auto", "probe.crop=off", "probe.fast=true", "probe.compile=true"])
    preflight(["experiment=benchmark", "benchmark.methods=[probe,compile]", "device=cuda"])


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--cfg", "job", "probe.n_samples=3"], ["probe.n_samples=3"]),
        (["--info", "defaults", "model.depth=2"], ["model.depth=2"]),
        (["--info", "model.depth=2"], ["model.depth=2"]),
        (["-m", "model.depth=2,3", "-cn", "config"], ["model.depth=2,3"]),
    ],
)
def test_flags_and_their_values_are_not_taken_for_overrides(argv, expected):
    from erf.app.run import command_line_overrides

    assert command_line_overrides(argv) == expected
