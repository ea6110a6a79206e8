"""Closed-form TRF (erf.rf.theory) against hand-derived values, PyTorch shapes and gradient support.

Derivations use r = 1 + sum (k_l - 1) prod_{i<l} s_i, S = prod s_l, P = sum p_l prod_{i<l} s_i.
"""

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from erf.rf.theory import theoretical_rf


def conv(k=3, s=1, p=0, d=1, cin=1, cout=1):
    return nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, bias=False)


# --------------------------------------------------------------------------- closed form


@pytest.mark.parametrize("n, expected", [(1, 3), (2, 5), (5, 11)])  # 2n + 1
def test_n_conv3_stride1_size_is_2n_plus_1(n, expected):
    rf = theoretical_rf([(3, 1, 0)] * n)
    assert rf.size == (expected, expected)
    assert rf.stride == (1, 1)


@pytest.mark.parametrize("k, n, expected", [(5, 3, 13), (7, 2, 13), (2, 4, 5)])  # n(k-1)+1
def test_n_convk_stride1_size_is_n_k_minus_1_plus_1(k, n, expected):
    assert theoretical_rf([(k, 1, 0)] * n).size == (expected, expected)


def test_conv3_s2_then_conv3_is_7_not_5():
    # r = 1 + 2*1 + 2*2 = 7 (tutorials wrongly say 5); S = 2*1 = 2
    rf = theoretical_rf([(3, 2, 0), (3, 1, 0)])
    assert rf.size == (7, 7)
    assert rf.stride == (2, 2)


def test_conv3_conv3_pool2_s2_is_6_not_10():
    # r = 1 + 2*1 + 2*1 + 1*1 = 6 (tutorials wrongly say 10); S = 1*1*2 = 2
    rf = theoretical_rf([(3, 1, 0), (3, 1, 0), (2, 2, 0)])
    assert rf.size == (6, 6)
    assert rf.stride == (2, 2)


def test_dilated_conv3_d2_is_5():
    # effective kernel 2*(3-1)+1 = 5
    assert theoretical_rf([(3, 1, 0, 2)]).size == (5, 5)


def test_dilation_stack_1_2_4_is_15():
    # r = 1 + 2 + 4 + 8 = 15 (effective kernels 3, 5, 9)
    assert theoretical_rf([(3, 1, 0, 1), (3, 1, 0, 2), (3, 1, 0, 4)]).size == (15, 15)


def test_effective_padding_sums_over_strides():
    # P = 1 + 1*2 + 1*4 = 7; r = 1 + 2*1 + 2*2 + 2*4 = 15; S = 2*2*1 = 4
    rf = theoretical_rf([(3, 2, 1), (3, 2, 1), (3, 1, 1)])
    assert rf.padding == (7, 7)
    assert rf.size == (15, 15)
    assert rf.stride == (4, 4)


def test_empty_chain_is_identity():
    rf = theoretical_rf([])
    assert (rf.size, rf.stride, rf.padding) == ((1, 1), (1, 1), (0, 0))


def test_layers_hold_cumulative_values():
    # after l0: r=3, S=2, P=1; after l1: r=3+2*2=7, S=4, P=1+1*2=3;
    # after l2: r=7+2*4=15, S=4, P=3+1*4=7
    rf = theoretical_rf([(3, 2, 1), (3, 2, 1), (3, 1, 1)])
    got = [(lay.name, lay.size[0], lay.eff_stride[0], lay.eff_padding[0]) for lay in rf.layers]
    assert got == [("0", 3, 2, 1), ("1", 7, 4, 3), ("2", 15, 4, 7)]


def test_layer_kernel_is_effective_dilated_kernel():
    # kernel (3, 5) with dilation (2, 1): (2*2+1, 1*4+1) = (5, 5); kernel (3, 3) d=(1, 3): (3, 7)
    rf = theoretical_rf([((3, 5), 1, 0, (2, 1)), (3, 1, 0, (1, 3))])
    assert [lay.kernel for lay in rf.layers] == [(5, 5), (3, 7)]


def test_asymmetric_kernels_and_strides_differ_per_axis():
    # rows: k 3,3 s 2,1 p 1,1 -> r = 1+2+2*2 = 7, S = 2, P = 1+1*2 = 3
    # cols: k 5,5 s 1,1 p 2,2 -> r = 1+4+4*1 = 9, S = 1, P = 2+2*1 = 4
    rf = theoretical_rf([((3, 5), (2, 1), (1, 2)), ((3, 5), 1, (1, 2))])
    assert rf.size == (7, 9)
    assert rf.stride == (2, 1)
    assert rf.padding == (3, 4)


