"""The input shape a probe job uses (erf.app.build.input_shape_for): ``inputs.channels`` and
``inputs.size``, or when null the model's first conv and its TRF plus a margin; what cannot be
inferred is refused in one line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from torch import nn

from erf.app.build import DEFAULT_SIZE, input_shape_for
from erf.app.config import CONFIG_DIR
from erf.nets.luo import ConvStack


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# oracle: `depth` stacked 3x3 convs see 1 + 2 * depth pixels per axis: 5 + 16 < 32; 25 + 16
@pytest.mark.parametrize("depth, side", [(2, 32), (12, 41)])
def test_a_chain_gets_its_trf_plus_a_16_pixel_margin_and_at_least_32(depth, side):
    model = ConvStack(depth=depth, channels=2, in_channels=5)
    assert input_shape_for(_cfg(), model) == (5, side, side)


def test_a_model_that_is_not_a_chain_gets_the_default_side():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    assert input_shape_for(_cfg(), Residual()) == (2, DEFAULT_SIZE, DEFAULT_SIZE)


def test_null_channels_on_a_model_without_a_conv_are_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ValueError, match="^inputs.channels is null and the model has no Conv2d"):
        input_shape_for(_cfg("inputs.size=[2,2]"), model)
    assert input_shape_for(_cfg("inputs.size=[2,2]", "inputs.channels=3"), model) == (3, 2, 2)


def test_a_sequence_size_is_taken_as_given_and_channels_from_the_first_conv1d():
    model = nn.Sequential(nn.Conv1d(4, 2, 3), nn.Conv1d(2, 2, 3))
    assert input_shape_for(_cfg("inputs.size=[40]"), model) == (4, 40)


def test_a_volume_shape_is_the_given_channels_and_sizes():
    shape = input_shape_for(_cfg("inputs.size=[6,8,10]", "inputs.channels=2"), nn.Conv3d(5, 2, 3))
    assert shape == (2, 6, 8, 10)


def test_a_sequence_model_without_a_conv1d_cannot_infer_its_channels():
    with pytest.raises(ValueError, match="^inputs.channels is null and the model has no Conv1d"):
        input_shape_for(_cfg("inputs.size=[40]"), nn.Sequential(nn.Conv2d(3, 2, 3)))
