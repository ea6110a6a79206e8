"""Closed-form null models (erf.analysis.null_models) against independent oracles: trinomial
coefficients, the measured map of a uniform linear stack (exact) and Monte-Carlo averages of
random linear stacks (within tolerance)."""

import math

import numpy as np
import pytest
import torch

import erf
from erf.analysis.null_models import box_power, null_curves, null_map, null_size
from erf.probe.draws import measure_erf_draws


def _trinomial_row(n: int) -> list[int]:
    """Coefficients of (1 + x + x²)^n, counted: choose i factors giving x², j - 2i giving x."""
    return [
        sum(math.comb(n, i) * math.comb(n - i, j - 2 * i) for i in range(0, j // 2 + 1))
        for j in range(2 * n + 1)
    ]


@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_box_power_is_the_trinomial_row(n):
    row = np.array(_trinomial_row(n), dtype=np.float64)
    np.testing.assert_allclose(box_power(n, 3), row / 3**n, rtol=1e-12)


def test_box_power_of_a_5_box_has_the_tRF_length_and_sums_to_one():
    b = box_power(4, 5)
    assert b.size == 1 + 4 * 4 and b.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(b, b[::-1])  # symmetric


@pytest.mark.parametrize("n", [2, 4, 7])
def test_the_uniform_linear_stack_measures_exactly_the_box_model(n):
    side = 1 + 2 * n + 6  # larger than the TRF: no path reaches the padding
    model = erf.ConvStack(depth=n, channels=2, init="uniform").double()
    result = erf.measure_erf(model, (2, side, side), n_samples=1, dtype=torch.float64)
    measured = result.map / result.map[side // 2, side // 2]
    expected = np.zeros((side, side))
    s = 1 + 2 * n
    lo = (side - s) // 2
    expected[lo : lo + s, lo : lo + s] = null_map(n, 3, "box")
    np.testing.assert_allclose(measured, expected, rtol=1e-10, atol=1e-14)
    assert null_size(n, 3, "box") == pytest.approx(erf.erf_size(result.map), abs=1e-12)


def _random_linear(seed: int) -> torch.nn.Module:
    return erf.ConvStack(depth=3, channels=4, init="random", seed=seed).double()


@pytest.fixture(scope="module")
def monte_carlo():
    """Mean `square` and `abs` maps over 600 random linear stacks (depth 3, 4 channels):
    their gradient does not depend on the input, so one input per draw is enough."""
    shape = (4, 11, 11)
    out = {}
    for reduce in ("square", "abs"):
        results = measure_erf_draws(
            _random_linear, shape, draws=600, n_samples=1, batch_size=1,
            reduce=reduce, dtype=torch.float64, device="cpu", seed=0,
        )  # fmt: skip
        mean = np.mean([r.map for r in results], axis=0)
        out[reduce] = mean[2:9, 2:9] / mean[5, 5]  # the 7×7 TRF around the centre
    return out


@pytest.mark.slow  # the 600-draw fixture takes ~30 s on 2 shared cores
def test_the_variance_map_of_random_linear_stacks_is_the_box_model(monte_carlo):
    expected = null_map(3, 3, "box")
    inner = expected > 0.05  # where 600 draws give a few-percent estimate
    np.testing.assert_allclose(monte_carlo["square"][inner], expected[inner], rtol=0.15)
    # and it is clearly not the square-root model
    assert np.abs(monte_carlo["square"][inner] - null_map(3, 3, "sqrt_box")[inner]).max() > 0.2


@pytest.mark.slow
def test_the_abs_map_of_random_linear_stacks_is_the_square_root_model(monte_carlo):
    expected = null_map(3, 3, "sqrt_box")
    inner = expected > 0.2
    np.testing.assert_allclose(monte_carlo["abs"][inner], expected[inner], rtol=0.12)
    assert np.abs(monte_carlo["abs"][inner] - null_map(3, 3, "box")[inner]).max() > 0.2


def test_null_curves_slopes_and_the_growth_depths():
    curves = {c["model"]: c for c in null_curves([5, 10, 20, 40, 80])}
    box, root = curves["box"], curves["sqrt_box"]
    assert box["trf_size"] == [11, 21, 41, 81, 161]
    # measured on uniform linear stacks (experiments/depth_sweep): 8.31, 11.70, 16.16, 22.74
    np.testing.assert_allclose(box["erf_size"][:4], [8.31, 11.70, 16.16, 22.74], atol=0.005)
    assert root["erf_size_slope"] == pytest.approx(0.53, abs=0.01)
    assert root["erf_trf_ratio_slope"] == pytest.approx(-0.44, abs=0.01)
    assert all(r <= 1 for r in root["erf_trf_ratio"])  # the TRF caps the size


def test_unknown_model_and_bad_depth_are_refused():
    with pytest.raises(ValueError, match="unknown null model"):
        null_map(3, 3, "gauss")
    with pytest.raises(ValueError, match="depth"):
        box_power(0)
