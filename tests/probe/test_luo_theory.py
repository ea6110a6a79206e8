"""Luo et al. 2016's variance argument, checked on measured maps of random linear stacks.

For a linear stack with independent zero-mean weights, E[(dy/dx)^2] at an input offset is a
sum over paths of products of weight variances: the n-fold convolution of one layer's
per-position variance profile. So the ``square`` ERF has, per axis, exactly n times the
variance of one layer's profile marginal: 2/3 for the plain Gaussian init (3x3, flat
variance), 16/21 for rim_heavy (column weights 8, 5, 8 out of 21). These oracles are derived
by hand, not from the code; draws of one batched pass average the weights out.
"""

import numpy as np
import pytest

from erf.analysis.draw_stats import pool_draws
from erf.nets.luo import ConvStack
from erf.probe.draws import measure_erf_draws


def _axis_variances(erf_map):
    mass = erf_map / erf_map.sum()
    offsets_r = np.arange(mass.shape[0]) - mass.shape[0] // 2
    offsets_c = np.arange(mass.shape[1]) - mass.shape[1] // 2
    return (mass.sum(1) * offsets_r**2).sum(), (mass.sum(0) * offsets_c**2).sum()


@pytest.mark.parametrize("init, layer_variance", [("random", 2 / 3), ("rim_heavy", 16 / 21)])
def test_square_erf_of_a_random_linear_stack_has_n_times_the_layer_variance(init, layer_variance):
    depth = 6
    results = measure_erf_draws(
        lambda seed: ConvStack(depth, channels=8, init=init, seed=seed),
        (8, 25, 25),
        draws=48,
        n_samples=1,
        reduce="square",
        device="cpu",
        progress=False,
    )
    rows, cols = _axis_variances(pool_draws(results).map)
    assert rows == pytest.approx(depth * layer_variance, rel=0.04)
    assert cols == pytest.approx(depth * layer_variance, rel=0.04)
