"""Unit seeding and the peers' protocols (probe.seeding, the clamp reductions, erf.PRESETS).

The peers' loops (OpenERF 0.6.1 and RepLKNet's erf/visualize_erf.py) are re-implemented here
with plain torch.autograd, one image at a time, capturing the target with a forward hook on the
full model (as they do), independently of the probe's own forward, seed and reduction code.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from erf import PRESETS, measure_erf, measure_erfs
from erf.analysis.summary import erf_metrics
from erf.probe import ProbeOptions, measure_erf_draws
from erf.probe import measure as measure_module
from erf.probe.bench import run_benchmark
from erf.probe.distributed import measure_erf_sharded
from erf.probe.measure import ProbeInterrupted

F64 = torch.float64


# --------------------------------------------------------------------------- the peers' loops


def _capture(model: nn.Module, x: torch.Tensor, target: str | None) -> torch.Tensor:
    """The target's output of a full forward of ``model`` (a forward hook, as the peers do)."""
    if target is None:
        return model(x)
    box = {}
    module = dict(model.named_modules())[target]
    handle = module.register_forward_hook(lambda m, i, o: box.setdefault("y", o))
    try:
        model(x)
    finally:
        handle.remove()
    return box["y"]


def openerf_reference(model, images, target) -> np.ndarray:
    """OpenERF 0.6.1: per image, d(channel mean of the target at the centre)/dx, averaged over
    input channels, clamped at 0; summed over images; normalised to sum 1."""
    model.eval()
    total = None
    for batch in images:
        for x in batch.split(1):
            x = x.clone().requires_grad_(True)
            y = _capture(model, x, target)
            h, w = y.shape[2:]
            (grad,) = torch.autograd.grad(y[:, :, h // 2, w // 2].mean(), x)
            m = torch.clamp(grad.mean(dim=1), min=0)[0]
            total = m if total is None else total + m
    total = total.detach().double().numpy()
    return total / total.sum()


def replknet_reference(model, images, target) -> np.ndarray:
    """RepLKNet (erf/visualize_erf.py, get_input_grad + AverageMeter): per image,
    relu(grad of relu(centre).sum()) summed over input channels; the mean over images."""
    model.eval()
    maps = []
    for batch in images:
        for x in batch.split(1):
            x = x.clone().requires_grad_(True)
            outputs = _capture(model, x, target)
            size = outputs.size()
            central_point = F.relu(outputs[:, :, size[2] // 2, size[3] // 2]).sum()
            (grad,) = torch.autograd.grad(central_point, x)
            maps.append(F.relu(grad).sum((0, 1)).detach().double().numpy())
    return np.mean(maps, axis=0)


# --------------------------------------------------------------------------- networks, inputs


def small_net() -> nn.Module:
    """Three random convs with ReLUs between them; the last conv has no ReLU, so the centre
    outputs take both signs (the gating and the clamps matter)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1),
    ).double()


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).double()


def images(n_batches: int, batch: int, shape: tuple[int, int, int], seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((batch, *shape), generator=gen, dtype=F64) for _ in range(n_batches)]


def ours(model, xs, target=None, **settings) -> "measure_module.ERFResult":
    n = sum(x.shape[0] for x in xs)
    options = dict(n_samples=n, batch_size=xs[0].shape[0], device="cpu", dtype=F64)
    options.update(settings)
    options["n_samples"] = n
    return measure_erf(model, tuple(xs[0].shape[1:]), target=target, inputs=xs, **options)


def unit_sum(m: np.ndarray) -> np.ndarray:
    return m / m.sum()


CASES = [
    pytest.param(small_net, None, (3, 15, 15), id="small_net"),
    pytest.param(resnet18, "layer2", (3, 48, 48), id="resnet18.layer2"),
    # A signed target (a conv output: the gating and the clamps matter). Not bn2: torchvision's
    # `out += identity` then changes the hooked tensor in place, so a hook would see the sum.
    pytest.param(resnet18, "layer2.1.conv2", (3, 48, 48), id="resnet18.layer2.1.conv2"),
]


# --------------------------------------------------------------------------- presets = peers


@pytest.mark.parametrize("make,target,shape", CASES)
def test_openerf_preset_equals_openerf_loop(make, target, shape):
    model, xs = make(), images(2, 3, shape)
    theirs = openerf_reference(model, xs, target)
    mine = ours(model, xs, target, **PRESETS["openerf"])
    assert mine.map.sum() == pytest.approx(1.0, abs=1e-12)  # normalise="sum"
    assert np.abs(mine.map - theirs).max() < 1e-10
    assert np.abs(unit_sum(mine.mean) - theirs).max() < 1e-10


@pytest.mark.parametrize("make,target,shape", CASES)
def test_replknet_preset_equals_replknet_loop_without_any_rescaling(make, target, shape):
    model, xs = make(), images(2, 3, shape)
    theirs = replknet_reference(model, xs, target)
    mine = ours(model, xs, target, **PRESETS["replknet"])
    assert np.abs(unit_sum(mine.map) - unit_sum(theirs)).max() < 1e-10
    # Same scale too (the mean over images), so log10(x + 1) area ratios compare with theirs.
    np.testing.assert_allclose(mine.map, theirs, rtol=1e-9, atol=1e-15)


def test_the_gating_is_what_plain_relu_misses_where_centre_outputs_take_both_signs():
    model, xs = small_net(), images(2, 3, (3, 15, 15))
    with torch.no_grad():
        centre = model(torch.cat(xs))[:, :, 7, 7]
    assert (centre > 0).any() and (centre < 0).any()  # the gating has something to do
    theirs = unit_sum(replknet_reference(model, xs, None))
    ungated = unit_sum(ours(model, xs, reduce="relu").map)
    assert np.abs(ungated - theirs).max() > 1e-3


def test_openerf_loop_is_not_clamp_after_mean():
    model, xs = small_net(), images(2, 3, (3, 15, 15))
    theirs = openerf_reference(model, xs, None)
    after = ours(model, xs, seeding="channel_mean", reduce="clamp_after_mean")
    per_image = ours(model, xs, seeding="channel_mean", reduce="clamp_per_image")
    assert np.abs(unit_sum(per_image.map) - theirs).max() < 1e-10
    assert np.abs(unit_sum(after.map) - theirs).max() > 1e-3
    # Inside the TRF, clamp_after_mean is zero wherever the mean gradient is negative, while
    # clamp_per_image keeps every image's positive part there.
    inside = ours(model, xs).map > 0
    assert inside.sum() == 49  # the 7 x 7 TRF of three 3 x 3 convs
    assert ((after.map == 0) & inside).sum() >= 3 and (per_image.map[inside] > 0).all()


def test_clamp_per_image_is_the_clamped_mean_over_input_channels():
    conv = nn.Conv2d(2, 1, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([3.0, -1.0], dtype=F64).view(1, 2, 1, 1))
    result = measure_erf(
        conv, (2, 5, 5), n_samples=1, reduce="clamp_per_image", device="cpu", dtype=F64
    )
    assert result.map[2, 2] == pytest.approx((3.0 - 1.0) / 2)  # mean over input channels
    assert result.map.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- seeding relations


def test_relu_gated_equals_all_channels_relu_where_every_centre_output_is_positive():
    model = small_net()
    with torch.no_grad():
        model[4].bias.fill_(100.0)  # every output > 0: the gate is open on every channel
    xs = images(2, 3, (3, 15, 15))
    with torch.no_grad():
        assert (model(torch.cat(xs))[:, :, 7, 7] > 0).all()
    gated = ours(model, xs, seeding="relu_gated", reduce="relu")
    plain = ours(model, xs, seeding="all_channels", reduce="relu")
    np.testing.assert_array_equal(gated.total, plain.total)


def test_channel_mean_map_is_the_all_channels_map_over_c():
    model, xs = small_net(), images(2, 3, (3, 15, 15))
    for reduce in ("abs", "relu", "clamp_per_image"):
        mean = ours(model, xs, seeding="channel_mean", reduce=reduce)
        every = ours(model, xs, seeding="all_channels", reduce=reduce)
        np.testing.assert_allclose(mean.map * 6, every.map, rtol=1e-12, atol=1e-300)


def test_channel_seeding_needs_probe_channel_and_is_the_default_with_one():
    model, xs = small_net(), images(1, 2, (3, 15, 15))
    implied = ours(model, xs, channel=4)
    named = ours(model, xs, channel=4, seeding="channel")
    assert implied.meta["seeding"] == named.meta["seeding"] == "channel"
    np.testing.assert_array_equal(implied.total, named.total)
    assert ours(model, xs).meta["seeding"] == "all_channels"


# --------------------------------------------------------------------------- per_channel_normalised


def _two_channel_conv() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    w0 = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    w1 = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 9.0], [0.0, 0.0, 0.0]])
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(np.stack([w0, w1])[:, None]))
    return conv, w0, w1


def test_per_channel_normalised_is_the_average_of_each_channels_unit_sum_map():
    conv, w0, w1 = _two_channel_conv()
    result = measure_erf(
        conv, (1, 7, 7), n_samples=3, seeding="per_channel_normalised", device="cpu", dtype=F64
    )
    # dy_c(3,3)/dx(2+i, 2+j) = w_c[i, j]: channel c's map is |w_c| on the 3x3 around the unit.
    oracle = np.zeros((7, 7))
    oracle[2:5, 2:5] = (w0 / w0.sum() + w1 / w1.sum()) / 2
    np.testing.assert_allclose(result.map, oracle, rtol=1e-12, atol=1e-15)
    assert result.meta["n_dead_channels"] == 0 and result.meta["dead_channels"] == []
    plain = measure_erf(conv, (1, 7, 7), n_samples=3, device="cpu", dtype=F64)
    assert np.abs(unit_sum(plain.map) - oracle).max() > 0.1  # channel 1's gain dominates it


def test_a_dead_channel_is_counted_and_left_out_not_averaged_in():
    conv = nn.Conv2d(1, 3, 3, padding=1, bias=False).double()
    _, w0, w1 = _two_channel_conv()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(np.stack([w0, np.zeros((3, 3)), w1])[:, None]))
    result = measure_erf(
        conv, (1, 7, 7), n_samples=2, seeding="per_channel_normalised", device="cpu", dtype=F64
    )
    oracle = np.zeros((7, 7))
    oracle[2:5, 2:5] = (w0 / w0.sum() + w1 / w1.sum()) / 2  # over the 2 live channels, not 3
    np.testing.assert_allclose(result.map, oracle, rtol=1e-12, atol=1e-15)
    assert result.meta["n_dead_channels"] == 1 and result.meta["dead_channels"] == [1]


def per_channel_reference(model, xs, reduce="abs") -> np.ndarray:
    """The definition, one image and one channel at a time: each channel's map (summed over
    input channels) scaled to sum 1, averaged over the channels whose map is not all zero."""
    maps = []
    for batch in xs:
        for x in batch.split(1):
            x = x.clone().requires_grad_(True)
            y = model(x)
            h, w = y.shape[2:]
            per_channel = []
            for c in range(y.shape[1]):
                (g,) = torch.autograd.grad(y[0, c, h // 2, w // 2], x, retain_graph=True)
                m = (g.abs() if reduce == "abs" else g.clamp(min=0)).sum((0, 1))
                if m.sum() > 0:
                    per_channel.append(m / m.sum())
            maps.append(torch.stack(per_channel).mean(0).numpy())
    return np.mean(maps, axis=0)


@pytest.mark.parametrize("reduce", ["abs", "relu"])
def test_per_channel_normalised_equals_its_definition_on_a_relu_net(reduce, monkeypatch):
    model, xs = small_net(), images(2, 3, (3, 15, 15))
    oracle = per_channel_reference(model, xs, reduce)
    whole = ours(model, xs, seeding="per_channel_normalised", reduce=reduce)
    np.testing.assert_allclose(whole.map, oracle, rtol=1e-10, atol=1e-15)
    # Chunks of 2 channels per batched backward (3 chunks for 6 channels) change nothing.
    monkeypatch.setattr(measure_module, "CHANNEL_CHUNK_ELEMENTS", 2 * 3 * 3 * 15 * 15)
    chunked = ours(model, xs, seeding="per_channel_normalised", reduce=reduce, progress=False)
    np.testing.assert_allclose(chunked.map, whole.map, rtol=1e-12, atol=1e-15)


def test_relu_dead_channels_are_counted_over_the_whole_run_and_survive_a_resume():
    model = small_net()
    with torch.no_grad():
        model[4].bias[[1, 4]] = -1e6  # no input lifts these above 0 ...
    net = nn.Sequential(model, nn.ReLU())  # ... so after the ReLU they are dead everywhere
    xs = images(3, 2, (3, 15, 15))
    settings = dict(seeding="per_channel_normalised", checkpoint_every=1)
    whole = ours(net, xs, **settings)
    with torch.no_grad():  # after a ReLU a channel is dead where its centre value is 0
        centre = net(torch.cat(xs))[:, :, 7, 7]
    dead = [c for c in range(6) if bool((centre[:, c] == 0).all())]
    assert {1, 4} <= set(dead) and len(dead) < 6
    assert whole.meta["n_dead_channels"] == len(dead) and whole.meta["dead_channels"] == dead
    calls = iter([True])
    with pytest.raises(ProbeInterrupted) as stop:
        ours(net, xs, should_stop=lambda: next(calls, False), **settings)
    resumed = ours(net, xs, resume=stop.value.partial, **settings)
    np.testing.assert_array_equal(resumed.total, whole.total)
    assert resumed.meta["dead_channels"] == dead


def test_per_channel_normalised_works_for_several_units_and_token_outputs():
    class Tokens(nn.Module):  # [B, N, C] with no prefix tokens: the conv's map as tokens
        def __init__(self):
            super().__init__()
            self.conv = _two_channel_conv()[0]

        def forward(self, x):
            return self.conv(x).flatten(2).transpose(1, 2)

    net = Tokens()
    kw = dict(n_samples=2, seeding="per_channel_normalised", device="cpu", dtype=F64)
    token = measure_erf(net, (1, 7, 7), layout="tokens", grid=(7, 7), prefix_tokens=0, **kw)
    conv = measure_erf(net.conv, (1, 7, 7), **kw)
    np.testing.assert_allclose(token.map, conv.map, rtol=1e-12)
    a, b = measure_erfs(net.conv, (1, 7, 7), [(None, "center"), (None, (1, 1))], **kw)
    np.testing.assert_allclose(a.map, conv.map, rtol=1e-12)
    assert b.map[0:3, 0:3].sum() == pytest.approx(1.0) and b.position == (1, 1)


# --------------------------------------------------------------------------- refusals, warnings


@pytest.mark.parametrize(
    "settings,words",
    [
        ({"reduce": "signed_clamp"}, ["clamp_after_mean", "clamp_per_image"]),
        ({"seeding": "channel"}, ["seeding=channel needs channel=K"]),
        ({"seeding": "relu_gated", "channel": 2}, ["channel=2", "seeding=relu_gated"]),
        ({"seeding": "per_channel_normalised", "reduce": "clamp_after_mean"}, ["signed"]),
        ({"seeding": "mean"}, ["channel_mean"]),
        ({"normalise": "max"}, ["normalise"]),
    ],
)
def test_options_refuse_bad_combinations_in_one_line(settings, words):
    with pytest.raises(ValueError) as err:
        ProbeOptions(**settings)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words)


def test_engines_that_cannot_seed_channel_by_channel_refuse_it_in_one_line():
    options = ProbeOptions(seeding="per_channel_normalised", n_samples=2, device="cpu")
    with pytest.raises(ValueError, match=r"^seeding=per_channel_normalised does not combine"):
        measure_erf_draws(lambda s: small_net(), (3, 9, 9), draws=2, options=options)
    with pytest.raises(ValueError, match=r"^seeding=per_channel_normalised does not combine"):
        measure_erf_sharded(small_net(), (3, 9, 9), options=options)
    for seeding in ("relu_gated", "per_channel_normalised"):
        with pytest.raises(ValueError, match="does not combine with the benchmark"):
            run_benchmark(small_net(), (3, 9, 9), target=None, n_samples=2, seeding=seeding)


@pytest.mark.parametrize("vectorize", [True, False])
def test_draws_engine_takes_the_single_backward_seedings(vectorize):
    def make(seed):
        torch.manual_seed(seed)
        return small_net() if seed == 0 else small_net().apply(_reseed(seed))

    kw = dict(n_samples=2, batch_size=2, dtype=F64, seeding="relu_gated", reduce="relu")
    got = measure_erf_draws(make, (3, 11, 11), draws=2, vectorize=vectorize, device="cpu", **kw)
    for m, result in enumerate(got):
        alone = measure_erf(make(m), (3, 11, 11), seed=m, device="cpu", **kw)
        np.testing.assert_allclose(result.total, alone.total, rtol=1e-10, atol=1e-300)
        assert result.meta["seeding"] == "relu_gated"


def _reseed(seed):
    gen = torch.Generator().manual_seed(seed)

    def init(module):
        if isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen, dtype=F64))

    return init


def test_clamp_after_mean_warns_when_the_centre_is_clamped_to_zero():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 1.0]]))
    kw = dict(n_samples=2, device="cpu", dtype=F64)
    clamped = measure_erf(conv, (1, 7, 7), reduce="clamp_after_mean", **kw)
    assert clamped.map[3, 3] == 0 and clamped.map.sum() == pytest.approx(8.0)
    (warning,) = clamped.meta["probe_warnings"]
    assert "on 1 of the 9 pixels" in warning and "pixel (3, 3) under the probed unit" in warning
    assert "probe_warnings" not in measure_erf(conv, (1, 7, 7), reduce="abs", **kw).meta
    with torch.no_grad():
        conv.weight[0, 0, 1, 1] = 2.0
        conv.weight[0, 0, 0, 0] = -1.0  # a zeroed rim pixel: warned, but not the centre
    rim = measure_erf(conv, (1, 7, 7), reduce="clamp_after_mean", **kw)
    (warning,) = rim.meta["probe_warnings"]
    assert "on 1 of the 9 pixels" in warning and "under the probed unit" not in warning
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 1.0
    clean = measure_erf(conv, (1, 7, 7), reduce="clamp_after_mean", **kw)
    assert "probe_warnings" not in clean.meta


def test_old_checkpoints_resume_as_what_they_meant():
    from erf.probe.accumulate import Accumulator

    model, xs = small_net(), images(2, 2, (3, 9, 9))
    partial = ours(model, xs[:1], reduce="clamp_after_mean")
    fingerprint = dict(partial.meta["fingerprint"])
    old = dict(fingerprint, reduce="signed_clamp")
    del old["seeding"]
    partial.meta["fingerprint"] = old
    Accumulator(fingerprint, torch.device("cpu"), partial)  # all_channels, clamp_after_mean
    with pytest.raises(ValueError, match="seeding: 'all_channels' -> 'channel_mean'"):
        Accumulator(dict(fingerprint, seeding="channel_mean"), torch.device("cpu"), partial)
    partial.meta["fingerprint"] = dict(old, channel=3)
    with pytest.raises(ValueError, match="seeding: 'channel' -> 'all_channels'"):
        Accumulator(fingerprint, torch.device("cpu"), partial)


# --------------------------------------------------------------------------- normalisation


def test_sum_normalisation_scales_the_map_only():
    model, xs = small_net(), images(2, 3, (3, 15, 15))
    plain = ours(model, xs)
    scaled = ours(model, xs, normalise="sum")
    np.testing.assert_array_equal(plain.total, scaled.total)
    np.testing.assert_allclose(scaled.map, plain.map / plain.map.sum(), rtol=1e-14)
    assert scaled.meta["normalise"] == "sum" and plain.meta["normalise"] == "none"


def test_every_metric_but_the_area_ratios_ignores_the_sum_to_one_scaling():
    # OpenERF's normalisation must not change our numbers; RepLKNet's log10(x + 1) area
    # ratios are the one exception (why probe.normalise exists).
    model = resnet18()
    xs = images(1, 4, (3, 48, 48))
    kw = dict(seeding="channel_mean", reduce="clamp_per_image")
    plain = erf_metrics(ours(model, xs, "layer2", **kw))
    scaled = erf_metrics(ours(model, xs, "layer2", normalise="sum", **kw))
    assert plain["degenerate"] is None
    ratios = {k for k in plain if k.startswith("area_ratio")}
    in_map_units = {"amplitude", "offset"}  # the fit's height and floor scale with the map
    flat = {k: v for k, v in plain.items() if not isinstance(v, dict)}
    for key, sub in plain.items():
        if isinstance(sub, dict):
            flat.update({f"{key}.{k}": v for k, v in sub.items() if k not in in_map_units})
    for key in sorted(set(flat) - ratios):
        a = flat[key]
        b = scaled[key] if "." not in key else scaled[key.split(".")[0]][key.split(".")[1]]
        # bootstrap intervals of the Gaussian fit: curve_fit stops at a scale-dependent
        # tolerance, so their replicates agree to ~1e-4 only
        fit_ci = "_ci_" in key and key.split("_ci_")[0] in {"sigma_x", "sigma_y", "fit_r2"}
        if isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-3 if fit_ci else 1e-6, abs=1e-12, nan_ok=True), key
        elif isinstance(a, list):
            np.testing.assert_allclose(b, a, rtol=1e-9, err_msg=key)
        else:
            assert a == b, key
    tiny = erf_metrics(ours(model, xs, "layer2", normalise="none", reduce="relu"))
    big = ours(model, xs, "layer2", normalise="none", reduce="relu")
    big.total = big.total * 1e6  # the same map at another scale
    assert any(erf_metrics(big)[k] != tiny[k] for k in ratios)


def test_per_channel_seeding_falls_back_to_one_backward_per_channel(monkeypatch):
    model, xs = small_net(), images(1, 2, (3, 11, 11))
    batched = ours(model, xs, seeding="per_channel_normalised")
    real_grad = torch.autograd.grad

    def no_batching(*args, is_grads_batched=False, **kw):
        if is_grads_batched:
            raise RuntimeError("no batching rule (test)")
        return real_grad(*args, **kw)

    monkeypatch.setattr(measure_module.torch.autograd, "grad", no_batching)
    looped = ours(model, xs, seeding="per_channel_normalised")
    np.testing.assert_allclose(looped.map, batched.map, rtol=1e-12, atol=1e-300)


def openerf_token_centre(n_tokens: int) -> tuple[int, int]:
    """OpenERF's (BMVC 2023) centre token of a square grid of ``n_tokens`` spatial tokens:
    index N // 2 - ((N + 1) % 2) * (g // 2 + 1), as (row, col)."""
    g = int(round(n_tokens**0.5))
    index = n_tokens // 2 - ((n_tokens + 1) % 2) * (g // 2 + 1)
    return divmod(index, g)


@pytest.mark.parametrize("side", [64, 80])  # a 4 x 4 (even) and a 5 x 5 (odd) token grid
def test_the_openerf_preset_probes_openerfs_token_on_even_and_odd_grids(side):
    timm = pytest.importorskip("timm")
    vit = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=side)
    g = side // 16
    result = measure_erf(
        vit, (3, side, side), target="blocks.0.attn.qkv", n_samples=1, progress=False,
        **PRESETS["openerf"],
    )  # fmt: skip
    assert result.position == openerf_token_centre(g * g)
    plain = measure_erf(
        vit, (3, side, side), target="blocks.0.attn.qkv", n_samples=1, progress=False
    )
    assert plain.position == (g // 2, g // 2)  # erf's own centre
