"""The atlas engine: units whose exact TRF sets are disjoint share one backward pass, and every
unit's sums are bitwise those of its own ``measure_erf`` (the oracle: one unit at a time);
sharing falls back to one pass per unit where it would not be exact."""

import numpy as np
import pytest
import torch
from torch import nn

from erf.nets.luo import ConvStack
from erf.probe import atlas as atlas_module
from erf.probe.atlas import measure_atlas, plan_atlas, share_passes
from erf.probe.measure import measure_erf
from erf.probe.units import atlas_units

SHAPE = (2, 16, 16)
SETTINGS = {"n_samples": 6, "batch_size": 3, "bootstrap_groups": 3, "progress": False}


def _stack(padding_mode="zeros", **kw):
    args = {
        "depth": 3, "kernel_size": 3, "channels": 3, "in_channels": 2, "init": "random",
        "activation": "relu", "seed": 3, "padding_mode": padding_mode,
    }  # fmt: skip
    return ConvStack(**{**args, **kw})


def _one_at_a_time(model, result, shape=SHAPE, **settings):
    """Each unit's own ``measure_erf`` (the oracle)."""
    return [
        measure_erf(model, shape, position=u, **{**SETTINGS, **settings}) for u in result.plan.units
    ]


@pytest.mark.parametrize(
    "padding_mode, kw, side",
    [
        ("zeros", {"stride": [1, 2, 1], "dilation": [1, 1, 2]}, 16),
        ("reflect", {}, 12),
        ("zeros", {"pool_at": [0], "pool": "max"}, 16),
    ],
)
def test_shared_passes_give_every_unit_bitwise_its_own_measurement(padding_mode, kw, side):
    model, shape = _stack(padding_mode, **kw), (2, side, side)
    found = measure_atlas(model, shape, None, "all", **SETTINGS)
    assert found.plan.shared and len(found.plan.passes) < len(found.plan.units)
    for mine, alone in zip(found.results, _one_at_a_time(model, found, shape)):
        assert mine.position == alone.position
        assert np.array_equal(mine.total, alone.total)
        assert np.array_equal(mine.total_sq, alone.total_sq)
        assert np.array_equal(mine.groups, alone.groups)


class _Misaligned(nn.Module):
    """A strided branch upsampled back onto a plain one: TRFs of 5 or 6 pixels by unit."""

    def __init__(self):
        super().__init__()
        self.plain, self.strided = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 2, 3, 2, 1)
        self.up, self.head = nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.head(torch.relu(self.plain(x) + self.up(self.strided(x))))


def test_misaligned_branches_vary_by_unit_and_still_share_exactly():
    model, shape = _Misaligned(), (1, 12, 12)
    found = measure_atlas(model, shape, None, "all", **SETTINGS)
    spans = {tuple(b - a + 1 for a, b in box) for box in found.plan.trf_boxes}
    assert spans == {(5, 5), (5, 6), (6, 5), (6, 6)} and found.plan.shared
    for mine, alone in zip(found.results, _one_at_a_time(model, found, shape)):
        assert np.array_equal(mine.total, alone.total)


def test_circular_padding_wraps_the_sets_and_the_shared_maps_stay_exact():
    model = _stack("circular", depth=2)  # TRF 5 on 16 px: wrapped sets, some disjoint
    found = measure_atlas(model, SHAPE, None, "border", **SETTINGS)
    corner = found.plan.units.index((0, 0))
    assert found.plan.supports[corner][-1, -1]  # the corner reads the opposite corner
    assert found.plan.shared
    for mine, alone in zip(found.results, _one_at_a_time(model, found)):
        assert np.array_equal(mine.total, alone.total)


def test_the_batched_backward_equals_the_loop_to_float_rounding():
    model = _stack()
    loop = measure_atlas(model, SHAPE, None, "grid:4", **SETTINGS)
    vmap = measure_atlas(model, SHAPE, None, "grid:4", backward="vmap", **SETTINGS)
    for a, b in zip(loop.results, vmap.results):
        np.testing.assert_allclose(a.total, b.total, rtol=1e-6, atol=1e-12)


