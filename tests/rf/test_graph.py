"""Graph TRF (erf.rf.graph) against hand-derived values, the closed form and gradient support.

Oracles: the google-research/receptive_field test networks (re-derived for PyTorch padding),
published VGG-16 numbers, the closed form of erf.rf.theory on chains, and the set of input pixels
with a nonzero gradient (positive weights, float64, max-pool -> avg-pool, so nothing cancels)
on toy graphs and torchvision models.
"""

import copy
import json
import re
from fractions import Fraction
from math import comb

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from helpers.fixtures_graph import (
    ChannelsLast,
    ChunkCat,
    Classifier,
    CumSum,
    DataDependent,
    NumpyGain,
    ResidualStack,
    SEBlock,
    SliceCat,
    TFComputeOrderNet,
    TFNet1,
    TFNet3,
    TFNet4,
    TFNet5,
    TFNet8,
    TwoCalls,
    UNet,
    conv,
)
from torch import fx, nn
from torchvision.models import segmentation

from erf.nets.luo import ConvStack
from erf.rf.graph import graph_rf, layer_table
from erf.rf.theory import theoretical_rf
from erf.rf.trf import TheoreticalRF

# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the gradient checks are small, and OpenMP threads spinning on two
    shared cores made this file several times slower; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def positive(model: nn.Module) -> nn.Module:
    """A float64 eval copy where nothing cancels: conv/linear weights in [0.5, 1.5]/fan_in,
    bias 0.01, BatchNorm as identity + 0.01, LayerNorm weights in [0.5, 1.5], layer scales 1,
    MaxPool2d -> AvgPool2d of the same geometry (max routes the gradient to one pixel),
    ReLU6 -> ReLU (the clip zeroes gradients)."""
    model = copy.deepcopy(model).double().eval().requires_grad_(False)
    for m in list(model.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1))
                pool = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode)
                setattr(m, name, pool)
            elif isinstance(child, nn.ReLU6):
                setattr(m, name, nn.ReLU())
    g = torch.Generator().manual_seed(0)

    def rand(shape):
        return torch.rand(shape, generator=g, dtype=torch.float64) + 0.5

    for name, p in model.named_parameters():
        if "layer_scale" in name:
            p.fill_(1.0)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.weight.copy_(rand(m.weight.shape) / m.weight[0].numel())
            if m.bias is not None:
                m.bias.fill_(0.01)
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
            m.weight.fill_(1.0)
            m.bias.fill_(0.01)
        elif isinstance(m, nn.LayerNorm):
            m.weight.copy_(rand(m.weight.shape))
            m.bias.zero_()
    return model


