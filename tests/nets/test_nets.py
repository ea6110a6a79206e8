"""ConvStack: Luo's conv-stack family, its inits, and its TRF checked against gradient support."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from erf import ConvStack, measure_erf, theoretical_rf


def _convs(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("dilation", [1, 2, [1, 2, 4]])
def test_stride1_stack_keeps_the_spatial_size(dilation):
    model = ConvStack(3, kernel_size=5, channels=2, dilation=dilation)
    assert model(torch.zeros(1, 2, 23, 17)).shape == (1, 2, 23, 17)


def test_uniform_init_sets_every_weight_to_one_over_fan_in_and_zero_bias():
    model = ConvStack(3, kernel_size=3, channels=4, in_channels=2, bias=True)
    for conv in _convs(model):
        fan_in = conv.in_channels * 9
        assert torch.all(conv.weight == 1.0 / fan_in)
        assert torch.all(conv.bias == 0)


def test_random_init_has_the_requested_std_and_is_seeded():
    a = ConvStack(2, channels=64, init="random", weight_std=0.3, seed=5)
    b = ConvStack(2, channels=64, init="random", weight_std=0.3, seed=5)
    c = ConvStack(2, channels=64, init="random", weight_std=0.3, seed=6)
    w = _convs(a)[1].weight
    assert w.std().item() == pytest.approx(0.3, rel=0.03)
    assert abs(w.mean().item()) < 0.01
    assert torch.equal(w, _convs(b)[1].weight)
    assert not torch.equal(w, _convs(c)[1].weight)


def test_random_init_default_std_is_one_over_sqrt_fan_in_and_kaiming_is_sqrt_2_over_fan_in():
    random = _convs(ConvStack(2, channels=64, init="random"))[1].weight
    kaiming = _convs(ConvStack(2, channels=64, init="kaiming"))[1].weight
    fan_in = 64 * 9
    assert random.std().item() == pytest.approx(1 / math.sqrt(fan_in), rel=0.03)
    assert kaiming.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)


def test_activation_follows_every_conv_and_pools_follow_the_named_layers():
    model = ConvStack(3, activation="tanh", pool_at=[0, 2], pool="max")
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "Tanh", "MaxPool2d", "Conv2d", "Tanh", "Conv2d", "Tanh", "MaxPool2d"]


def test_per_layer_strides_and_dilations_reach_the_convs():
    model = ConvStack(3, stride=[1, 2, 1], dilation=[1, 1, 4])
    convs = _convs(model)
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (1, 1)]
    assert [c.dilation for c in convs] == [(1, 1), (1, 1), (4, 4)]
    assert [c.padding for c in convs] == [(1, 1), (1, 1), (4, 4)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 0}, "depth"),
        ({"depth": 2, "kernel_size": 4}, "odd"),
        ({"depth": 2, "activation": "swish"}, "activation"),
        ({"depth": 2, "init": "xavier"}, "init"),
        ({"depth": 2, "dilation": [1, 2, 3]}, "dilation"),
        ({"depth": 2, "stride": [1, 0]}, "stride"),
        ({"depth": 2, "pool_at": [2]}, "pool_at"),
        ({"depth": 2, "pool": "min"}, "unknown pool 'min'"),
        ({"depth": 2, "dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"depth": 2, "dropout": 0.5, "dropout_mode": "train"}, "unknown dropout_mode 'train'"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvStack(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"in_channels": 0}, "in_channels=0 is not allowed"),
        ({"kernel_size": 4}, "kernel_size must be odd and >= 1, got 4"),
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"subsample_at": [0, 2]}, r"subsample_at indices \[2\] are outside 0..1"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_residual_stack_arguments_raise_a_value_error_naming_the_argument(kwargs, message):
    from erf.nets.luo import ResidualStack

    with pytest.raises(ValueError, match=message):
        ResidualStack(2, channels=2, **kwargs)


def test_trf_of_a_stack_is_n_times_k_minus_1_plus_1():
    for depth, k in [(1, 3), (5, 3), (10, 5), (40, 3)]:
        assert theoretical_rf(ConvStack(depth, kernel_size=k)).size == (depth * (k - 1) + 1,) * 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 6},
        {"depth": 4, "dilation": [1, 2, 4, 1]},
        {"depth": 5, "stride": [1, 2, 1, 2, 1]},
        {"depth": 5, "pool_at": [1, 3], "pool": "avg"},
    ],
)
def test_trf_interval_equals_the_support_of_the_measured_gradient(kwargs):
    # Positive (uniform) weights and average pooling: every input pixel inside the TRF has a
    # strictly positive gradient, every pixel outside has exactly zero.
    model = ConvStack(channels=1, init="uniform", **kwargs)
    size = 80
    trf = theoretical_rf(model, input_shape=(1, size, size))
    result = measure_erf(model, (1, size, size), n_samples=1, device="cpu", dtype=torch.float64)
    (r0, r1), (c0, c1) = trf.interval(result.position)
    assert r0 >= 0 and r1 < size and c0 >= 0 and c1 < size, "input must hold the whole TRF"
    support = np.zeros((size, size), dtype=bool)
    support[r0 : r1 + 1, c0 : c1 + 1] = True
    assert np.array_equal(result.map > 0, support)


def test_rim_heavy_profile_has_mean_one_and_grows_from_centre_to_corners():
    from erf.nets.luo import rim_heavy_profile

    v = rim_heavy_profile(3).numpy()
    # Hand derivation: 1 + d²/c² with c = 1 gives centre 1, edges 2, corners 3; mean 21/9.
    expected = np.array([[3, 2, 3], [2, 1, 2], [3, 2, 3]]) * 9 / 21
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    assert rim_heavy_profile(5).mean().item() == pytest.approx(1.0)


def test_rim_heavy_init_spreads_the_random_init_variance_towards_the_rim():
    from erf.nets.luo import rim_heavy_profile

    model = ConvStack(2, channels=256, init="rim_heavy", seed=3)
    w = _convs(model)[1].weight.detach().double()
    fan_in = 256 * 9
    per_position = w.square().mean(dim=(0, 1)).numpy() * fan_in  # variance / (1/fan_in)
    np.testing.assert_allclose(per_position, rim_heavy_profile(3).numpy(), rtol=0.03)
    assert torch.equal(w, _convs(ConvStack(2, channels=256, init="rim_heavy", seed=3))[1].weight)


def test_rim_heavy_on_1x1_kernels_has_no_rim_and_is_the_random_init():
    from erf.nets.luo import rim_heavy_profile

    assert torch.equal(rim_heavy_profile(1), torch.ones(1, 1, dtype=torch.float64))
    rim = ConvStack(3, kernel_size=1, channels=4, init="rim_heavy", seed=5)
    plain = ConvStack(3, kernel_size=1, channels=4, init="random", seed=5)
    for a, b in zip(_convs(rim), _convs(plain)):
        assert torch.equal(a.weight, b.weight)


def test_initialise_refuses_an_unknown_init_and_rim_heavy_on_non_square_kernels():
    from erf.nets.luo import initialise

    with pytest.raises(ValueError, match=r"unknown init 'xavier'; allowed: \['uniform'"):
        initialise(nn.Conv2d(1, 1, 3), "xavier")
    for conv in (nn.Conv2d(1, 1, (3, 5)), nn.Conv1d(1, 1, 3)):
        with pytest.raises(ValueError, match="rim_heavy needs square kernels, got"):
            initialise(conv, "rim_heavy")
    initialise(conv, "random", seed=1)  # the other inits take any kernel
    assert conv.weight.std().item() > 0 and not conv.bias.any()


def test_mask_dropout_with_p_zero_is_the_identity():
    from erf.nets.luo import MaskDropout

    x = torch.randn(2, 3, 5, 5)
    assert MaskDropout(0.0, seed=1).eval()(x) is x


def test_eval_mode_dropout_leaves_the_probed_map_unchanged():
    plain = ConvStack(4, channels=3, init="random", activation="relu", seed=1)
    dropped = ConvStack(4, channels=3, init="random", activation="relu", seed=1, dropout=0.5)
    kwargs = dict(n_samples=4, batch_size=2, device="cpu", seed=0)
    a = measure_erf(plain, (3, 15, 15), **kwargs).map
    b = measure_erf(dropped, (3, 15, 15), **kwargs).map
    np.testing.assert_array_equal(a, b)


def test_mask_dropout_draws_masks_in_eval_mode_reproducibly_and_keeps_the_mean():
    from erf.nets.luo import MaskDropout

    x = torch.ones(4, 8, 32, 32)
    drop = MaskDropout(0.25, seed=9).eval()
    out = drop(x)
    np.testing.assert_allclose(out.unique().numpy(), [0.0, 1 / 0.75], rtol=1e-6)
    assert (out == 0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert out.mean().item() == pytest.approx(1.0, abs=0.03)
    assert torch.equal(out, MaskDropout(0.25, seed=9).eval()(x))
    assert not torch.equal(out, drop(x))  # a fresh mask per call


def test_residual_stack_without_skips_has_the_trf_of_the_plain_stack_of_twice_the_depth():
    from erf.nets.luo import ResidualStack

    residual = theoretical_rf(ResidualStack(5, channels=2), input_shape=(2, 40, 40))
    plain = theoretical_rf(ConvStack(10, channels=2))
    assert residual.size == plain.size == (21, 21)
    no_skip = theoretical_rf(ResidualStack(5, channels=2, skip=False), input_shape=(2, 40, 40))
    assert no_skip.size == (21, 21)


def test_residual_path_rfs_are_binomial_with_the_max_path_equal_to_the_trf():
    from erf.nets.luo import ResidualStack

    n, k = 6, 3
    trf = theoretical_rf(ResidualStack(n, kernel_size=k, channels=2), input_shape=(2, 40, 40))
    # A path through j of the n branches crosses 2j convs: span 1 + 2j(k - 1), C(n, j) paths.
    expected = {(1 + 2 * j * (k - 1),) * 2: math.comb(n, j) for j in range(n + 1)}
    assert dict(trf.path_sizes) == expected
    assert max(expected) == trf.size


def test_linear_uniform_residual_stack_map_is_the_exact_sum_over_paths():
    from scipy.signal import convolve2d

    from erf.nets.luo import ResidualStack

    blocks, channels, size = 3, 2, 21
    model = ResidualStack(blocks, channels=channels, activation="none", init="uniform")
    got = measure_erf(model, (channels, size, size), n_samples=1, device="cpu").map
    # Independent oracle: each block maps a gradient g to g + K*g with K the 3x3 mean filter
    # applied twice; every channel pair contributes equally, so the channel sums give C * g.
    box = np.full((3, 3), 1 / 9)
    k = convolve2d(box, box)
    g = np.zeros((size, size))
    g[size // 2, size // 2] = 1.0
    for _ in range(blocks):
        g = g + convolve2d(g, k, mode="same")
    np.testing.assert_allclose(got, channels * g, rtol=1e-5, atol=1e-7)


def test_mask_dropout_residual_stack_is_analysed_by_the_graph_as_pointwise():
    from erf.nets.luo import ResidualStack

    model = ResidualStack(2, channels=2, dropout=0.3, dropout_mode="mask")
    assert theoretical_rf(model, input_shape=(2, 20, 20)).size == (9, 9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"init": "random", "weight_std": float("nan")}, "weight_std=nan is not allowed"),
        ({"init": "random", "weight_std": float("inf")}, "weight_std=inf is not allowed"),
        ({"channels": 100_000}, "channels=100000 is not allowed"),
        ({"kernel_size": 2.0}, "kernel_size=2.0 is not allowed"),
    ],
)
def test_the_api_refuses_what_the_config_refuses(kwargs, message):
    from erf.nets.luo import ConvStack, ResidualStack

    with pytest.raises(ValueError, match=message):
        ConvStack(2, **kwargs)
    with pytest.raises(ValueError, match=message):
        ResidualStack(1, **kwargs)


def test_a_300_layer_float64_sigmoid_stack_gives_a_fit_not_a_zero_division():
    from erf.analysis.fit import fit_gaussian

    model = ConvStack(300, channels=2, activation="sigmoid").double()
    result = measure_erf(
        model, (2, 24, 24), n_samples=2, batch_size=2, dtype=torch.float64, device="cpu"
    )
    assert 0 < result.map.max() < 1e-150  # the map all but vanishes
    fit = fit_gaussian(result.map)
    assert fit.degenerate is not None or math.isfinite(fit.r_squared)
