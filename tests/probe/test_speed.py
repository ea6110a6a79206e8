"""Speed features of the probe: several units per forward, auto batch size, fast mode, the
truncated forward for torch.compile, and the benchmark's methods (structure and agreement,
not speed)."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from erf import ConvStack, luo_size, measure_erf
from erf.probe.bench import agreement, floor_erf, make_inputs, per_image_erf, run_benchmark
from erf.probe.measure import ProbeInterrupted, forward_to_many, is_out_of_memory, measure_erfs
from erf.rf.graph import truncated_model


def _relu_stack():
    return ConvStack(5, channels=3, init="random", activation="relu", seed=7)


SHAPE = (3, 24, 24)
KW = dict(n_samples=7, batch_size=3, device="cpu", seed=2)

# ----------------------------------------------------------------- several units per forward


def test_several_targets_and_positions_from_one_forward_equal_separate_calls_bitwise():
    units = ["5", ("5", (2, 19)), ("1", (0, 0)), None, ("7", "center")]
    together = measure_erfs(_relu_stack(), SHAPE, units, **KW)
    for unit, got in zip(units, together):
        target, position = unit if isinstance(unit, tuple) else (unit, "center")
        alone = measure_erf(_relu_stack(), SHAPE, target=target, position=position, **KW)
        assert np.array_equal(got.total, alone.total), unit
        assert np.array_equal(got.total_sq, alone.total_sq), unit
        assert (got.target, got.position, got.target_shape) == (
            alone.target,
            alone.position,
            alone.target_shape,
        )
        assert got.meta["n_units"] == len(units)


def test_several_stages_of_a_resnet_from_one_forward_equal_separate_calls():
    model = torchvision.models.resnet18()
    layers = ["layer1", "layer3", "relu"]
    kw = dict(n_samples=2, batch_size=2, device="cpu")
    together = measure_erfs(model, (3, 64, 64), layers, **kw)
    for name, got in zip(layers, together):
        alone = measure_erf(model, (3, 64, 64), target=name, **kw)
        assert np.array_equal(got.total, alone.total), name


def test_the_shared_forward_stops_after_the_last_target():
    seen = []
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 1), nn.Tanh())
    model[3].register_forward_hook(lambda *a: seen.append("tanh"))
    outs = forward_to_many(model, torch.randn(1, 1, 5, 5), ["2", "0"])
    assert set(outs) == {"2", "0"} and not seen


def test_several_units_resume_together_to_the_bitwise_same_maps():
    units = ["5", ("3", (1, 1))]
    whole = measure_erfs(_relu_stack(), SHAPE, units, **KW)
    partials = []
    measure_erfs(
        _relu_stack(), SHAPE, units, on_checkpoint=partials.append, checkpoint_every=1, **KW
    )
    assert [p[0].meta["samples_seen"] for p in partials] == [3, 6, 7]
    resumed = measure_erfs(_relu_stack(), SHAPE, units, resume=partials[0], **KW)
    for a, b in zip(resumed, whole):
        assert np.array_equal(a.total, b.total)


def test_a_stop_request_raises_with_every_units_partial_result():
    with pytest.raises(ProbeInterrupted) as info:
        measure_erfs(_relu_stack(), SHAPE, ["5", "3"], should_stop=lambda: True, **KW)
    assert [p.target for p in info.value.partials] == ["5", "3"]
    assert info.value.partial.meta["samples_seen"] == 3


# ----------------------------------------------------------------- batch_size="auto"


class _OOMAbove(nn.Module):
    """Raises an out-of-memory error for batches above ``limit`` (as CUDA or the CPU allocator
    would), else a small ReLU conv stack."""

    def __init__(self, limit: int, error: Exception):
        super().__init__()
        self.limit, self.error, self.calls = limit, error, []
        self.body = ConvStack(3, channels=2, init="random", activation="relu", seed=3)

    def forward(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise self.error
        return self.body(x)


OOM_ERRORS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"),
]


@pytest.mark.parametrize("error", OOM_ERRORS, ids=["cuda", "cpu"])
def test_auto_batch_size_halves_on_out_of_memory_and_gives_the_fixed_batch_map(error):
    model = _OOMAbove(limit=6, error=error)
    kw = dict(n_samples=20, device="cpu", seed=1)
    auto = measure_erf(model, (2, 16, 16), batch_size="auto", **kw)
    # the estimate (one sample, run as a twin pair: with_twin) says everything fits: 20,
    # then 10, then 5
    assert model.calls[:4] == [2, 20, 10, 5]
    assert auto.meta["batch_size"] == 5 and auto.meta["oom_retries"] == 2
    assert auto.meta["batch_size_setting"] == "auto"
    fixed = measure_erf(model, (2, 16, 16), batch_size=5, **kw)
    assert np.array_equal(auto.total, fixed.total)
    assert np.array_equal(auto.total_sq, fixed.total_sq)
    exact = measure_erf(model, (2, 16, 16), batch_size=1, dtype=torch.float64, **kw)
    np.testing.assert_allclose(auto.map, exact.map, rtol=1e-5)


def test_a_fixed_batch_size_does_not_hide_out_of_memory_errors():
    with pytest.raises(torch.OutOfMemoryError):
        measure_erf(_OOMAbove(2, OOM_ERRORS[0]), (2, 16, 16), batch_size=4, n_samples=4)


def test_auto_batch_size_splits_an_iterable_sources_batches_after_out_of_memory():
    xs = torch.randn(12, 2, 16, 16)
    model = _OOMAbove(limit=3, error=OOM_ERRORS[1])
    kw = dict(n_samples=12, device="cpu", dtype=torch.float64)
    auto = measure_erf(model, (2, 16, 16), batch_size="auto", inputs=[xs[:8], xs[8:]], **kw)
    assert auto.meta["batch_size"] == 2 and auto.n_samples == 12
    pairs = [xs[i : i + 2] for i in range(0, 12, 2)]  # an iterable's batches are used as given
    fixed = measure_erf(model, (2, 16, 16), batch_size=2, inputs=pairs, **kw)
    np.testing.assert_allclose(auto.map, fixed.map, rtol=1e-12)


def test_an_auto_run_resumes_at_its_checkpoints_batch_size_bitwise():
    model = _OOMAbove(limit=4, error=OOM_ERRORS[0])
    kw = dict(n_samples=13, batch_size="auto", device="cpu", seed=5)
    whole = measure_erf(model, (2, 16, 16), **kw)
    partials = []
    measure_erf(model, (2, 16, 16), on_checkpoint=partials.append, checkpoint_every=1, **kw)
    assert partials[0].meta["batch_size"] == whole.meta["batch_size"] == 3
    assert partials[0].meta["fingerprint"]["batch_size"] == "auto"
    resumed = measure_erf(model, (2, 16, 16), resume=partials[1], **kw)
    assert np.array_equal(resumed.total, whole.total)
    assert resumed.meta["batch_size_from"] == "checkpoint"


def test_out_of_memory_is_recognised_by_type_and_by_the_allocators_messages():
    assert all(is_out_of_memory(e) for e in OOM_ERRORS)
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


# ----------------------------------------------------------------- fast mode


def test_fast_mode_maps_agree_with_float32_and_leave_the_model_as_it_was():
    model = ConvStack(6, channels=8, init="kaiming", activation="relu", seed=4)
    kw = dict(n_samples=16, batch_size=8, device="cpu")
    ref = measure_erf(model, (8, 40, 40), **kw)
    fast = measure_erf(model, (8, 40, 40), fast=True, **kw)
    agree = agreement(ref.map, fast.map)
    assert agree["map_corr"] > 0.999
    assert abs(agree["luo_rel_diff"]) < 0.01
    assert fast.meta["fast"] is True and fast.map.dtype == np.float64
    w = model[0].weight
    assert w.dtype == torch.float32 and w.is_contiguous()  # channels_last undone


def test_channels_last_alone_keeps_float32_and_the_map():
    model = _relu_stack()
    ref = measure_erf(model, SHAPE, **KW)
    got = measure_erf(model, SHAPE, channels_last=True, **KW)
    assert got.meta["channels_last"] is True and got.meta["fast"] is False
    np.testing.assert_allclose(got.map, ref.map, rtol=1e-5, atol=1e-7 * ref.map.max())
    assert model[0].weight.is_contiguous()


def test_fast_mode_needs_a_float32_model():
    with pytest.raises(ValueError, match="dtype=float32"):
        measure_erf(ConvStack(2), (1, 8, 8), fast=True, dtype=torch.float64, device="cpu")


def test_changing_the_fast_setting_refuses_to_resume_a_checkpoint():
    partials = []
    measure_erf(_relu_stack(), SHAPE, on_checkpoint=partials.append, checkpoint_every=1, **KW)
    with pytest.raises(ValueError, match="fast: False -> True"):
        measure_erf(_relu_stack(), SHAPE, resume=partials[0], fast=True, **KW)


def test_checkpoints_from_before_the_speed_settings_still_resume():
    partials = []
    measure_erf(_relu_stack(), SHAPE, on_checkpoint=partials.append, checkpoint_every=1, **KW)
    old = partials[0]
    for key in ("fast", "channels_last", "compile", "crop"):
        del old.meta["fingerprint"][key]
    whole = measure_erf(_relu_stack(), SHAPE, **KW)
    assert np.array_equal(measure_erf(_relu_stack(), SHAPE, resume=old, **KW).total, whole.total)


# ----------------------------------------------------------------- truncated forward (compile)


def test_truncated_trace_returns_the_targets_outputs_and_nothing_after_them():
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    gm = truncated_model(model, ["layer2", "layer1", None])
    outs = gm(x)
    hooks = forward_to_many(model, x, ["layer2", "layer1", None])
    for out, name in zip(outs, ["layer2", "layer1", None]):
        assert torch.equal(out, hooks[name])
    short = truncated_model(model, ["layer1"])
    assert not any("layer2" in str(n.target) for n in short.graph.nodes)


def test_compile_runs_the_truncated_trace_through_torch_compile(monkeypatch):
    compiled = []
    real = torch.compile

    def quick(module, **kw):  # aot_eager: the same tracing and autograd, no C++ build
        compiled.append(module)
        return real(module, backend="aot_eager", **kw)

    monkeypatch.setattr(torch, "compile", quick)
    model = ConvStack(4, channels=3, init="random", activation="relu", seed=1)
    kw = dict(n_samples=5, batch_size=2, device="cpu")
    units = ["5", ("3", (0, 0))]
    got = measure_erfs(model, SHAPE, units, compile=True, **kw)
    assert len(compiled) == 1 and isinstance(compiled[0], torch.fx.GraphModule)
    for unit, result in zip(units, measure_erfs(model, SHAPE, units, **kw)):
        np.testing.assert_allclose(got[units.index(unit)].map, result.map, rtol=1e-6)
    assert got[0].meta["compile"] is True


def test_compile_falls_back_to_hooks_when_the_model_cannot_be_traced(caplog):
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x) if x.sum() > -1e9 else x  # control flow on values: no fx trace

    model = DataDependent()
    kw = dict(n_samples=2, device="cpu", dtype=torch.float64)
    got = measure_erf(model, (1, 9, 9), compile=True, **kw)
    assert "running uncompiled" in caplog.text
    np.testing.assert_array_equal(got.map, measure_erf(model, (1, 9, 9), **kw).map)


# ----------------------------------------------------------------- the benchmark's methods


def test_per_image_and_floor_methods_give_the_probes_map():
    model = _relu_stack()
    xs = make_inputs(SHAPE, 6)
    probe = measure_erf(model, SHAPE, target="7", inputs=[xs], n_samples=6, device="cpu")
    per_image = per_image_erf(model, xs, "7")
    floor = floor_erf(model, xs, "7", batch_size=4)
    np.testing.assert_allclose(per_image, probe.map, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(floor, probe.map, rtol=1e-5, atol=1e-9)
    assert agreement(probe.map, per_image)["map_corr"] == pytest.approx(1.0)


def test_benchmark_reports_every_method_with_speed_ratios_and_map_agreement():
    model = _relu_stack()
    out = run_benchmark(
        model,
        SHAPE,
        target="7",
        n_samples=4,
        batch_size=2,
        repeats=1,
        warmup=0,
        methods=["probe", "per_image", "floor", "fast", "channels_last", "crop", "multi"],
        multi_targets=["7", "3"],
    )
    methods = [r["method"] for r in out["rows"]]
    assert methods == [
        "probe", "per_image", "floor", "fast", "channels_last", "crop", "multi", "separate"
    ]  # fmt: skip
    for r in out["rows"]:
        assert r["images_per_s"] > 0 and r["best_s"] <= r["median_s"]
        if r["method"] in ("per_image", "floor", "channels_last", "crop", "multi"):
            assert r["map_corr"] > 0.99999 and abs(r["luo_rel_diff"]) < 1e-6, r
    assert out["rows"][-2]["targets"] == 2
    assert {"probe/per_image", "probe/floor", "fast/per_image", "multi/separate"} <= set(
        out["ratios"]
    )
    assert luo_size(out["maps"]["probe"]) > 1


def test_benchmark_rejects_unknown_methods_and_a_single_multi_target():
    with pytest.raises(ValueError, match="unknown benchmark method"):
        run_benchmark(_relu_stack(), SHAPE, target=None, methods=["warp"])
    with pytest.raises(ValueError, match="at least two"):
        run_benchmark(_relu_stack(), SHAPE, target=None, methods=["multi"], multi_targets=["1"])