class Fn(nn.Module):
    """``fn(self, x)``: a functional op in a model; ``w`` a positive 3 x 3 kernel for it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.w = nn.Parameter(torch.rand(1, 1, 3, 3) + 0.5)

    def forward(self, x):
        return self.fn(self, x)


class _Stop(Exception):
    pass


def grad_supports(model, input_shape, target=None, units=None) -> list[np.ndarray]:
    """[H, W] masks of input pixels with a nonzero gradient of each of ``units`` (default: the
    centre (h//2, w//2)) of ``target`` (a module path; None = the output, or its "out" entry),
    summed over channels. One forward pass, stopped at the target."""
    model = positive(model)
    x = (torch.rand(1, *input_shape, dtype=torch.float64) + 0.5).requires_grad_()
    if target is None:
        y = model(x)
        y = y["out"] if isinstance(y, dict) else y
    else:

        def stop(module, args, output):
            raise _Stop(output)

        dict(model.named_modules())[target].register_forward_hook(stop)
        try:
            model(x)
        except _Stop as e:
            y = e.args[0]
    h, w = y.shape[-2:]
    masks = []
    for r, c in units or [(h // 2, w // 2)]:
        (grad,) = torch.autograd.grad(y[0, :, r, c].sum(), x, retain_graph=True)
        masks.append((grad[0].abs().sum(0) != 0).numpy())
    return masks


def grad_support(model, input_shape, target=None, unit=None) -> np.ndarray:
    return grad_supports(model, input_shape, target, [unit] if unit else None)[0]


def rectangle(interval, hw) -> np.ndarray:
    (r0, r1), (c0, c1) = interval
    mask = np.zeros(hw, dtype=bool)
    mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def rf_tuple(rf: TheoreticalRF):
    return rf.size, rf.stride, rf.padding


# --------------------------------------------------------------------------- TF library ports


@pytest.mark.parametrize(
    "model, hw",
    [
        (TFNet1(), (16, 16)),  # create_test_network_1
        (TFNet1(pool=True), (16, 16)),  # create_test_network_2: max pools instead of convs
        (TFNet1(dropout=True), (16, 16)),  # create_test_network_6: dropout on a branch
        (TFNet1(assert_shape=True), (8, 8)),  # create_test_network_7: assert on a shape
    ],
)
def test_tf_aligned_networks_1_2_6_7_are_3_4_1(model, hw):
    # left conv1 s4: [4u, 4u]; right pad(1,0) conv3 s2 conv1 s2: [4u-1, 4u+1] -> hull 3 / 4 / 1
    rf = theoretical_rf(model, (1, *hw))
    assert rf_tuple(rf) == ((3, 3), (4, 4), (1, 1))


def test_tf_misaligned_network_3_varies_by_unit_naming_both_paths_with_exact_boxes():
    # left pad(2,1) conv5 s2: stride 2; right two valid conv3: stride 1
    rf = all_units_match(TFNet3(), (1, 8, 8), rectangular=False)
    assert rf.varies_by_unit
    assert re.search(r"varies by unit.*not aligned.*'l1'.*'l3'", rf.notes[0])


def test_tf_same_padding_network_4_is_aligned_at_9_and_not_at_8():
    # TF 'SAME' conv3 s2: 9 -> left pad 1 ([4u-1, 4u+1], aligned); 8 -> left pad 0 ([4u, 4u+2])
    assert rf_tuple(theoretical_rf(TFNet4(), (1, 9, 9))) == ((3, 3), (4, 4), (1, 1))
    assert not theoretical_rf(TFNet4(), (1, 9, 9)).varies_by_unit
    rf = all_units_match(TFNet4(), (1, 8, 8), rectangular=False)  # [4u, 4u] and [4u, 4u+2]
    assert rf_tuple(rf) == ((3, 3), (4, 4), (0, 0)) and not rf.varies_by_unit
    assert rf.notes[0].startswith("offset branches") and "not aligned" in rf.notes[0]


def test_tf_non_square_network_5_is_7x5_4_0():
    # rows 3 + 2*2 = 7, cols 5 + 0*2 = 5
    assert rf_tuple(theoretical_rf(TFNet5(), (1, 16, 16))) == ((7, 5), (4, 4), (0, 0))


@pytest.mark.parametrize(
    "model, hw", [(TFNet8(), (16, 16)), (TFNet8(same=True), (17, 17))]
)  # create_test_network_8 (explicit pads), create_test_network_9 (TF 'SAME', 17x17)
def test_tf_intermediate_add_networks_8_and_9_are_11_8_5(model, hw):
    rf = theoretical_rf(model, (1, *hw))
    assert rf_tuple(rf) == ((11, 11), (8, 8), (5, 5))
    # four paths: L1-L5 1, L2L3-L5 3, L1-L6 9, L2L3-L6 11 (one each)
    assert rf.path_sizes == tuple(((s, s), 1) for s in (1, 3, 9, 11))


def test_tf_compute_order_network_sizes_match_and_add_is_not_aligned():
    g = graph_rf(TFComputeOrderNet(), (1, 224, 224))
    sizes = {k: g.nodes[g.node_name(k)].shape[-1] for k in ("l1", "l2_pad", "l2", "l3", "l4")}
    sizes.update(l5=g.nodes[g.node_name("l5")].shape[-1], l6=g.nodes[g.node_name("l6")].shape[-1])
    assert sizes == {"l1": 56, "l2_pad": 225, "l2": 112, "l3": 56, "l4": 56, "l5": 28, "l6": 28}
    assert g.nodes[g.output].shape == (1, 28, 28)  # L7_add
    assert list(g.nodes) == [
        n.name for n in g.graph_module.graph.nodes if n.op != "output"
    ]  # fx order
    rf = g.for_target(None)  # [8u, 8u] via l1 and [8u-1, 8u+13] via l3: the hull is regular
    assert rf_tuple(rf) == ((15, 15), (8, 8), (1, 1)) and not rf.varies_by_unit
    assert re.search(r"offset branches.*not aligned.*'l1'.*'l3", rf.notes[0])


# --------------------------------------------------------------------------- published, closed form


@pytest.fixture(scope="module")
def vgg16():
    return tvm.vgg16(weights=None).eval()


def test_vgg16_pool5_is_212_32_90_and_every_layer_equals_the_closed_form(vgg16):
    g = graph_rf(vgg16, (3, 64, 64))  # TRF numbers are unclipped: any valid input size
    assert rf_tuple(g.for_target("features")) == ((212, 212), (32, 32), (90, 90))
    assert g.for_target("features") == g.for_target("features.30")
    closed = theoretical_rf(vgg16.features, (3, 64, 64))
    for layer in closed.layers:
        assert rf_tuple(g.for_target(f"features.{layer.name}")) == rf_tuple(closed.at(layer.name))


CHAINS = [
    nn.Sequential(conv(3, 2, 1), nn.ReLU(), conv(3, 1, 1), nn.MaxPool2d(2)),
    nn.Sequential(conv((3, 5), (2, 1), (1, 2)), nn.BatchNorm2d(1), conv(3, 1, 2, 2)),
    nn.Sequential(conv(5, 1, 0, 2), nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), conv(3, 2)),
    nn.Sequential(nn.Conv2d(1, 1, 4, padding="same"), nn.MaxPool2d(3, 2, 1, dilation=2)),
    nn.Sequential(*[conv(3, 1, 1) for _ in range(6)], nn.MaxPool2d(2), conv(7, 3, 3)),
    ConvStack(6, dilation=[1, 2, 4, 1, 2, 4], activation="relu", pool_at=[1, 3]),
    ConvStack(4, kernel_size=5, stride=[2, 1, 2, 1], pool="max"),
]


@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_graph_equals_closed_form_on_chains(chain):
    closed = theoretical_rf(chain, (1, 37, 41))
    g = graph_rf(chain, (1, 37, 41))
    assert closed.layers  # the closed form was used
    for layer in closed.layers:
        got, want = g.for_target(layer.name), closed.at(layer.name)
        assert (*rf_tuple(got), got.out_shape) == (*rf_tuple(want), want.out_shape), layer.name
    assert g.for_target(None).path_sizes == ((closed.size, 1),)


# --------------------------------------------------------------------------- gradient support


def _fcn():
    return segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=False)


@pytest.mark.parametrize(
    "build, size, target, unit",
    [
        (tvm.resnet18, 128, "layer2", None),  # r 99 inside the input
        (tvm.resnet18, 128, "layer2", (1, 13)),  # off-centre unit: clipped at top and right
        (tvm.resnet18, 128, "layer4", None),  # deep: r 435 clipped to the whole input
        (tvm.resnet50, 128, "layer1", None),
        (tvm.resnet50, 128, "layer3.0", None),  # stride-2 bottleneck with its 1x1 shortcut
        (tvm.mobilenet_v2, 128, "features.6", None),
        (tvm.mobilenet_v2, 192, "features.10", None),  # deep, r 171 inside a 192 input
        (tvm.convnext_tiny, 128, "features.1", None),
        (tvm.convnext_tiny, 256, "features.3", None),  # stage 2, r 224 inside a 256 input
        (_fcn, 160, "backbone.layer3.1", None),  # dilated stage, r 139
        (_fcn, 96, None, None),  # the bilinear-upsampled segmentation output
    ],
)
def test_gradient_support_equals_clipped_interval_on_torchvision_models(build, size, target, unit):
    model = build().eval()
    rf = theoretical_rf(model, (3, size, size), target)
    unit = unit or rf.center_unit
    expected = rectangle(rf.interval(unit, clipped=True), (size, size))
    np.testing.assert_array_equal(grad_support(model, (3, size, size), target, unit), expected)


def test_gradient_support_equals_clipped_interval_on_vgg16_pool4(vgg16):
    rf = theoretical_rf(vgg16, (3, 128, 128), "features.23")  # pool4: r 100, S 16, P 42
    assert rf_tuple(rf) == ((100, 100), (16, 16), (42, 42))
    expected = rectangle(rf.interval(rf.center_unit, clipped=True), (128, 128))
    np.testing.assert_array_equal(grad_support(vgg16.features, (3, 128, 128), "23"), expected)


def all_units_match(model, input_shape, target=None, rectangular=True):
    """Every output unit's clipped interval equals its gradient support (``rectangular``), or
    the support's bounding box (branches that read different rectangles)."""
    rf = graph_rf(model, input_shape).for_target(target)
    units = [(r, c) for r in range(rf.out_shape[0]) for c in range(rf.out_shape[1])]
    for unit, got in zip(units, grad_supports(model, input_shape, target, units)):
        box = rf.interval(unit, clipped=True)
        if not rectangular:
            rows, cols = np.flatnonzero(got.any(1)), np.flatnonzero(got.any(0))
            got = rectangle(((rows[0], rows[-1]), (cols[0], cols[-1])), input_shape[-2:])
        expected = rectangle(box, input_shape[-2:])
        np.testing.assert_array_equal(got, expected, err_msg=f"unit {unit}")
    return rf


@pytest.mark.parametrize(
    "layers",
    [
        [conv(3, 2, 1), nn.Upsample(scale_factor=2), conv(3, 1, 1)],  # nearest x2 after s2
        [conv(3, 2, 1), nn.Upsample(scale_factor=2, mode="bilinear"), conv(3, 1, 1)],
        [conv(3, 2, 1), nn.UpsamplingBilinear2d(size=(11, 9))],  # align_corners=True
        [nn.Upsample(scale_factor=1.5, mode="nearest-exact"), conv(3, 2)],
        [conv(3, 1, 1), nn.Upsample(size=(9, 13), mode="bicubic"), conv(3, 2, 1)],
        [conv(3, 1, 1), nn.Upsample(size=(5, 4), mode="area")],
        [conv(3, 2, 1), nn.ConvTranspose2d(1, 1, 3, 2, 1, output_padding=1, bias=False)],
        [conv(3, 2, 1), nn.ConvTranspose2d(1, 1, 4, 2, 1, bias=False), conv(3, 1, 1)],
        [conv(3, 1, 1), nn.AdaptiveAvgPool2d((5, 7))],  # exact adaptive windows
        [nn.ReflectionPad2d(1), conv(3), nn.ReplicationPad2d((2, 1, 1, 0)), conv(3)],
        [conv(3, 1, 1, cout=4), nn.PixelShuffle(2), conv(3, 2, 1)],
        [nn.PixelUnshuffle(2), conv(3, 1, 1, cin=4)],
        [conv(3, 2, 1), Fn(lambda m, x: F.conv_transpose2d(x, m.w, None, 2, 1, output_padding=1))],
        [Fn(lambda m, x: F.lp_pool2d(x, 2, 3, 2))],
        [nn.Conv2d(1, 1, 3, padding="valid", bias=False)],
        [conv(3, 1, 1), Fn(lambda m, x: x.flip(2, 3)), conv(3, 2)],  # dims as separate args
        [Fn(lambda m, x: F.pad(x.flatten(2), (0, 0, 1, 2)).view(1, 4, 12, 10))],  # channels
    ],
)
def test_upsampling_transposed_conv_and_padding_match_gradient_support_at_every_unit(layers):
    all_units_match(nn.Sequential(*layers), (1, 12, 10))


def test_a_roll_along_channels_and_cols_moves_the_cols_only():
    # the wrapped cols make the support two rectangles: compare its bounding box
    roll = Fn(lambda m, x: torch.roll(x, (1, 3), (1, 3)))
    model = nn.Sequential(conv(3, 1, 1, cout=2), roll, conv(3, cin=2))
    rf = all_units_match(model, (1, 12, 10), rectangular=False)
    # unit (5, c) reads rolled cols c..c+2, which hold cols c-3..c-1 (mod 10), then +-1
    assert rf.interval((5, 0), clipped=True) == ((4, 8), (6, 9))  # cols 7..9
    assert rf.interval((5, 2), clipped=True) == ((4, 8), (0, 9))  # cols 9, 0, 1: wrapped
    assert rf.interval((5, 4), clipped=True) == ((4, 8), (0, 4))  # cols 1..3


def test_a_transposed_conv_whose_centre_unit_reads_no_pixel_has_no_trf():
    # stride 2, dilation 2: the taps of even output rows fall between input rows
    model = Fn(lambda m, x: F.conv_transpose2d(x, m.w, None, 2, 1, dilation=2))
    with pytest.raises(ValueError, match=r"unit \(6, 6\) of node 'conv_transpose2d' reads no"):
        theoretical_rf(model, (1, 6, 6))


def test_fractional_stride_after_upsampling_is_a_fraction():
    # nearest x2 then conv3 p1: unit u reads upsampled [u-1, u+1] -> input [(u-1)//2, (u+1)//2]:
    # spans alternate 2 (u even) and 3... centre unit 8 (even): [3, 4] -> r 2; stride 1/2
    rf = theoretical_rf(nn.Sequential(nn.Upsample(scale_factor=2), conv(3, 1, 1)), (1, 8, 8))
    assert rf.stride == (Fraction(1, 2), Fraction(1, 2))
    assert rf.size == (2, 2)
    assert rf.interval((7, 8)) == ((3, 4), (3, 4))
    assert rf.interval((7, 7)) == ((3, 4), (3, 4))
    assert rf.interval((9, 9)) == ((4, 5), (4, 5))
    assert json.loads(json.dumps(rf.to_dict()))["stride"] == [0.5, 0.5]


def test_stride_two_then_upsampling_is_stride_one_with_period_two():
    # conv3 s2 p1 then nearest x2: u reads conv unit u // 2 -> [2(u//2) - 1, 2(u//2) + 1];
    # averaged over the period 2, the start moves 1 pixel per unit
    rf = theoretical_rf(nn.Sequential(conv(3, 2, 1), nn.Upsample(scale_factor=2)), (1, 8, 8))
    assert rf_tuple(rf) == ((3, 3), (1, 1), (1, 1))
    assert rf.interval((5, 4)) == ((3, 5), (3, 5))


def test_chunk_cat_and_channel_shuffle_are_channel_ops():
    rf = all_units_match(ChunkCat(), (4, 7, 8))
    assert rf_tuple(rf) == ((3, 3), (1, 1), (1, 1))
    assert rf.path_sizes == (((1, 1), 1), ((3, 3), 1))


def test_unet_level_with_nearest_upsampling_is_aligned_and_matches_gradient_support():
    rf = all_units_match(UNet(), (1, 12, 10))
    assert rf.stride == (1, 1)


def test_unet_level_with_bilinear_upsampling_varies_by_unit_with_exact_boxes():
    rf = all_units_match(UNet(mode="bilinear"), (1, 12, 10), rectangular=False)
    assert rf.varies_by_unit and re.search(r"not aligned.*'fine'.*'up'", rf.notes[0])
    assert rf.size_range[0][0] < rf.size_range[0][1]


def test_channels_last_block_tracks_rows_and_cols():
    # the (3, 1) kernel runs on the transposed map, i.e. along image cols: TRF (1, 3)
    rf = all_units_match(ChannelsLast(), (4, 7, 9))
    assert rf_tuple(rf) == ((1, 3), (1, 1), (0, 1))


def test_spatial_slicing_and_cat_have_interval_as_bounding_box():
    # x[..., 1::2] -> conv3 p1 -> cat([y, y[:, :, :4]], height). Centre unit (7, 3) of 14x6:
    # rows: conv [6, 8]; cols: conv [2, 4] -> 1 + 2*[2, 4] = [5, 9] (every other column)
    model, shape = SliceCat(), (1, 10, 12)
    rf = theoretical_rf(model, shape)
    assert rf_tuple(rf) == ((3, 5), (1, 2), (1, 1))
    for unit in [(7, 3), (12, 0), (0, 5)]:  # (12, 0) lies in the glued copy of rows 0..3
        rows, cols = np.nonzero(grad_support(model, shape, None, unit))
        bbox = ((rows.min(), rows.max()), (cols.min(), cols.max()))
        assert bbox == rf.interval(unit, clipped=True)


# --------------------------------------------------------------------------- path statistics


def test_residual_stack_path_sizes_are_binomial():
    n = 5
    rf = theoretical_rf(ResidualStack(n), (1, 24, 24))
    assert rf.path_sizes == tuple(((2 * j + 1, 2 * j + 1), comb(n, j)) for j in range(n + 1))
    assert rf.max_path_size == rf.size == (2 * n + 1, 2 * n + 1)
    assert rf.min_path_size == (1, 1)
    assert not any("convs" in name for name in rf.min_path)  # all skips
    assert sum("convs" in name for name in rf.max_path) == n  # all convs
    assert rf.max_path[0] == "x" and rf.max_path[-1] == rf.target


# --------------------------------------------------------------------------- global, errors


def test_adaptive_pooling_and_linear_are_global():
    g = graph_rf(Classifier(), (1, 12, 12))
    for target in ("pool", None):
        rf = g.for_target(target)
        assert rf.is_global and rf.size == (12, 12)
        assert rf.interval((0, 0)) == ((0, 11), (0, 11))
        assert any("global: every output unit sees the whole input" in n for n in rf.notes)
    assert not g.for_target("conv").is_global


def test_squeeze_excitation_gate_is_local_trf_with_global_context():
    """conv3 -> SE gate -> conv3: the TRF is the local 5x5 and ``global_context`` is set. The
    gradient support is the whole input (the gate's global mean reads every pixel), so the
    exact statement to test is: support == whole image and interval ⊂ support."""
    rf = theoretical_rf(SEBlock(), (1, 12, 12))
    assert rf_tuple(rf) == ((5, 5), (1, 1), (2, 2))
    assert rf.global_context and not rf.is_global
    assert any("squeeze-excitation" in note for note in rf.notes)
    assert grad_support(SEBlock(), (1, 12, 12)).all()


@pytest.mark.parametrize(
    "fn, why",
    [
        (lambda m, x: F.interpolate(x, scale_factor=2, antialias=True, mode="bilinear"),
         "antialiased interpolation"),
        (lambda m, x: F.interpolate(x[:, 0], scale_factor=2, mode="linear"),
         "interpolation mode 'linear' of a 2-D map"),  # [1, H, W]: a 2-D map in 3 dims
        (lambda m, x: torch.roll(x, 1), "roll of the flattened tensor"),
        (lambda m, x: x.flatten(2).roll(1, 2), "it moves tokens of a flattened grid"),
        (lambda m, x: F.pad(x.flatten(2), (1, 0)), "it pads the tokens of a flattened grid"),
    ],
)  # fmt: skip
def test_a_spatial_op_its_rule_cannot_follow_is_refused_in_one_line_saying_why(fn, why):
    with pytest.raises(TypeError, match="unsupported op") as e:
        graph_rf(Fn(fn), (1, 8, 8))
    assert f"({why})" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "model, match",
    [
        (CumSum(), r"function cumsum at node 'cumsum'"),
        (nn.Sequential(conv(3), nn.Unfold(2)), r"module Unfold at node '_1' \(module '1'\)"),
    ],
)
def test_unknown_op_raises_type_error_naming_it(model, match):
    with pytest.raises(TypeError, match=match):
        graph_rf(model, (1, 8, 8))


def _user_function(x):
    return x * 2


fx.wrap("_user_function")


def test_user_function_leaf_raises_type_error_naming_it():
    class UsesUserFunction(nn.Module):
        def forward(self, x):
            return _user_function(x)

    with pytest.raises(TypeError, match="_user_function"):
        graph_rf(UsesUserFunction(), (1, 8, 8))


def test_torchvision_vit_is_global_after_its_first_attention_and_a_patch_before():
    model = tvm.vit_b_16(weights=None).eval()
    g = graph_rf(model, (3, 224, 224))
    assert g.for_target(None).is_global
    assert g.for_target("encoder.layers.encoder_layer_0.self_attention").is_global
    assert g.for_target("encoder.layers.encoder_layer_0.ln_1").size == (16, 16)  # tokens
    assert g.for_target("conv_proj").size == (16, 16)  # the patch embedding is still a map


def test_untraceable_model_raises_value_error_with_tracer_message():
    with pytest.raises(ValueError, match="cannot trace DataDependent.*control flow"):
        graph_rf(DataDependent(), (1, 8, 8))


def test_a_module_called_twice_means_its_first_call_as_the_probe_does_and_says_so():
    g = graph_rf(TwoCalls(), (1, 8, 8))
    first = g.for_target("conv")
    assert first.size == (3, 3) and first.target == "conv"
    assert "called 2 times" in first.notes[0] and "conv_1" in first.notes[0]
    assert g.for_target("conv_1").size == (5, 5)


# --------------------------------------------------------------------------- API


def test_models_that_cannot_run_on_meta_fall_back_to_a_real_forward(monkeypatch):
    import erf.rf.tracing

    tries = []
    run = erf.rf.tracing._run_shape_prop

    def spy(gm, x, meta):
        tries.append(meta)
        return run(gm, x, meta)

    monkeypatch.setattr(erf.rf.tracing, "_run_shape_prop", spy)
    assert graph_rf(Classifier(), (1, 12, 12)).for_target("conv").size == (3, 3)
    assert tries == [True]  # shapes from the meta device, no arithmetic
    tries.clear()
    assert graph_rf(NumpyGain(), (1, 12, 12)).for_target(None).size == (3, 3)
    assert tries == [True, False]


def test_theoretical_rf_dispatches_chain_graph_and_needs_input_shape():
    chain = nn.Sequential(conv(3), conv(3))
    assert theoretical_rf(chain).layers  # closed form, no input shape needed
    up = nn.Sequential(conv(3), nn.Upsample(scale_factor=2))
    with pytest.raises(ValueError, match="input_shape is needed for graph analysis"):
        theoretical_rf(up)
    rf = theoretical_rf(up, (1, 8, 8))
    assert rf.layers == () and rf.target is not None
    assert theoretical_rf(chain, (1, 8, 8), target="0").size == (3, 3)  # graph, by module path


def test_node_rfs_follow_fx_order_with_modules_and_shapes():
    g = graph_rf(Classifier(), (1, 12, 12))
    assert list(g.nodes) == ["x", "conv", "pool", "flatten", "fc"]
    conv_node, flat = g.nodes["conv"], g.nodes["flatten"]
    assert (conv_node.module, conv_node.op, conv_node.shape) == ("conv", "Conv2d", (4, 6, 6))
    assert conv_node.spatial and conv_node.trf.size == (3, 3)
    assert (flat.op, flat.shape, flat.spatial, flat.trf) == ("flatten", (4,), False, None)
    assert g.nodes["pool"].trf.is_global


def test_layer_table_lists_spatial_modules_called_once():
    rows = {r["name"]: r for r in layer_table(tvm.resnet18(weights=None), (3, 64, 64))}
    assert rows["layer1"]["type"] == "Sequential"
    assert rows["layer1.0"]["type"] == "BasicBlock"
    assert rows["layer1.0.conv1"]["out_shape"] == [64, 16, 16]
    assert "layer1.0.relu" not in rows  # called twice per block
    assert "fc" not in rows  # not a map
    assert rows["avgpool"]["is_global"] and rows["avgpool"]["trf_size"] == [64, 64]
    assert rows["layer4"]["trf_size"] == [435, 435] and rows["layer4"]["trf_stride"] == [32, 32]
    assert set(rows["conv1"]) >= {
        "name", "type", "out_shape", "trf_size", "trf_stride", "trf_padding", "is_global"
    }  # fmt: skip


def test_layer_table_reports_offset_and_varying_layers_in_a_note():
    rows = {r["name"]: r for r in layer_table(TFComputeOrderNet(), (1, 32, 32))}
    assert rows["l3"]["trf_size"] == [7, 7] and rows["l3"]["note"] == ""  # [4u-1, 4u+5]
    assert rows["l4"]["note"].startswith("offset branches") and not rows["l4"]["varies_by_unit"]
    rows = {r["name"]: r for r in layer_table(UNet(mode="bilinear"), (1, 12, 10))}
    varying = [r for r in rows.values() if r["varies_by_unit"]]
    assert varying and all(r["note"].startswith("varies by unit") for r in varying)


def test_lraspp_head_gives_every_probed_unit_the_bounding_box_of_its_gradient_support():
    # LR-ASPP merges a bilinear-upsampled 1/16 branch with the 1/8 branch: offset paths
    model = segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)
    rf = graph_rf(model, (3, 64, 64)).for_target(None)
    h, w = rf.out_shape
    units = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2), (h // 2, 3)]
    for unit, got in zip(units, grad_supports(model, (3, 64, 64), None, units)):
        rows, cols = np.flatnonzero(got.any(1)), np.flatnonzero(got.any(0))
        box = ((rows[0], rows[-1]), (cols[0], cols[-1]))
        assert rf.interval(unit, clipped=True) == box, unit


def test_resnet_d_average_pool_shortcut_gets_the_graph_trf_of_199_px_at_layer4():
    timm = pytest.importorskip("timm")
    rf = theoretical_rf(timm.create_model("resnet10t"), (3, 224, 224), target="layer4")
    assert rf.source == "graph" and rf.size == (199, 199) and rf.stride == (32, 32)
    assert not rf.varies_by_unit and rf.notes[0].startswith("offset branches")


def test_a_global_output_reads_only_the_pixels_the_network_reads_at_all():
    # SqueezeNet 1.0 at 224: conv7 s2 (no padding) reaches row 222 at most, so its global
    # output never reads row or column 223: the box is 223 x 223, as the gradient support says
    model = tvm.squeezenet1_0()
    rf = theoretical_rf(model, (3, 224, 224))
    assert rf.is_global and rf.size == (223, 223)
    assert rf.interval((0, 0)) == ((0, 222), (0, 222))
    x = (torch.rand(1, 3, 224, 224, dtype=torch.float64) + 0.5).requires_grad_()
    positive(model)(x)[0].sum().backward()
    support = (x.grad[0].abs().sum(0) != 0).numpy()
    np.testing.assert_array_equal(support, rectangle(((0, 222), (0, 222)), (224, 224)))


def test_expand_as_of_a_pooled_gate_is_a_gate_and_of_a_line_reads_the_line():
    class Gate(nn.Module):  # timm's EcaModule: x * sigmoid(conv1d(mean)).expand_as(x)
        def __init__(self):
            super().__init__()
            self.a, self.b = conv(3, 1, 1, cout=2), conv(3, 1, 1, cin=2)

        def forward(self, x):
            y = self.a(x)
            gate = torch.sigmoid(y.mean((2, 3), keepdim=True)).expand_as(y)
            line = y.mean(2, keepdim=True).expand_as(y)
            return self.b(y * gate + line)

    rf = graph_rf(Gate(), (1, 12, 12)).for_target(None)
    assert rf.global_context
    # its 5 x 5 through the gated path, and every row of those 5 columns through the line mean
    assert rf.interval((6, 6), clipped=True) == ((0, 11), (4, 8))


class Parts(nn.Module):
    """Two outputs; a module never called; a module called on a parameter only; a chunk."""

    def __init__(self):
        super().__init__()
        self.conv, self.const, self.unused = conv(3, 1, 1), conv(1), conv(1)
        self.w = nn.Parameter(torch.ones(1, 1, 4, 4))

    def forward(self, x):
        a, _ = x.chunk(2, 1)
        y = self.conv(a)
        return y, y * self.const(self.w).mean()


def test_targets_that_are_not_one_map_of_the_input_are_refused_saying_why():
    g = graph_rf(Parts(), (2, 8, 8))
    refusals = {
        None: r"the model has 2 tensor outputs \(conv, mul\); pass target= one of them",
        "unused": "module 'unused' is never called with a tensor result in forward",
        "nope": "no module path or fx node named 'nope'",
        "const": "node 'const' does not depend on the input",
        "chunk": "node 'chunk' is a tuple; target one of its items",
    }
    for target, match in refusals.items():
        with pytest.raises(ValueError, match=match):
            g.for_target(target)
    assert g.for_target("mul").size == (3, 3)  # each output by its fx node name


def test_spatial_dims_and_first_global_of_a_local_map_and_a_tuple():
    g = graph_rf(Parts(), (2, 8, 8))
    assert g.spatial_dims("conv") == (2, 3) and g.spatial_dims("chunk") is None
    assert g.first_global("conv") is None


def test_a_unit_outside_the_map_depends_on_no_pixel():
    g = graph_rf(nn.Sequential(conv(3, 1, 1)), (1, 8, 8))
    assert not g.input_mask(None, (20, 3)).any() and g.input_mask(None, (20, 3)).shape == (8, 8)
    assert g.dependencies(None, (20, 3)) == {}


def _dilated_up(m, x):
    """A stride-2, dilation-2 transposed conv: its even rows and cols read no pixel."""
    return F.conv_transpose2d(x, m.w, None, 2, 1, dilation=2)


def test_a_layer_whose_units_read_no_pixel_has_its_reason_in_the_layer_table():
    model = nn.Sequential(conv(3, 1, 1), Fn(_dilated_up))
    row = {r["name"]: r for r in layer_table(model, (1, 6, 6))}["1"]
    assert row["trf_size"] is None and "(6, 6)" in row["note"] and "reads no" in row["note"]
    g = graph_rf(model, (1, 6, 6))
    with pytest.raises(ValueError, match="reads no input pixel"):
        g.node_grid(g.node_name("1"))  # unit (0, 0) reads none


def test_a_merge_with_a_branch_that_reads_nothing_at_the_centre_is_still_aligned():
    # nearest upsampling 6 -> 13 beside the dilated transposed conv (13 x 13): the centre
    # unit (6, 6) reads only the upsampling's pixel, odd units both branches' pixels
    class Merge(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = Fn(_dilated_up)

        def forward(self, x):
            return self.up(x) + F.interpolate(x, size=(13, 13))

    rf = all_units_match(Merge(), (1, 6, 6), rectangular=False)
    assert rf.interval((6, 6), clipped=True) == ((2, 2), (2, 2))


def test_a_global_output_of_a_map_of_padding_and_a_crop_reads_only_the_crop():
    # the corner of the padded map holds padding only: its mean reads no pixel
    def fn(m, x):
        corner = F.pad(torch.relu(x), (4, 4, 4, 4))[:, :, :2, :2]
        return corner.mean((2, 3)) + x[:, :, 2:, 3:].mean((2, 3))

    rf = theoretical_rf(Fn(fn), (1, 8, 8))
    assert rf.is_global and rf.interval((0, 0)) == ((2, 7), (3, 7))
    x = (torch.rand(1, 1, 8, 8, dtype=torch.float64) + 0.5).requires_grad_()
    positive(Fn(fn))(x).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0] != 0, rectangle(((2, 7), (3, 7)), (8, 8)))