def test_vgg16_pool5_matches_published_212_32_90():
    cfg = [2, "M", 2, "M", 3, "M", 3, "M", 3, "M"]  # convs per block, then a maxpool
    layers = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            for _ in range(item):
                layers += [conv(3, 1, 1), nn.ReLU(inplace=True)]
    rf = theoretical_rf(nn.Sequential(*layers))
    assert sum(isinstance(m, nn.Conv2d) for m in layers) == 13
    assert (rf.size, rf.stride, rf.padding) == ((212, 212), (32, 32), (90, 90))


# --------------------------------------------------------------------------- intervals


def test_interval_of_units_0_and_1():
    # conv3 p1 s2, conv3 p1: r = 7, S = 2, P = 1 + 1*2 = 3
    # unit 0: [-3, -3+6] = [-3, 3]; unit 1: [-3+2, -1+6] = [-1, 5]; cols unit 2: [1, 7]
    rf = theoretical_rf([(3, 2, 1), (3, 1, 1)])
    assert rf.interval((0, 0)) == ((-3, 3), (-3, 3))
    assert rf.interval((1, 2)) == ((-1, 5), (1, 7))


def test_center_offset_is_minus_p_plus_half_r_minus_1():
    # conv3 p1 s2, conv3 p1: -3 + (7-1)/2 = 0.0; valid conv4: -0 + 3/2 = 1.5
    assert theoretical_rf([(3, 2, 1), (3, 1, 1)]).center_offset == (0.0, 0.0)
    assert theoretical_rf([(4, 1, 0)]).center_offset == (1.5, 1.5)


def test_interval_clipped_to_input():
    # 3x conv3 p1 on 4x4: r = 7, S = 1, P = 3. unit (0,3): rows [-3,3] -> [0,3]; cols [0,6] -> [0,3]
    rf = theoretical_rf([(3, 1, 1)] * 3, input_shape=(4, 4))
    assert rf.interval((0, 3)) == ((-3, 3), (0, 6))
    assert rf.interval((0, 3), clipped=True) == ((0, 3), (0, 3))


def test_interval_clipped_needs_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        theoretical_rf([(3, 1, 1)]).interval((0, 0), clipped=True)


def test_to_dict_is_json_safe():
    d = json.loads(json.dumps(theoretical_rf([(3, 2, 1), (3, 1, 1)], (1, 8, 8)).to_dict()))
    assert d["size"] == [7, 7]
    assert d["center_offset"] == [0.0, 0.0]
    assert d["layers"][1]["out_shape"] == [4, 4]  # 8 -> floor((8+2-3)/2)+1 = 4 -> 4


# --------------------------------------------------------------------------- torch adapter


def test_nested_sequential_and_modulelist_flattened_with_paths():
    # r: 3, then +2*1 = 5 (stride 2 after), ReLU, then +2*2 = 9
    model = nn.Sequential(
        OrderedDict(
            stem=conv(3),
            block=nn.Sequential(conv(3, 2), nn.ReLU()),
            head=nn.ModuleList([conv(3)]),
        )
    )
    rf = theoretical_rf(model)
    assert [lay.name for lay in rf.layers] == ["stem", "block.0", "block.1", "head.0"]
    assert [lay.size[0] for lay in rf.layers] == [3, 5, 5, 9]


def test_sequential_subclass_works():
    class Stack(nn.Sequential):
        pass

    assert theoretical_rf(Stack(conv(3), nn.ReLU(), conv(3))).size == (5, 5)  # 1+2+2


def test_pointwise_and_norm_layers_are_1x1_identity():
    model = nn.Sequential(
        conv(3), nn.BatchNorm2d(1), nn.ReLU(), nn.Dropout2d(), nn.GroupNorm(1, 1), nn.Identity()
    )
    rf = theoretical_rf(model)
    assert rf.size == (3, 3)
    assert all(lay.kernel == (1, 1) and lay.stride == (1, 1) for lay in rf.layers[1:])


def test_pool_stride_defaults_to_kernel():
    # MaxPool2d(3): stride 3 -> S = 3; AvgPool2d(2) after: S = 3*2 = 6, r = 1 + 2*1 + 1*3 = 6
    rf = theoretical_rf(nn.Sequential(nn.MaxPool2d(3), nn.AvgPool2d(2)))
    assert rf.stride == (6, 6)
    assert rf.size == (6, 6)


