"""measure_erf: exact oracles, independent per-sample loops, and the probe's contract."""

import numpy as np
import pytest
import torch
from helpers.oracles import box_convolution_2d
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from erf import ConvStack, erf_size, measure_erf, moment_sigma


def _normalised(m):
    return m / m.max()


def test_uniform_linear_depth20_stack_is_exactly_the_20_fold_box_convolution_in_float32():
    model = ConvStack(20, kernel_size=3, channels=1, init="uniform")
    result = measure_erf(model, (1, 64, 64), n_samples=2, batch_size=2, device="cpu")
    oracle = box_convolution_2d(20, 3, 64)
    assert np.abs(_normalised(result.map) - _normalised(oracle)).max() < 1e-5


def test_uniform_linear_stack_in_float64_matches_box_convolution_to_1e_12():
    model = ConvStack(20, kernel_size=3, channels=2, init="uniform")
    result = measure_erf(
        model, (2, 64, 64), n_samples=1, batch_size=1, device="cpu", dtype=torch.float64
    )
    oracle = box_convolution_2d(20, 3, 64)
    assert np.abs(_normalised(result.map) - _normalised(oracle)).max() < 1e-12


@pytest.mark.parametrize("depth,kernel", [(5, 3), (20, 3), (6, 5)])
def test_uniform_stack_per_axis_variance_is_n_times_k2_minus_1_over_12(depth, kernel):
    model = ConvStack(depth, kernel_size=kernel, channels=1, init="uniform")
    result = measure_erf(model, (1, 72, 72), n_samples=1, device="cpu", dtype=torch.float64)
    s_row, s_col = moment_sigma(result.map)
    expected = depth * (kernel**2 - 1) / 12
    assert s_row**2 == pytest.approx(expected, rel=1e-9)
    assert s_col**2 == pytest.approx(expected, rel=1e-9)


def test_uniform_depth20_stack_has_luo_size_16_16():
    model = ConvStack(20, channels=1, init="uniform")
    result = measure_erf(model, (1, 64, 64), n_samples=1, device="cpu", dtype=torch.float64)
    assert erf_size(result.map) == pytest.approx(16.16, abs=0.005)


def _per_sample_loop_mean_abs(model, xs, position):
    """Independent route: one forward/backward per sample, summing the chosen unit's channels."""
    model = model.double().eval()
    maps = []
    for x in xs:
        x = x[None].double().clone().requires_grad_(True)
        y = model(x)
        y[0, :, position[0], position[1]].sum().backward()
        maps.append(x.grad[0].abs().sum(0).numpy())
    return np.mean(maps, axis=0)


def test_batched_probe_equals_a_per_sample_loop_on_the_same_inputs():
    model = ConvStack(4, channels=3, init="random", activation="relu", seed=3)
    xs = torch.randn(10, 3, 20, 20, dtype=torch.float64)
    loop = _per_sample_loop_mean_abs(
        ConvStack(4, channels=3, init="random", activation="relu", seed=3), xs, (10, 10)
    )
    batched = measure_erf(
        model,
        (3, 20, 20),
        n_samples=10,
        batch_size=4,
        inputs=[xs[:4], xs[4:8], xs[8:]],
        device="cpu",
        dtype=torch.float64,
    )
    assert batched.n_samples == 10
    np.testing.assert_allclose(batched.map, loop, rtol=1e-12, atol=1e-15)


def test_same_seed_gives_the_same_map_and_another_seed_a_different_one():
    def run(seed):
        model = ConvStack(5, channels=4, init="random", activation="relu", seed=1)
        return measure_erf(
            model, (4, 24, 24), n_samples=6, batch_size=4, seed=seed, device="cpu"
        ).map

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_inputs_do_not_depend_on_the_batch_size():
    def run(batch_size):
        model = ConvStack(3, channels=2, init="random", activation="relu", seed=1)
        return measure_erf(
            model,
            (2, 16, 16),
            n_samples=6,
            batch_size=batch_size,
            device="cpu",
            dtype=torch.float64,
        ).map

    np.testing.assert_allclose(run(1), run(6), rtol=1e-12)


def test_probe_restores_training_mode_flags_and_dtype_and_computes_no_weight_gradients():
    model = ConvStack(3, channels=2, init="random", activation="relu")
    model.train()
    measure_erf(model, (2, 16, 16), n_samples=2, device="cpu", dtype=torch.float64)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())


class _Boom(nn.Module):
    def forward(self, x):
        raise AssertionError("the forward pass went past the target")