# --------------------------------------------------------------------------- tensor ops


class TensorOp(nn.Module):
    """``a`` (3x3 conv, padding 1, 1 -> 2 channels), then ``body(self, y)``, then ``b`` (3x3
    conv, padding 1, ``c`` channels -> 1) unless ``head`` is False. ``W``, ``w``: [5, 12] and [2]
    constants;
    ``index``: a tensor of channel indices; ``modules``: submodules ``body`` may call."""

    def __init__(self, body, head: bool = True, c: int = 2, **modules: nn.Module):
        super().__init__()
        self.a, self.body, self.head = conv(3, 1, 1, cout=2), body, head
        self.b = conv(3, 1, 1, cin=c) if head else None
        self.W, self.w = nn.Parameter(torch.rand(5, 12) + 0.5), nn.Parameter(torch.rand(2) + 0.5)
        self.register_buffer("index", torch.tensor([1, 0]))
        for name, m in modules.items():
            self.add_module(name, m)

    def forward(self, x):
        y = self.body(self, self.a(x))
        return self.b(y) if self.head else y


def _column_pick(m, y):  # x[:, None, 1]: a new dim, an integer channel index
    return torch.cat([y[:, None, 1], y[:, None, 0]], 1)


def _tuple_slice(m, y):  # items 1 and 2 of a 4-way split along rows, in a list
    a, b = y.chunk(4, 2)[1:3]
    return torch.cat([b, a], 1)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize(
    "body, c",
    [
        # implicit dim: 1 for a 4-D map (channels), not all dims
        pytest.param(lambda m, y: F.softmax(y), 2, id="softmax-no-dim"),
        pytest.param(lambda m, y: m.log_softmax(y), 2, id="log-softmax-module-no-dim"),
        pytest.param(  # of two maps: elementwise (the larger, by 10, gets the gradient)
            lambda m, y: torch.max(y, F.avg_pool2d(y, 3, 1, 1) + 10), 2, id="max-of-two-maps"
        ),
        pytest.param(  # (values, indices) over the channels
            lambda m, y: torch.max(y, 1, keepdim=True)[0], 1, id="max-over-channels"
        ),
        pytest.param(_column_pick, 2, id="none-and-int-index"),
        pytest.param(lambda m, y: y[0][None], 2, id="int-batch-index"),
        pytest.param(
            lambda m, y: torch.permute(y, dims=(0, 1, 3, 2)).permute(dims=(0, 1, 3, 2)),
            2,
            id="permute-dims-kwarg",
        ),
        pytest.param(_tuple_slice, 4, id="slice-of-chunks"),
        # a constant times the map: each unit reads its whole column
        pytest.param(lambda m, y: m.W @ y, 2, id="constant-matmul"),
        pytest.param(  # a vector over the channels drops that dim
            lambda m, y: (y.permute(0, 2, 3, 1) @ m.w).unsqueeze(1), 1, id="vector-matmul"
        ),
    ],
)
def test_tensor_ops_give_every_unit_its_gradient_support_box(body, c):
    all_units_match(TensorOp(body, c=c, log_softmax=nn.LogSoftmax()), (1, 12, 10))


