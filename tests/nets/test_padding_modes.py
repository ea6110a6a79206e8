"""``padding_mode``: what the convs of a conv stack or a torchvision model read past the
border. Oracle: uniform weights (each unit the mean of its window) on a constant input give
that constant everywhere with reflect, replicate or circular padding, and less at the border
with zeros."""

import pytest
import torch
from torch import nn

from erf.nets.luo import ConvStack, set_padding_mode
from erf.nets.zoo import torchvision_model


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_a_padded_mean_stack_keeps_a_constant_input_constant(mode):
    model = ConvStack(depth=3, kernel_size=3, channels=2, padding_mode=mode)
    out = model(torch.full((1, 2, 9, 9), 2.0))
    assert torch.allclose(out, torch.full_like(out, 2.0))


def test_zero_padding_lowers_the_border():
    out = ConvStack(depth=1, kernel_size=3, channels=1)(torch.ones(1, 1, 5, 5))[0, 0].detach()
    assert float(out[2, 2]) == pytest.approx(1.0) and float(out[0, 0]) == pytest.approx(4 / 9)


def test_a_padding_mode_it_does_not_know_is_one_line():
    with pytest.raises(ValueError, match=r"padding_mode='mirror' is not allowed") as info:
        ConvStack(depth=1, padding_mode="mirror")
    assert "\n" not in str(info.value)


def test_set_padding_mode_reaches_every_padded_conv_of_resnet18_and_no_other():
    model = torchvision_model("resnet18", padding_mode="circular")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    padded = [c for c in convs if any(c.padding)]
    assert padded and all(c.padding_mode == "circular" for c in padded)
    assert all(c.padding_mode == "zeros" for c in convs if not any(c.padding))  # 1 x 1
    assert model.maxpool.padding == 1  # pooling keeps its own padding
    assert set_padding_mode(model, "zeros") is model
    assert all(c.padding_mode == "zeros" for c in convs)