def test_forward_pass_stops_at_the_target_module():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), _Boom())
    result = measure_erf(model, (1, 9, 9), n_samples=2, target="1", device="cpu")
    assert result.target == "1"
    assert result.target_shape == (1, 9, 9)


def test_target_module_erf_equals_the_erf_of_the_truncated_model():
    model = ConvStack(6, channels=2, init="random", activation="tanh", seed=2)
    truncated = nn.Sequential(*list(model)[:6])  # conv, tanh, conv, tanh, conv, tanh
    kw = dict(n_samples=4, device="cpu", dtype=torch.float64)
    at_target = measure_erf(model, (2, 20, 20), target="5", **kw)
    whole = measure_erf(truncated, (2, 20, 20), **kw)
    np.testing.assert_allclose(at_target.map, whole.map, rtol=1e-12)


def test_single_conv_gives_the_kernel_under_each_named_reduction():
    # One 3x3 cross-correlation: dy(r,c)/dx(r-1+i, c-1+j) = w[i, j] exactly.
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [-0.5, 2.0, 1.5]], dtype=torch.float64)
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(w[None, None])
    kernel = w.numpy()
    expected = {
        "abs": np.abs(kernel),
        "relu": np.clip(kernel, 0, None),
        "square": kernel**2,
        "clamp_after_mean": np.clip(kernel, 0, None),
        "clamp_per_image": np.clip(kernel, 0, None),  # one input channel: the mean is the sum
    }
    for reduce, oracle in expected.items():
        result = measure_erf(
            conv, (1, 7, 7), n_samples=3, reduce=reduce, device="cpu", dtype=torch.float64
        )
        np.testing.assert_allclose(result.map[2:5, 2:5], oracle, err_msg=reduce)
        assert result.map.sum() == pytest.approx(oracle.sum())


def test_channel_option_probes_one_output_channel_only():
    conv = nn.Conv2d(1, 2, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -5.0], dtype=torch.float64).view(2, 1, 1, 1))
    kw = dict(n_samples=1, device="cpu", dtype=torch.float64)
    assert measure_erf(conv, (1, 5, 5), channel=1, **kw).map[2, 2] == pytest.approx(5.0)
    assert measure_erf(conv, (1, 5, 5), channel=0, **kw).map[2, 2] == pytest.approx(2.0)
    assert measure_erf(conv, (1, 5, 5), **kw).map[2, 2] == pytest.approx(3.0)  # |2 - 5|


def test_position_tuple_moves_the_probed_unit():
    model = ConvStack(2, channels=1, init="uniform")
    result = measure_erf(model, (1, 16, 16), n_samples=1, position=(3, 12), device="cpu")
    assert result.position == (3, 12)
    rows, cols = np.nonzero(result.map)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (1, 5, 10, 14)


def test_position_outside_the_target_map_is_a_clear_error():
    with pytest.raises(ValueError, match="outside"):
        measure_erf(ConvStack(2), (1, 8, 8), n_samples=1, position=(8, 0), device="cpu")


def test_unknown_reduction_target_and_input_source_are_clear_errors():
    model = ConvStack(2)
    with pytest.raises(ValueError, match="allowed"):
        measure_erf(model, (1, 8, 8), reduce="mean", device="cpu")
    with pytest.raises(ValueError, match="no module named 'nope'"):
        measure_erf(model, (1, 8, 8), target="nope", device="cpu")
    with pytest.raises(ValueError, match="allowed"):
        measure_erf(model, (1, 8, 8), inputs="pink-noise", device="cpu")


def test_dataloader_of_input_label_pairs_gives_the_same_map_as_the_tensors():
    xs = torch.randn(7, 2, 12, 12)
    loader = DataLoader(TensorDataset(xs, torch.zeros(7)), batch_size=3)
    kw = dict(n_samples=7, device="cpu", dtype=torch.float64)
    model = ConvStack(3, channels=2, init="random", activation="relu")
    from_loader = measure_erf(model, (2, 12, 12), inputs=loader, **kw)
    from_tensors = measure_erf(model, (2, 12, 12), inputs=[xs], batch_size=7, **kw)
    np.testing.assert_allclose(from_loader.map, from_tensors.map, rtol=1e-12)


def test_n_samples_truncates_a_longer_input_source():
    xs = torch.randn(10, 1, 8, 8)
    result = measure_erf(ConvStack(1), (1, 8, 8), inputs=[xs], n_samples=4, device="cpu")
    assert result.n_samples == 4