def test_a_softmax_without_dim_follows_torchs_implicit_dim_instead_of_reading_everything():
    # F.softmax(y) on [B, C, H, W] runs along the channels (torch's implicit dim 1): 5 x 5
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        rf = graph_rf(TensorOp(lambda m, y: F.softmax(y)), (1, 12, 10)).for_target(None)
    assert rf_tuple(rf) == ((5, 5), (1, 1), (2, 2)) and not rf.is_global


def test_a_constant_times_the_map_reads_whole_columns_not_the_whole_input():
    rf = graph_rf(TensorOp(lambda m, y: m.W @ y, head=False), (1, 12, 10)).for_target(None)
    assert rf.out_shape == (5, 10) and not rf.is_global
    assert rf.interval((2, 4), clipped=True) == ((0, 11), (3, 5))


@pytest.mark.parametrize("reduce", [lambda y: y.sum(), lambda y: y.amax(dim=())])
def test_a_reduction_over_all_dims_gates_the_map_as_global_context(reduce):
    rf = graph_rf(TensorOp(lambda m, y: y * reduce(y)), (1, 12, 12)).for_target(None)
    assert rf_tuple(rf) == ((5, 5), (1, 1), (2, 2)) and rf.global_context
    assert any("squeeze-excitation" in n for n in rf.notes)


