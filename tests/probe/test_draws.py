"""Many random networks in one pass (erf.probe.draws) against one probe per network (measure_erf).

"Identical" here means: the same samples, the same float64 summation order, and gradients
that differ only by the rounding of the convolution kernel (vmap runs the M networks' convs as
one grouped convolution, measure_erf one plain convolution per network). In float64 that is
below 1e-12 relative; in float32 below 1e-5. The per-draw loop (vectorize=False, the CPU
default) uses measure_erf's own kernels and is bitwise equal.
"""

import numpy as np
import pytest
import torch
from helpers.oracles import box_convolution_2d
from torch import nn

from erf.analysis.draw_stats import draw_metrics, pool_draws
from erf.analysis.metrics import luo_size
from erf.analysis.summary import erf_metrics
from erf.io.store import load_results, save_results
from erf.nets.luo import ConvStack
from erf.probe.draws import DrawsInterrupted, measure_erf_draws
from erf.probe.measure import measure_erf
from erf.rf.theory import theoretical_rf

SHAPE = (2, 16, 16)


def relu_stack(seed: int) -> nn.Module:
    return ConvStack(3, 3, channels=2, activation="relu", init="random", seed=seed)


class ResidualNet(nn.Module):
    """Conv stem, two residual blocks with batch norm, a head conv; seeded init."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.stem = nn.Conv2d(2, 3, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
            for _ in range(2)
        )
        self.head = nn.Conv2d(3, 2, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
            for bn in (b[1] for b in self.blocks):
                bn.running_mean.copy_(torch.randn(3, generator=gen))
                bn.running_var.copy_(torch.rand(3, generator=gen) + 0.5)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def _separate(make_model, draws, seed, **options):
    return [
        measure_erf(make_model(seed + m), SHAPE, seed=seed + m, device="cpu", **options)
        for m in range(draws)
    ]


def _assert_same(draw_results, separate, rtol):
    assert len(draw_results) == len(separate)
    for got, want in zip(draw_results, separate):
        np.testing.assert_allclose(got.total, want.total, rtol=rtol, atol=0)
        np.testing.assert_allclose(got.total_sq, want.total_sq, rtol=rtol, atol=0)
        assert (got.n_samples, got.n_nonfinite) == (want.n_samples, want.n_nonfinite)
        assert (got.position, got.target_shape, got.target) == (
            want.position,
            want.target_shape,
            want.target,
        )
        assert got.meta["seed"] == want.meta["seed"]
        assert got.meta["fingerprint"] == want.meta["fingerprint"]


def test_float64_vmapped_draws_equal_separate_probes_with_seed_plus_m():
    options = dict(n_samples=5, batch_size=2, dtype=torch.float64)  # last batch is partial
    got = measure_erf_draws(
        relu_stack, SHAPE, draws=3, seed=7, device="cpu", vectorize=True, **options
    )
    _assert_same(got, _separate(relu_stack, 3, 7, **options), rtol=1e-12)
    assert [r.meta["draw"] for r in got] == [0, 1, 2]
    assert got[0].meta["vectorized"] is True


def test_float32_vmapped_draws_are_close_to_separate_probes():
    options = dict(n_samples=4, batch_size=4, dtype=torch.float32)
    got = measure_erf_draws(
        relu_stack, SHAPE, draws=2, seed=0, device="cpu", vectorize=True, **options
    )
    _assert_same(got, _separate(relu_stack, 2, 0, **options), rtol=1e-5)


def test_the_per_draw_loop_is_bitwise_separate_probes():
    options = dict(n_samples=5, batch_size=2, dtype=torch.float32)
    got = measure_erf_draws(
        relu_stack, SHAPE, draws=3, seed=2, device="cpu", vectorize=False, **options
    )
    _assert_same(got, _separate(relu_stack, 3, 2, **options), rtol=0)
    assert got[0].meta["vectorized"] is False


def test_the_cpu_default_is_the_per_draw_loop():
    got = measure_erf_draws(relu_stack, SHAPE, draws=2, n_samples=1, device="cpu")
    assert got[0].meta["vectorized"] is False


@pytest.mark.parametrize("vectorize", [True, False])
def test_residual_net_with_batch_norm_and_an_inner_target_matches_separate_probes(vectorize):
    options = dict(
        n_samples=3,
        batch_size=2,
        dtype=torch.float64,
        target="blocks.1",
        reduce="clamp_after_mean",
        channel=1,
        position=(5, 9),
        inputs="uniform",
    )
    got = measure_erf_draws(
        ResidualNet, SHAPE, draws=2, seed=3, device="cpu", vectorize=vectorize, **options
    )
    _assert_same(got, _separate(ResidualNet, 2, 3, **options), rtol=1e-12)
    assert got[0].target_shape == (3, 16, 16) and got[0].position == (5, 9)


@pytest.mark.parametrize("vectorize", [True, False])
def test_an_iterable_source_gives_every_draw_the_same_batches(vectorize):
    batches = [torch.randn(2, *SHAPE, dtype=torch.float64) for _ in range(2)]
    options = dict(n_samples=4, batch_size=2, dtype=torch.float64, inputs=batches)
    got = measure_erf_draws(
        relu_stack, SHAPE, draws=2, seed=0, device="cpu", vectorize=vectorize, **options
    )
    _assert_same(got, _separate(relu_stack, 2, 0, **options), rtol=1e-12)


def test_draws_have_different_weights_and_maps():
    got = measure_erf_draws(relu_stack, SHAPE, draws=2, n_samples=2, device="cpu")
    assert not np.allclose(got[0].map, got[1].map)


def test_models_of_different_shapes_are_refused_in_one_line():
    def make(seed):
        return ConvStack(2 + seed, 3, channels=2)

    with pytest.raises(ValueError, match="same architecture"):
        measure_erf_draws(make, SHAPE, draws=2, n_samples=1, device="cpu")


def test_draws_below_one_are_refused():
    with pytest.raises(ValueError, match="draws must be an integer >= 1"):
        measure_erf_draws(relu_stack, SHAPE, draws=0, device="cpu")


@pytest.mark.parametrize("vectorize", [True, False])
def test_an_interrupted_and_resumed_pass_equals_an_uninterrupted_one_bitwise(vectorize):
    options = dict(n_samples=6, batch_size=2, device="cpu", draws=2, seed=1, vectorize=vectorize)
    whole = measure_erf_draws(relu_stack, SHAPE, **options)
    saved = []
    with pytest.raises(DrawsInterrupted) as stop:
        measure_erf_draws(relu_stack, SHAPE, should_stop=lambda: True, **options)
    assert stop.value.partial.meta["samples_seen"] == 2
    resumed = measure_erf_draws(
        relu_stack, SHAPE, resume=stop.value.partials, on_checkpoint=saved.append, **options
    )
    for a, b in zip(resumed, whole):
        np.testing.assert_array_equal(a.total, b.total)
        assert a.n_samples == b.n_samples == 6
    assert saved == []  # checkpoint_every=10 batches: none in 2 more batches


def test_pooled_map_is_the_mean_of_the_draw_maps():
    got = measure_erf_draws(relu_stack, SHAPE, draws=3, n_samples=2, device="cpu")
    pooled = pool_draws(got)
    np.testing.assert_allclose(pooled.map, np.mean([r.map for r in got], axis=0), rtol=1e-12)
    assert pooled.n_samples == 6 and pooled.meta["seeds"] == [0, 1, 2]


def test_per_draw_sizes_of_uniform_linear_stacks_are_the_box_convolution_size():
    def uniform(seed):
        return ConvStack(4, 3, channels=1, init="uniform", seed=seed)

    shape = (1, 15, 15)
    got = measure_erf_draws(uniform, shape, draws=2, n_samples=2, device="cpu", reduce="square")
    model = uniform(0)
    stats = draw_metrics(got, theoretical_rf(model, input_shape=shape))
    # square of a linear net's gradient: the squared box convolution, scaled
    oracle = luo_size(box_convolution_2d(4, 3, 15) ** 2)
    assert stats["seeds"] == [0, 1]
    assert stats["erf_size"] == pytest.approx([oracle, oracle])
    assert stats["luo_size"] == pytest.approx([oracle, oracle])
    assert stats["erf_trf_ratio"] == pytest.approx([oracle / 9, oracle / 9])
    assert stats["erf_size_spread"]["n"] == 2 and stats["erf_size_spread"]["std"] == 0


def test_per_draw_metrics_are_the_single_measurement_metrics_in_draw_order():
    got = measure_erf_draws(relu_stack, SHAPE, draws=3, n_samples=2, device="cpu")
    trf = theoretical_rf(relu_stack(0), input_shape=SHAPE)
    stats = draw_metrics(got, trf)
    singles = [erf_metrics(r, trf) for r in got]
    assert stats["erf_size"] == [s["erf_size"] for s in singles]
    assert stats["sigma"]["x"] == [s["sigma_x"] for s in singles]
    values = np.array(stats["erf_size"])
    assert stats["erf_size_spread"]["std"] == pytest.approx(values.std(ddof=1))


def test_saved_draws_load_back_in_order(tmp_path):
    got = measure_erf_draws(relu_stack, SHAPE, draws=2, n_samples=2, device="cpu")
    save_results(got, tmp_path / "draws.npz")
    back = load_results(tmp_path / "draws.npz")
    for a, b in zip(back, got):
        np.testing.assert_array_equal(a.total, b.total)
        assert a.meta["seed"] == b.meta["seed"] and a.position == b.position
    with np.load(tmp_path / "draws.npz") as data:
        assert data["map"].shape == (2, 16, 16) and list(data["seeds"]) == [0, 1]


@pytest.mark.parametrize("vectorize", [True, False])
def test_a_vector_output_is_probed_as_a_one_by_one_grid(vectorize):
    """Classifier logits [B, 2]: one unit per channel; the global pooling spreads the
    gradient over the whole input."""
    from helpers.custom_net import TinyNet

    results = measure_erf_draws(
        lambda seed: TinyNet(), (3, 8, 8), draws=2, n_samples=1, vectorize=vectorize, channel=1
    )
    first = results[0]
    assert first.meta["layout"] == "vector" and first.position == (0, 0)
    assert first.target_shape == (2, 1, 1)
    assert (first.map > 0).all()