class _Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


def test_nonfinite_gradients_are_skipped_and_counted_or_raise():
    model = nn.Sequential(_Log(), nn.Conv2d(1, 1, 3, padding=1))
    xs = torch.rand(4, 1, 6, 6) + 0.5
    xs[1, 0, 3, 3] = 0.0  # d log(x)/dx = inf at 0
    result = measure_erf(model, (1, 6, 6), inputs=[xs], n_samples=4, device="cpu")
    assert (result.n_samples, result.n_nonfinite) == (3, 1)
    assert np.isfinite(result.map).all()
    with pytest.raises(FloatingPointError):
        measure_erf(model, (1, 6, 6), inputs=[xs], n_samples=4, on_nonfinite="raise", device="cpu")


def test_stderr_is_the_sample_standard_deviation_over_sqrt_n():
    xs = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())
    result = measure_erf(
        model, (1, 6, 6), inputs=[xs], n_samples=5, device="cpu", dtype=torch.float64
    )
    per_sample = []
    for x in xs:
        x = x[None].clone().requires_grad_(True)
        model.double()(x)[0, :, 3, 3].sum().backward()
        per_sample.append(x.grad[0].abs().sum(0).numpy())
    expected = np.std(per_sample, axis=0, ddof=1) / np.sqrt(5)
    np.testing.assert_allclose(result.stderr, expected, rtol=1e-9, atol=1e-15)


def _relu_stack():
    return ConvStack(4, channels=3, init="random", activation="relu", seed=7)


RESUME_KW = dict(n_samples=10, batch_size=3, device="cpu", seed=4)


def test_a_probe_resumed_from_a_checkpoint_gives_the_bitwise_same_map():
    whole = measure_erf(_relu_stack(), (3, 20, 20), **RESUME_KW)
    partials = []
    measure_erf(
        _relu_stack(), (3, 20, 20), on_checkpoint=partials.append, checkpoint_every=2, **RESUME_KW
    )
    assert [p.meta["samples_seen"] for p in partials] == [6, 10]  # after batches 2 and 4
    resumed = measure_erf(_relu_stack(), (3, 20, 20), resume=partials[0], **RESUME_KW)
    assert np.array_equal(resumed.total, whole.total)
    assert np.array_equal(resumed.total_sq, whole.total_sq)
    assert resumed.n_samples == whole.n_samples == 10


def test_should_stop_checkpoints_and_raises_with_the_partial_result():
    from erf.probe.measure import ProbeInterrupted

    calls = []
    with pytest.raises(ProbeInterrupted) as info:
        measure_erf(
            _relu_stack(),
            (3, 20, 20),
            on_checkpoint=calls.append,
            should_stop=lambda: len(calls) >= 0,
            **RESUME_KW,
        )
    assert info.value.partial.meta["samples_seen"] == 3
    assert len(calls) == 1 and calls[0].n_samples == 3
    whole = measure_erf(_relu_stack(), (3, 20, 20), **RESUME_KW)
    resumed = measure_erf(_relu_stack(), (3, 20, 20), resume=info.value.partial, **RESUME_KW)
    assert np.array_equal(resumed.total, whole.total)


def test_resuming_an_iterable_source_skips_the_samples_already_seen():
    xs = torch.randn(9, 3, 20, 20)
    kw = dict(n_samples=9, batch_size=3, device="cpu", dtype=torch.float64)
    whole = measure_erf(_relu_stack(), (3, 20, 20), inputs=[xs[:4], xs[4:]], **kw)
    partials = []
    measure_erf(
        _relu_stack(),
        (3, 20, 20),
        inputs=[xs[:4], xs[4:]],
        on_checkpoint=partials.append,
        checkpoint_every=1,
        **kw,
    )
    resumed = measure_erf(
        _relu_stack(), (3, 20, 20), inputs=[xs[:4], xs[4:]], resume=partials[0], **kw
    )
    np.testing.assert_allclose(resumed.map, whole.map, rtol=1e-12)
    assert resumed.n_samples == 9


def test_resuming_with_other_settings_is_refused_naming_what_changed():
    partials = []
    measure_erf(
        _relu_stack(), (3, 20, 20), on_checkpoint=partials.append, checkpoint_every=1, **RESUME_KW
    )
    with pytest.raises(ValueError, match="reduce: 'abs' -> 'square'"):
        measure_erf(_relu_stack(), (3, 20, 20), resume=partials[0], reduce="square", **RESUME_KW)