def test_a_map_beside_a_global_map_of_itself_is_global():
    # cat along channels of y and a softmax over all of y's units: every unit reads all of y
    def body(m, y):
        return torch.cat([y, torch.softmax(y.flatten(2), -1).reshape(y.shape)], 1)

    model = TensorOp(body, c=4)
    rf = graph_rf(model, (1, 12, 10)).for_target(None)
    assert rf.is_global and rf.interval((0, 0)) == ((0, 11), (0, 9))
    assert grad_support(model, (1, 12, 10), None, (0, 0)).all()


def test_a_global_piece_of_a_spatial_cat_reads_everything_and_the_local_piece_its_box():
    def body(m, y):  # rows 0..11: y; rows 12..23: a softmax over all of y's units
        return torch.cat([y, torch.softmax(y.flatten(2), -1).reshape(y.shape)], 2)

    rf = all_units_match(TensorOp(body, head=False), (1, 12, 10))
    assert rf.interval((3, 4), clipped=True) == ((2, 4), (3, 5))
    assert rf.interval((15, 4), clipped=True) == ((0, 11), (0, 9))


@pytest.mark.parametrize(
    "body, why",
    [
        (lambda m, y: torch.cat(y.chunk(2, 1) + (y,), 1), "non-tensor result"),
        (lambda m, y: y + y.transpose(2, 3), "arguments hold the spatial dims at different"),
        (
            lambda m, y: F.avg_pool2d(y, (2, 1)).flatten(2) + F.avg_pool2d(y, (1, 2)).flatten(2),
            "its arguments flatten the grid differently",
        ),
        (lambda m, y: y.mean(2), r"it drops a spatial dim \(use keepdim=True\)"),
        (lambda m, y: y[:, m.index], "indexing with tensors or booleans"),
        (lambda m, y: y[:, True], "indexing with tensors or booleans"),
        (lambda m, y: y[:, :, 0], "integer index on a spatial dim"),
        (lambda m, y: y.unbind(2)[0], "unbind along a spatial dim"),
        (lambda m, y: torch.cat([y, y.transpose(2, 3)], 1), "pieces hold the spatial dims at"),
        (lambda m, y: torch.cat(y.chunk(2, 1), 1), "its pieces are one tuple value"),
        (lambda m, y: m.W.expand(3, 1, 1, 5, 12) @ y, "the constant has more dims than the map"),
        (lambda m, y: y @ m.W[0], "it drops a spatial dim"),
    ],
    ids=[
        "tuple-concat", "add-transposed", "add-flattened-differently", "mean-no-keepdim",
        "tensor-index", "bool-index", "int-spatial-index", "unbind-spatial", "cat-transposed",
        "cat-of-a-tuple", "batched-constant-matmul", "vector-matmul-over-cols",
    ],
)  # fmt: skip
def test_tensor_ops_without_an_exact_box_are_refused_in_one_line_naming_the_node(body, why):
    with pytest.raises(TypeError, match=f"unsupported op .* at node '.*'.*{why}") as e:
        graph_rf(TensorOp(body, head=False), (1, 12, 12))
    assert "\n" not in str(e.value)