def test_reused_module_instance_counts_every_time():
    # Sequential runs a shared conv3 three times: r = 1 + 3*2 = 7
    c = conv(3)
    rf = theoretical_rf(nn.Sequential(c, c, c))
    assert rf.size == (7, 7)
    assert [lay.name for lay in rf.layers] == ["0", "1", "2"]


def test_same_padding_left_is_half_of_total():
    # k=4: total 3 -> left 1; k=4 d=2: total 6 -> left 3; k=(2,5): total (1,4) -> left (0,2)
    rf = theoretical_rf(
        nn.Sequential(
            nn.Conv2d(1, 1, 4, padding="same"),
            nn.Conv2d(1, 1, 4, padding="same", dilation=2),
            nn.Conv2d(1, 1, (2, 5), padding="same"),
        ),
        input_shape=(1, 9, 10),
    )
    assert [lay.padding for lay in rf.layers] == [(1, 1), (3, 3), (0, 2)]
    assert rf.out_shape == (9, 10)  # "same" at stride 1 keeps the size


def test_valid_padding_is_zero():
    rf = theoretical_rf(nn.Sequential(nn.Conv2d(1, 1, 3, padding="valid")), input_shape=(7, 7))
    assert rf.padding == (0, 0)
    assert rf.out_shape == (5, 5)  # 7 - 3 + 1


@pytest.mark.parametrize(
    "model, hw",
    [
        (nn.Sequential(conv(3, 2, 1)), (11, 10)),
        (nn.Sequential(nn.Conv2d(1, 1, (4, 2), padding="same", dilation=(1, 3))), (9, 8)),
        (nn.Sequential(conv(5, 1, 0, 2)), (12, 13)),
        (nn.Sequential(nn.MaxPool2d(2, 2, padding=1, ceil_mode=True)), (5, 6)),
        (nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True)), (8, 9)),
        (nn.Sequential(nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)), (7, 8)),
        (nn.Sequential(nn.MaxPool2d(3, 2, padding=1, dilation=2)), (10, 11)),
        (
            nn.Sequential(
                conv((3, 5), (2, 1), (1, 2)),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
                nn.Conv2d(1, 1, 4, padding="same"),
                nn.AvgPool2d(2, ceil_mode=True),
            ),
            (23, 17),
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_out_shapes_match_pytorch(model, hw):
    rf = theoretical_rf(model, input_shape=(1, *hw))
    x, expected = torch.zeros(1, 1, *hw), []
    for m in model:
        x = m(x)
        expected.append(tuple(x.shape[-2:]))
    assert [lay.out_shape for lay in rf.layers] == expected
    assert rf.out_shape == expected[-1]


def test_input_too_small_raises_value_error_naming_layer():
    model = nn.Sequential(conv(3), nn.ReLU(), conv(5))  # 6 -> 4 -> 4 -> 0
    with pytest.raises(ValueError, match=r"layer 2 \('2'\)"):
        theoretical_rf(model, input_shape=(6, 6))


def test_unsupported_module_in_module_list_raises_type_error_naming_it():
    # a ModuleList has no forward, so only the closed form applies
    bad = nn.ModuleList([conv(3), nn.Flatten()])
    with pytest.raises(TypeError, match=r"'1' of type Flatten.*not supported"):
        theoretical_rf(bad)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(conv(3), nn.Upsample(scale_factor=2)),
        nn.Sequential(OrderedDict(body=nn.Sequential(conv(3), nn.Linear(4, 2)))),
        conv(3),
    ],
)
def test_non_chain_model_without_input_shape_raises_value_error(model):
    with pytest.raises(ValueError, match="input_shape is needed for graph analysis"):
        theoretical_rf(model)


def test_non_chain_models_use_the_graph_analysis():
    # conv3 then nearest x2: the upsampled unit 4 reads conv unit 2 -> [2, 4]: r 3, S 1/2
    rf = theoretical_rf(nn.Sequential(conv(3), nn.Upsample(scale_factor=2)), (1, 6, 6))
    assert (rf.size, rf.layers, rf.interval((4, 4))) == ((3, 3), (), ((2, 4), (2, 4)))
    assert theoretical_rf(conv(3), (1, 6, 6)).size == (3, 3)  # a bare module


def test_non_module_raises_type_error():
    with pytest.raises(TypeError, match="nn.Module"):
        theoretical_rf("conv3")


