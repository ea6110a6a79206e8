"""Graph TRF of 1-D (sequence) and 3-D (volume) models: one interval per axis, the closed forms
of dilated temporal stacks and of products of per-axis boxes, and exact per-unit boxes against
the gradient support (positive float64 weights and average pooling, so nothing cancels and
every tap of a window carries gradient)."""

import numpy as np
import pytest
import torch
from torch import nn

from erf.rf.graph import graph_rf
from erf.rf.theory import theoretical_rf


def _positive(model):
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand_like(p) + 0.5)
    return model


def _support_box(model, shape, unit):
    x = (torch.rand(1, *shape, dtype=torch.float64) + 0.5).requires_grad_()
    y = _positive(model)(x)
    y[(0, slice(None), *unit)].sum().backward()
    mask = (x.grad[0].abs().sum(0) != 0).numpy()
    out = []
    for a in range(mask.ndim):
        idx = np.flatnonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a)))
        out.append((int(idx[0]), int(idx[-1])))
    return tuple(out)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_a_dilated_temporal_stack_with_rates_1_2_4_8_has_rf_1_plus_15_times_k_minus_1(k):
    layers = [nn.Conv1d(1, 1, k, dilation=d, padding=d * (k - 1) // 2) for d in (1, 2, 4, 8)]
    rf = theoretical_rf(nn.Sequential(*layers), (1, 256))
    assert rf.size == (1 + (k - 1) * 15,) and rf.stride == (1,)


def test_a_causal_wavenet_stack_reads_only_the_past():
    # left-padded causal convs: unit t reads [t - 15, t]
    class Causal(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv1d(1, 1, 2, dilation=d) for d in (1, 2, 4, 8))

        def forward(self, x):
            for conv, d in zip(self.convs, (1, 2, 4, 8)):
                x = conv(nn.functional.pad(x, (d, 0)))
            return x

    g = graph_rf(Causal(), (1, 64))
    assert g.unit_interval(None, (40,)) == ((25, 40),)
    assert g.unit_interval(None, (3,), clipped=True) == ((0, 3),)


def test_a_3d_stack_box_is_the_product_of_its_axes_boxes():
    # per axis (depth, rows, cols): kernels (3, 5, 1), strides (1, 2, 1), dilation (2, 1, 1)
    model = nn.Sequential(
        nn.Conv3d(1, 2, (3, 5, 1), stride=(1, 2, 1), padding=(2, 2, 0), dilation=(2, 1, 1)),
        nn.AvgPool3d(2),
        nn.Conv3d(2, 1, 3, padding=1),
    )
    rf = theoretical_rf(model, (1, 12, 16, 10))
    # depth: 5 + 1 + 2*2 = 10; rows: 5 + 2*1 + 4*2 = 15; cols: 1 + 1 + 2*2 = 6
    assert rf.size == (10, 15, 6) and rf.stride == (2, 4, 2)
    h = rf.out_shape
    for unit in [(0, 0, 0), tuple(n // 2 for n in h), tuple(n - 1 for n in h), (1, 0, 2)]:
        assert rf.interval(unit, clipped=True) == _support_box(model, (1, 12, 16, 10), unit), unit


@pytest.mark.parametrize(
    "layers",
    [
        [nn.Conv1d(1, 2, 3, stride=2, padding=1), nn.Upsample(scale_factor=2, mode="linear")],
        [nn.Conv1d(1, 1, 3, padding=6, dilation=6), nn.AdaptiveAvgPool1d(7)],
        [nn.ReflectionPad1d(3), nn.Conv1d(1, 1, 5, dilation=2), nn.ConvTranspose1d(1, 1, 4, 2)],
        [nn.Conv1d(1, 1, 3, padding=2, padding_mode="circular"), nn.AvgPool1d(3, 2, 1)],
    ],
    ids=["upsample-linear", "dilated-adaptive", "reflect-transposed", "circular-pool"],
)
def test_every_unit_of_a_1d_model_reads_the_box_of_its_gradient_support(layers):
    model = nn.Sequential(*layers)
    g = graph_rf(model, (1, 20))
    n = g.nodes[g.output].shape[-1]
    for t in range(n):
        assert g.unit_interval(None, (t,), clipped=True) == _support_box(model, (1, 20), (t,)), t


def test_a_volume_pooled_to_one_voxel_is_global():
    model = nn.Sequential(nn.Conv3d(1, 2, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    rf = theoretical_rf(model, (1, 6, 7, 8))
    assert rf.is_global and rf.size == (6, 7, 8)


def test_a_sequence_model_refuses_a_2d_only_op_in_one_line():
    model = nn.Sequential(nn.Conv1d(4, 4, 3), nn.PixelShuffle(2))
    with pytest.raises((TypeError, ValueError)) as e:
        theoretical_rf(model, (4, 16))
    assert "\n" not in str(e.value)


def test_a_volume_model_refuses_pixel_shuffle_in_one_line():
    # [1, 1, 4, 4, 4] is a valid pixel_shuffle input (depth as channels), but the map is 3-D
    model = nn.Sequential(nn.PixelShuffle(2))
    with pytest.raises(TypeError, match=r"PixelShuffle.*\(it needs a 2-D map\)") as e:
        graph_rf(model, (1, 4, 4, 4))
    assert "\n" not in str(e.value)