def test_sets_smaller_than_the_true_dependence_would_break_the_maps(monkeypatch):
    """The negative control of the exactness test: sharing by wrong (too small) sets gives
    maps that differ from the one-unit measurement, so the bitwise test can fail."""
    model = _stack()
    real = atlas_module.exact_supports

    def shrunk(*args):
        supports, boxes, reason = real(*args)
        small = np.zeros_like(supports)
        for k, s in enumerate(supports):  # keep one row of each set only
            rows = np.nonzero(s.any(1))[0]
            small[k, rows[len(rows) // 2]] = s[rows[len(rows) // 2]]
        return small, boxes, reason

    monkeypatch.setattr(atlas_module, "exact_supports", shrunk)
    found = measure_atlas(model, SHAPE, None, "border", **SETTINGS)
    alone = _one_at_a_time(model, found)
    assert found.plan.shared
    assert any(not np.array_equal(m.total, a.total) for m, a in zip(found.results, alone))


def test_share_passes_packs_every_unit_once_into_passes_of_disjoint_sets():
    rng = np.random.default_rng(0)
    supports = rng.random((40, 12, 12)) > 0.93
    passes = share_passes(supports)
    assert sorted(k for p in passes for k in p) == list(range(40))
    for p in passes:
        counts = supports[list(p)].sum(0)
        assert counts.max() <= 1


class _GroupNormed(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Conv2d(4, 4, 3))


@pytest.mark.parametrize(
    "model, settings, reason",
    [
        (_GroupNormed(), {}, "a global path (gate or norm statistic) modulates the local TRF"),
        (_stack(), {"share": "off"}, "share=off"),
        (_stack(), {"seeding": "per_channel_normalised"}, "scales each channel's map"),
    ],
)
def test_sharing_falls_back_to_one_pass_per_unit_where_it_would_not_be_exact(
    model, settings, reason
):
    share = settings.pop("share", "auto")
    found = measure_atlas(model, SHAPE, None, "border", share=share, **SETTINGS, **settings)
    assert not found.plan.shared and reason in found.plan.reason
    assert len(found.plan.passes) == len(found.plan.units) == 9
    if share == "off":  # still every unit's own measurement
        alone = _one_at_a_time(model, found)
        assert all(np.array_equal(m.total, a.total) for m, a in zip(found.results, alone))


def test_a_global_target_shares_nothing():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Upsample(size=2))
    plan = plan_atlas(model, SHAPE, None, [(0, 0), (1, 1)], (2, 2))
    assert not plan.shared and "global" in plan.reason


def test_the_atlas_refuses_what_it_cannot_honour():
    with pytest.raises(ValueError, match="crop=auto does not combine with the atlas"):
        measure_atlas(_stack(), SHAPE, None, "border", crop="auto", **SETTINGS)
    with pytest.raises(ValueError, match="outside the 16x16 target feature map"):
        measure_atlas(_stack(), SHAPE, None, [[0, 16]], **SETTINGS)
    big = nn.Conv2d(1, 1, 3, stride=2, padding=1)  # 64 x 64 units, 16 groups on 128 x 128
    with pytest.raises(ValueError, match="4096 units keep 9.0 GiB of float64 sums"):
        measure_atlas(big, (1, 128, 128), None, "all", bootstrap_groups=16, n_samples=64)


@pytest.mark.parametrize(
    "spec, h, w, expected",
    [
        ("border", 5, 4, [(r, c) for r in (0, 2, 4) for c in (0, 2, 3)]),
        ("row", 3, 3, [(1, 0), (1, 1), (1, 2)]),
        ("grid:3", 5, 5, [(r, c) for r in (0, 2, 4) for c in (0, 2, 4)]),
        ("all", 2, 2, [(0, 0), (0, 1), (1, 0), (1, 1)]),
        ([[1, 1], [0, 0], [1, 1]], 2, 2, [(0, 0), (1, 1)]),
    ],
)
def test_unit_sets_name_the_units_of_a_map(spec, h, w, expected):
    assert atlas_units(spec, h, w) == expected


def test_a_unit_set_the_atlas_does_not_know_is_one_line():
    with pytest.raises(ValueError, match="units='edges' is not allowed") as info:
        atlas_units("edges", 4, 4)
    assert "\n" not in str(info.value)


def test_the_meta_records_each_units_pass_and_exact_box():
    found = measure_atlas(_stack(depth=2), SHAPE, None, [[0, 0], [8, 8]], **SETTINGS)
    corner, centre = (r.meta["atlas"] for r in found.results)
    assert corner["trf_interval"] == [[-2, 2], [-2, 2]] and corner["trf_pixels"] == 9
    assert centre["trf_interval"] == [[6, 10], [6, 10]] and centre["trf_pixels"] == 25
    assert corner["pass"] == centre["pass"] == 0  # disjoint: one pass
    assert torch.is_tensor(torch.as_tensor(found.results[0].total))


SMALL = {"n_samples": 2, "batch_size": 2, "bootstrap_groups": 0, "progress": False}


class _Untraceable(nn.Module):
    """A conv behind Python control flow on a tensor value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return -y if float(x.detach().abs().sum()) < 0 else y


def test_without_an_exact_trf_every_unit_has_its_own_pass_and_no_box():
    model = _Untraceable()
    found = measure_atlas(model, (1, 8, 8), None, [[0, 0], [4, 4]], **SMALL)
    assert not found.plan.shared and found.plan.reason.startswith("no exact TRF (cannot trace")
    for mine, alone in zip(found.results, _one_at_a_time(model, found, (1, 8, 8), **SMALL)):
        assert "trf_interval" not in mine.meta["atlas"]
        assert np.array_equal(mine.total, alone.total)


class _ChannelsLastOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).permute(0, 2, 3, 1)


@pytest.mark.parametrize(
    "model, units, reason",
    [
        (_ChannelsLastOut(), [(0, 0), (5, 5)], "the target is not a [B, C, H, W] map"),
        (_stack(depth=2), [(1, 1), (1, 2)], "exact TRF dependence sets: every pair of units"),
    ],
)
def test_units_share_no_pass_on_a_channels_last_map_or_when_their_sets_overlap(
    model, units, reason
):
    plan = plan_atlas(model, (2, 12, 10), None, units, (12, 10))
    assert not plan.shared and plan.passes == ((0,), (1,)) and plan.reason.startswith(reason)


def test_a_channels_last_atlas_gives_every_unit_its_own_channels_last_measurement():
    model = _stack(depth=2)
    found = measure_atlas(model, SHAPE, None, "border", channels_last=True, **SMALL)
    assert found.plan.shared
    alone = _one_at_a_time(model, found, channels_last=True, **SMALL)
    assert all(np.array_equal(m.total, a.total) for m, a in zip(found.results, alone))


class _TwiceByItem(torch.autograd.Function):
    """2 x, whose backward reads a tensor value (``.item``): vmap has no rule for it."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return grad * (2.0 if grad.abs().max().item() >= 0 else 0.0)


class _TwiceConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return _TwiceByItem.apply(self.conv(x))


def test_the_batched_backward_falls_back_to_one_backward_per_pass_where_vmap_cannot(caplog):
    model = _TwiceConv()
    vmap = measure_atlas(model, (1, 8, 8), None, "border", backward="vmap", **SMALL)
    loop = measure_atlas(model, (1, 8, 8), None, "border", **SMALL)
    assert "atlas backward=vmap: one backward per pass" in caplog.text
    for a, b in zip(vmap.results, loop.results):
        np.testing.assert_allclose(a.total, b.total, rtol=1e-6, atol=1e-12)


def test_nan_gradients_stop_the_atlas_when_asked_to_raise():
    model = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="2 sample"):
        measure_atlas(model, (1, 8, 8), None, "border", on_nonfinite="raise", **SMALL)


def test_the_atlas_refuses_unknown_modes_and_a_target_without_a_map():
    with pytest.raises(ValueError, match="share='sometimes' is not allowed"):
        plan_atlas(_stack(), SHAPE, None, [(0, 0)], (16, 16), share="sometimes")
    with pytest.raises(ValueError, match="backward='jit' is not allowed"):
        measure_atlas(_stack(), SHAPE, None, "border", backward="jit", **SMALL)
    pooled = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="the atlas needs a 2-D feature map; the model output"):
        measure_atlas(pooled, SHAPE, None, "border", **SMALL)