@pytest.mark.parametrize(
    "layers, match",
    [
        ([(3, 1, 0), (0, 1, 0)], r"layer 1.*kernel"),
        ([(3, 0, 0)], r"layer 0.*stride"),
        ([(3, 1, -1)], r"layer 0.*padding"),
        ([(3, 1, 0, 0)], r"layer 0.*dilation"),
        ([(3, (1, 2, 3), 0)], r"layer 0.*stride"),
        ([(3.0, 1, 0)], r"layer 0.*kernel"),
        ([(3, 1)], r"layer 0"),
        ([3], r"layer 0"),
    ],
)
def test_bad_tuple_raises_value_error_naming_layer_and_field(layers, match):
    with pytest.raises(ValueError, match=match):
        theoretical_rf(layers)


# --------------------------------------------------------------------------- gradient support


def grad_support(model: nn.Module, hw: tuple[int, int]) -> np.ndarray:
    """Input pixels with nonzero d(centre output unit, channel 0)/dx, positive weights, float64."""
    torch.manual_seed(0)
    model = model.double()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)
    cin = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    x = (torch.rand(1, cin, *hw, dtype=torch.float64) + 0.5).requires_grad_()
    y = model(x)
    h, w = y.shape[-2:]
    y[0, 0, h // 2, w // 2].backward()
    return (x.grad[0].abs().sum(0) != 0).numpy()


def rectangle(interval, hw):
    (r0, r1), (c0, c1) = interval
    mask = np.zeros(hw, dtype=bool)
    mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


@pytest.mark.parametrize(
    "model, hw",
    [
        # strided conv, avg pool, then dilated conv; gap-free (r = 25), fully inside 64x64
        (
            nn.Sequential(
                conv(3, 2, 1, cout=2),
                conv(3, 1, 1, cin=2, cout=2),
                nn.AvgPool2d(2),
                conv(3, 1, 2, 2, cin=2),
            ),
            (64, 64),
        ),
        # asymmetric kernel/stride/padding/dilation, ReLU, padded avg pool
        (
            nn.Sequential(
                conv((3, 5), (2, 1), (1, 2), cout=2),
                nn.ReLU(),
                conv(3, 1, (1, 2), (1, 2), cin=2, cout=2),
                nn.AvgPool2d(3, 2, padding=1),
            ),
            (40, 30),
        ),
        # "same" padding with even kernels; RF exceeds the input, so the interval is clipped
        (
            nn.Sequential(
                nn.Conv2d(1, 2, 4, padding="same", bias=False),
                nn.Conv2d(2, 2, 5, padding="same", bias=False),
                nn.Conv2d(2, 1, (2, 3), padding="same", dilation=(1, 2), bias=False),
            ),
            (10, 9),
        ),
        # ceil-mode pooling then a valid strided conv, odd sizes
        (
            nn.Sequential(
                conv(3, 1, 1, cout=2),
                nn.AvgPool2d(3, 2, padding=1, ceil_mode=True),
                conv(3, 2, 0, cin=2),
            ),
            (13, 14),
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_gradient_support_equals_clipped_center_interval(model, hw):
    rf = theoretical_rf(model, input_shape=hw)
    expected = rectangle(rf.interval(rf.center_unit, clipped=True), hw)
    np.testing.assert_array_equal(grad_support(model, hw), expected)


@pytest.mark.parametrize(
    "model, n_pixels",
    [
        (nn.Sequential(conv(3, 1, 0, 3)), 9),  # taps at 0, 3, 6 per axis: 3*3 of a 7x7 box
        (nn.Sequential(conv(1, 2), conv(3)), 9),  # taps at 0, 2, 4 per axis: 3*3 of a 5x5 box
    ],
)
def test_gappy_chain_support_has_interval_as_bounding_box(model, n_pixels):
    hw = (21, 21)
    rf = theoretical_rf(model, input_shape=hw)
    support = grad_support(model, hw)
    rows, cols = np.nonzero(support)
    interval = rf.interval(rf.center_unit, clipped=True)
    assert ((rows.min(), rows.max()), (cols.min(), cols.max())) == interval
    assert support.sum() == n_pixels


def test_at_gives_the_trf_of_an_intermediate_layer():
    # conv3 p1 (r=3), conv3 s2 p1 (r=5, S=2, P=1+1*1=2), conv3 (r=5+2*2=9): at "1": 5 / 2 / 2.
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3)
    )
    trf = theoretical_rf(model, input_shape=(1, 20, 20))
    assert trf.size == (9, 9)
    mid = trf.at("1")
    assert (mid.size, mid.stride, mid.padding, mid.out_shape) == ((5, 5), (2, 2), (2, 2), (10, 10))
    with pytest.raises(ValueError, match="no layer named"):
        trf.at("7")
