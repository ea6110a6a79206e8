"""TRF crop: probing only the unit's input window gives the uncropped map (float64, tight),
and the crop is refused, with the reason, where the argument does not hold."""

import logging

import numpy as np
import pytest
import torch
import torchvision
from helpers.fixtures_graph import SEBlock, TFNet3, UNet
from torch import nn

from erf import ConvStack, measure_erf, measure_erfs
from erf.probe.crop import CropRefused, plan_crop

KW = dict(n_samples=3, batch_size=2, device="cpu", dtype=torch.float64, seed=3)


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13 * np.abs(b).max())


def _strided_stack():
    """Strides, dilation, max and avg pooling (with padding and ceil_mode), ReLU."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 4, 5, padding=2),
        nn.BatchNorm2d(4).eval(),
        nn.ReLU(),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(4, 3, 3, padding=1),
    )


@pytest.mark.parametrize("position", ["center", (0, 0), (7, 1), (2, 7), (7, 7)])
def test_cropped_probe_of_a_strided_dilated_pooled_stack_equals_the_uncropped(position):
    model = _strided_stack()
    full = measure_erf(model, (2, 61, 61), position=position, **KW)
    cropped = measure_erf(model, (2, 61, 61), position=position, crop="on", **KW)
    assert cropped.meta["crop"]["applied"]
    rows, cols = cropped.meta["crop"]["rows"], cropped.meta["crop"]["cols"]
    assert rows[1] - rows[0] < 60 or cols[1] - cols[0] < 60  # a real crop
    assert rows[0] % 8 == 0 and cols[0] % 8 == 0  # on the grid of every stride
    assert (cropped.position, cropped.target_shape) == (full.position, full.target_shape)
    _close(cropped.map, full.map)
    _close(cropped.stderr, full.stderr)


@pytest.mark.parametrize("target", ["layer1", "layer2.0.conv1"])
def test_cropped_probe_of_a_resnet18_layer_equals_the_uncropped(target):
    model = torchvision.models.resnet18()
    full = measure_erf(model, (3, 96, 96), target=target, **KW)
    cropped = measure_erf(model, (3, 96, 96), target=target, crop="on", **KW)
    (r0, r1), (c0, c1) = cropped.meta["crop"]["rows"], cropped.meta["crop"]["cols"]
    assert r1 - r0 < 95 and r0 % 4 == 0
    _close(cropped.map, full.map)
    outside = np.ones(full.shape, bool)
    outside[r0 : r1 + 1, c0 : c1 + 1] = False
    assert not full.map[outside].any()  # the uncropped gradient is exactly 0 outside


def test_several_units_share_one_window_and_keep_their_own_maps():
    model = ConvStack(4, channels=2, init="random", activation="relu", stride=[1, 2, 1, 1])
    units = [("3", (2, 2)), ("7", (5, 4)), ("7", "center")]
    together = measure_erfs(model, (2, 40, 40), units, crop="on", **KW)
    rows = together[0].meta["crop"]["rows"]
    assert all(r.meta["crop"]["rows"] == rows for r in together)
    for (target, position), got in zip(units, together):
        _close(got.map, measure_erf(model, (2, 40, 40), target=target, position=position, **KW).map)


def test_a_cropped_run_resumes_to_the_bitwise_same_map():
    model = ConvStack(3, channels=2, init="random", activation="relu", stride=[2, 1, 1])
    kw = {**KW, "n_samples": 5, "crop": "auto"}
    whole = measure_erf(model, (2, 30, 30), **kw)
    partials = []
    measure_erf(model, (2, 30, 30), on_checkpoint=partials.append, checkpoint_every=1, **kw)
    assert partials[0].total.shape == (30, 30)  # checkpoints hold the full map
    resumed = measure_erf(model, (2, 30, 30), resume=partials[0], **kw)
    assert np.array_equal(resumed.total, whole.total)


class _Inception(nn.Module):
    """Two branches (3x3 and dilated 3x3) concatenated along channels, then a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 3, padding=2, dilation=2)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1))


def test_branches_concatenated_along_channels_are_cropped_exactly():
    model = _Inception()
    for position in ["center", (0, 3)]:
        cropped = measure_erf(model, (1, 20, 20), position=position, crop="on", **KW)
        assert cropped.meta["crop"]["applied"]
        _close(cropped.map, measure_erf(model, (1, 20, 20), position=position, **KW).map)


def test_a_target_covering_the_whole_input_crops_nothing():
    plan = plan_crop(ConvStack(10), (1, 16, 16), [(None, "center")])
    assert (plan.rows, plan.cols) == ((0, 15), (0, 15))


class _Global(nn.Module):
    """conv -> minus the spatial mean (global) -> conv: every unit sees the whole input."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        return self.b(y - y.mean((2, 3), keepdim=True))


class _DataDependent(nn.Module):
    """A conv whose sign depends on the input: torch.fx cannot trace the branch."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        return y if y.sum() > 0 else -y


