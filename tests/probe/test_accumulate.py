"""Bootstrap groups and dead-unit counts of the probe's accumulator, on every engine path.

Oracles are per-sample loops over ``random_sample`` (the probe's inputs by (seed, index)) with
plain autograd; the "integer" net has integer weights and a ReLU, so its gradients are
integers and every float64 sum is exact in any order (bitwise comparisons then test which
sample went to which group, not the summation order).
"""

import numpy as np
import pytest
import torch
from torch import nn

from erf import ConvStack, measure_erf
from erf.probe import distributed
from erf.probe.draws import measure_erf_draws
from erf.probe.inputs import random_sample
from erf.probe.measure import ProbeInterrupted
from erf.result import ERFResult

SHAPE = (1, 9, 9)


def _integer_net() -> nn.Module:
    first = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    second = nn.Conv2d(2, 1, 3, padding=1, bias=False)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for conv in (first, second):
            conv.weight.copy_(torch.randint(-2, 3, conv.weight.shape, generator=gen).double())
    return nn.Sequential(first, nn.ReLU(), second).double()


def _per_sample_maps(model: nn.Module, n: int, seed: int = 0, channel=None) -> np.ndarray:
    """Oracle: |d y[centre] / d x| summed over input channels, one sample at a time."""
    maps = []
    for i in range(n):
        x = random_sample("gaussian", SHAPE, seed, i).unsqueeze(0).requires_grad_(True)
        y = model(x)
        h, w = y.shape[-2:]
        unit = y[0, :, h // 2, w // 2] if channel is None else y[0, channel, h // 2, w // 2]
        (grad,) = torch.autograd.grad(unit.sum(), x)
        maps.append(grad.abs().sum(1)[0].numpy())
    return np.stack(maps)


def _groups_oracle(maps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    groups = np.zeros((k, *maps.shape[1:]))
    counts = np.zeros(k, dtype=np.int64)
    for i, m in enumerate(maps):
        groups[i % k] += m
        counts[i % k] += 1
    return groups, counts


def _probe(model, **kw) -> ERFResult:
    settings = dict(n_samples=10, batch_size=3, device="cpu", dtype=torch.float64)
    return measure_erf(model, SHAPE, **{**settings, **kw})


def test_sample_i_goes_to_group_i_mod_k_and_the_groups_add_up_to_the_total():
    model = _integer_net()
    got = _probe(model, bootstrap_groups=4)
    groups, counts = _groups_oracle(_per_sample_maps(model, 10), 4)
    np.testing.assert_array_equal(got.groups, groups)
    np.testing.assert_array_equal(got.group_n, counts)
    np.testing.assert_array_equal(got.groups.sum(0), got.total)


def test_fewer_samples_than_groups_keep_one_group_per_sample_and_zero_keeps_none():
    model = _integer_net()
    few = _probe(model, n_samples=5, bootstrap_groups=16)
    np.testing.assert_array_equal(few.groups, _per_sample_maps(model, 5))
    np.testing.assert_array_equal(few.group_n, np.ones(5))
    assert _probe(model, bootstrap_groups=0).groups is None


def test_resumed_run_has_bitwise_the_groups_of_an_uninterrupted_one():
    model = ConvStack(3, 3, channels=2, in_channels=1, activation="relu", init="random", seed=1)
    whole = _probe(model, n_samples=13, bootstrap_groups=5)
    batches = iter(range(100))
    with pytest.raises(ProbeInterrupted) as stop:
        _probe(model, n_samples=13, bootstrap_groups=5, should_stop=lambda: next(batches) == 1)
    partial = stop.value.partial
    assert partial.meta["samples_seen"] == 6
    resumed = _probe(model, n_samples=13, bootstrap_groups=5, resume=partial)
    np.testing.assert_array_equal(resumed.groups, whole.groups)
    np.testing.assert_array_equal(resumed.group_n, whole.group_n)
    np.testing.assert_array_equal(resumed.total, whole.total)


@pytest.mark.parametrize(
    "n_samples,batch_size,world,k", [(10, 3, 2, 4), (7, 2, 3, 16), (9, 1, 4, 2)]
)
def test_shards_give_bitwise_the_groups_of_one_process(
    monkeypatch, n_samples, batch_size, world, k
):
    """Each rank's shard, keyed by run-wide sample index (``shard_groups``), merged as the
    all-reduce adds them; the integer net makes every sum exact, so this is bitwise."""
    model = _integer_net()
    settings = dict(n_samples=n_samples, batch_size=batch_size, bootstrap_groups=k)
    whole = _probe(model, **settings)
    parts = []
    for rank in range(world):
        monkeypatch.setattr(distributed, "rank_and_size", lambda r=rank: (r, world))
        monkeypatch.setattr(distributed, "all_reduce_result", lambda part, *a: part)
        part = distributed.measure_erf_sharded(
            model, SHAPE, device="cpu", dtype=torch.float64, **settings
        )
        if part is not None:
            parts.append(part)
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merged(part)
    np.testing.assert_array_equal(merged.groups, whole.groups)
    np.testing.assert_array_equal(merged.group_n, whole.group_n)
    np.testing.assert_array_equal(merged.total, whole.total)


class _NanSensitive(nn.Module):
    """The integer net plus 0 * sum(x²): the same gradients, NaN for an input holding NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _integer_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 0.0 * (x * x).sum((1, 2, 3), keepdim=True)


def test_skipped_nonfinite_samples_keep_their_index_so_the_other_groups_do_not_shift():
    """Sample 2 of a loader batch holds NaN: it is skipped, and samples 3.. stay in i % K."""
    xs = torch.stack([random_sample("gaussian", SHAPE, 0, i) for i in range(8)])
    xs[2, 0, 4, 4] = float("nan")
    model = _NanSensitive()
    got = measure_erf(
        model, SHAPE, n_samples=8, batch_size=4, inputs=[xs[:4], xs[4:]], device="cpu",
        dtype=torch.float64, bootstrap_groups=3,
    )  # fmt: skip
    maps = _per_sample_maps(model, 8)
    groups, counts = _groups_oracle(maps, 3)
    groups[2] -= maps[2]  # the skipped sample's group loses it, nothing else moves
    counts[2] -= 1
    assert got.n_nonfinite == 1
    np.testing.assert_array_equal(got.groups, groups)
    np.testing.assert_array_equal(got.group_n, counts)


def test_cropped_probe_keeps_full_size_groups_equal_to_the_whole_input_probe():
    model = ConvStack(2, 3, channels=1, init="random", seed=0).double()
    shape = (1, 24, 24)
    settings = dict(n_samples=6, batch_size=4, device="cpu", dtype=torch.float64)
    whole = measure_erf(model, shape, bootstrap_groups=4, **settings)
    cropped = measure_erf(model, shape, bootstrap_groups=4, crop="on", **settings)
    assert cropped.meta["crop"]["applied"]
    assert cropped.groups.shape == (4, 24, 24)
    np.testing.assert_allclose(cropped.groups, whole.groups, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(cropped.group_n, whole.group_n)


def test_draws_engine_keeps_each_draws_groups_as_measure_erf_does():
    def make(seed: int) -> nn.Module:
        return ConvStack(2, 3, channels=2, in_channels=1, activation="relu", init="random",
                         seed=seed).double()  # fmt: skip

    settings = dict(n_samples=7, batch_size=3, device="cpu", dtype=torch.float64)
    results = measure_erf_draws(make, SHAPE, draws=2, seed=4, bootstrap_groups=3, **settings)
    for m, got in enumerate(results):
        want = measure_erf(make(4 + m), SHAPE, seed=4 + m, bootstrap_groups=3, **settings)
        np.testing.assert_array_equal(got.groups, want.groups)
        np.testing.assert_array_equal(got.group_n, want.group_n)


class _GatedUnit(nn.Module):
    """One output pixel relu(x[centre]) (channel 0) and relu(x[centre] - 1e6) (channel 1,
    dead for every input): the map is all zero exactly when that input is off."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(x[:, :1]), torch.relu(x[:, :1] - 1e6)], dim=1)


def test_dead_units_are_counted_per_input_and_warned_about():
    n = 20
    alive_oracle = sum(float(random_sample("gaussian", SHAPE, 0, i)[0, 4, 4]) > 0 for i in range(n))
    gated = _probe(_GatedUnit(), n_samples=n, batch_size=6, channel=0)
    assert gated.n_dead == n - alive_oracle > 0
    (warning,) = gated.meta["probe_warnings"]
    assert warning.startswith(f"{n - alive_oracle} of {n} inputs gave an all-zero map")
    dead = _probe(_GatedUnit(), n_samples=n, batch_size=6, channel=1)
    assert dead.n_dead == n and not dead.total.any()
    live = _probe(_integer_net(), n_samples=n)
    assert live.n_dead == 0 and "probe_warnings" not in live.meta


def test_a_checkpoint_without_groups_resumes_only_without_groups():
    model = _integer_net()
    batches = iter(range(100))
    with pytest.raises(ProbeInterrupted) as stop:
        _probe(model, bootstrap_groups=0, should_stop=lambda: next(batches) == 0)
    old = stop.value.partial  # what a checkpoint written before groups existed resumes like
    old.meta["fingerprint"].pop("bootstrap_groups")
    with pytest.raises(ValueError, match="bootstrap_groups: 0 -> 4"):
        _probe(model, bootstrap_groups=4, resume=old)
    resumed = _probe(model, bootstrap_groups=0, resume=old)
    np.testing.assert_array_equal(resumed.total, _probe(model, bootstrap_groups=0).total)