@pytest.mark.parametrize(
    "model, shape, reason",
    [
        (_Global(), (1, 24, 24), "global"),
        (TFNet3(), (1, 8, 8), "not aligned"),
        (SEBlock(), (1, 24, 24), "not purely local"),
        (UNet(), (1, 24, 24), "Upsample"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReflectionPad2d(1)), (1, 24, 24), "ReflectionPad"),
        (nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1)), (1, 8, 8), "is global"),
        (_DataDependent(), (1, 8, 8), "graph analysis failed: cannot trace"),
    ],
    ids=["global", "misaligned", "squeeze-excitation", "upsampling", "reflection-pad",
         "adaptive-pool", "untraceable"],
)  # fmt: skip
def test_the_crop_is_refused_where_it_could_change_the_result(model, shape, reason, caplog):
    with pytest.raises(CropRefused, match=reason):
        plan_crop(model, shape, [(None, "center")])
    with pytest.raises(ValueError, match=f"crop=on: .*{reason}"):
        measure_erf(model, shape, crop="on", **KW)
    with caplog.at_level(logging.WARNING, logger="erf"):
        auto = measure_erf(model, shape, crop="auto", **KW)
    assert "crop: probing the whole input" in caplog.text
    assert auto.meta["crop"]["applied"] is False and reason in auto.meta["crop"]["reason"]
    np.testing.assert_array_equal(auto.map, measure_erf(model, shape, **KW).map)


def test_an_unknown_crop_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="crop='maybe' is not allowed: expected off, auto or on"):
        measure_erf(ConvStack(2), (1, 8, 8), crop="maybe", device="cpu")


def test_an_unknown_target_is_a_crop_refusal_naming_it():
    with pytest.raises(CropRefused, match="no module path or fx node named 'nope'"):
        plan_crop(ConvStack(2), (1, 8, 8), [("nope", "center")])


def test_a_unit_that_reads_only_padding_refuses_the_crop_and_auto_gives_its_zero_map():
    """Over-padded: unit (0, 0) of a 3x3 conv with padding 3 reads rows and cols -3..-1, all
    padding, so its gradient is zero everywhere (there is no window to crop to)."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=3))
    with pytest.raises(CropRefused, match="the probed units see no input pixel"):
        plan_crop(model, (1, 8, 8), [(None, (0, 0))])
    auto = measure_erf(model, (1, 8, 8), position=(0, 0), crop="auto", **KW)
    assert auto.meta["crop"]["applied"] is False
    assert not auto.map.any()
    np.testing.assert_array_equal(
        auto.map, measure_erf(model, (1, 8, 8), position=(0, 0), **KW).map
    )


def test_the_window_reaches_the_image_end_when_the_units_own_window_would_drop_the_unit():
    """Under-padded dilated conv (k 3, dilation 2, padding 1: unit u reads u - 1, u + 1, u + 3
    and there are n - 2 outputs): unit (1, 4) of a 7 x 7 input reads rows {0, 2, 4} and cols
    {3, 5, 7}, col 7 being padding. The unit's own window, cols 3..5, has 3 - 2 = 1 output
    col, not the unit's col 4 - 3 = 1; the crop to the image's last col (4 cols, 2 outputs)
    keeps it."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, dilation=2))
    plan = plan_crop(model, (1, 7, 7), [(None, (1, 4))])
    assert (plan.rows, plan.cols) == ((0, 6), (3, 6))
    assert plan.units == (((1, 5, 5), (1, 4), (1, 1)),)
    full = measure_erf(model, (1, 7, 7), position=(1, 4), **KW)
    cropped = measure_erf(model, (1, 7, 7), position=(1, 4), crop="on", **KW)
    assert cropped.meta["crop"]["cols"] == [3, 6]
    _close(cropped.map, full.map)
    support = np.zeros((7, 7), bool)
    support[np.ix_([0, 2, 4], [3, 5])] = True
    np.testing.assert_array_equal(full.map != 0, support)


def test_a_unit_left_of_its_first_input_pixel_refuses_the_crop():
    """Over-padded dilated conv (k 3, dilation 2, padding 3): unit (0, 2) reads rows
    {-3, -1, 1}, so the window starts at row 1, where the crop's unit 0 is the original's
    unit 1, and the probed unit would lie before the crop's map (to the image's end too)."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=3, dilation=2))
    with pytest.raises(CropRefused, match=r"the crop \(\(1, 19\), \(1, 19\)\) would change node"):
        plan_crop(model, (1, 20, 20), [(None, (0, 2))])
    auto = measure_erf(model, (1, 20, 20), position=(0, 2), crop="auto", **KW)
    assert auto.meta["crop"]["applied"] is False
    _close(auto.map, measure_erf(model, (1, 20, 20), position=(0, 2), **KW).map)
