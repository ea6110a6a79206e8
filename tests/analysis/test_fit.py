import json
import math

import numpy as np
import pytest

from erf.analysis.fit import GaussianFit, fit_gaussian


def gaussian(shape, center, sigma_x, sigma_y, theta=0.0, amplitude=1.0, offset=0.0):
    """Rotated Gaussian written out directly: x = col, y = row, sigma_x along (cos t, sin t)."""
    y, x = np.indices(shape, dtype=float)
    dx, dy = x - center[1], y - center[0]
    u = dx * math.cos(theta) + dy * math.sin(theta)
    v = -dx * math.sin(theta) + dy * math.cos(theta)
    return offset + amplitude * np.exp(-0.5 * (u**2 / sigma_x**2 + v**2 / sigma_y**2))


def test_recovers_centre_and_sigma_of_isotropic_gaussian():
    f = fit_gaussian(gaussian((64, 64), (30.3, 33.7), 5.0, 5.0))
    assert f.converged and f.degenerate is None
    assert f.center_row == pytest.approx(30.3, rel=1e-3)
    assert f.center_col == pytest.approx(33.7, rel=1e-3)
    assert f.sigma_x == pytest.approx(5.0, rel=1e-3)
    assert f.sigma_y == pytest.approx(5.0, rel=1e-3)
    assert f.sigma == pytest.approx(5.0, rel=1e-3)
    assert f.amplitude == pytest.approx(1.0, rel=1e-3)
    assert f.center == (f.center_row, f.center_col)


def test_anisotropic_axis_aligned_sigma_x_is_along_columns():
    f = fit_gaussian(gaussian((48, 64), (24, 32), sigma_x=8.0, sigma_y=3.0))
    assert f.sigma_x == pytest.approx(8.0, rel=1e-3)
    assert f.sigma_y == pytest.approx(3.0, rel=1e-3)
    assert f.rotation == pytest.approx(0.0, abs=1e-4)


def test_wide_along_rows_keeps_sigma_x_on_column_axis():
    f = fit_gaussian(gaussian((64, 48), (32, 24), sigma_x=3.0, sigma_y=8.0))
    assert f.sigma_x == pytest.approx(3.0, rel=1e-3)
    assert f.sigma_y == pytest.approx(8.0, rel=1e-3)
    assert f.rotation == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("theta", [0.4, -0.4, 0.7])
def test_recovers_rotation_and_both_sigmas(theta):
    f = fit_gaussian(gaussian((64, 64), (31.0, 33.0), 9.0, 4.0, theta=theta))
    assert f.rotation == pytest.approx(theta, abs=1e-4)
    assert f.sigma_x == pytest.approx(9.0, rel=1e-3)
    assert f.sigma_y == pytest.approx(4.0, rel=1e-3)


def test_rotation_beyond_quarter_turn_is_normalised_by_swapping_axes():
    f = fit_gaussian(gaussian((64, 64), (32.0, 32.0), 9.0, 4.0, theta=1.2))
    assert f.rotation == pytest.approx(1.2 - math.pi / 2, abs=1e-4)
    assert f.sigma_x == pytest.approx(4.0, rel=1e-3)
    assert f.sigma_y == pytest.approx(9.0, rel=1e-3)


def test_recovers_constant_offset():
    f = fit_gaussian(gaussian((40, 40), (20.5, 19.0), 4.0, 6.0, amplitude=2.0, offset=0.7))
    assert f.offset == pytest.approx(0.7, rel=1e-3)
    assert f.amplitude == pytest.approx(2.0, rel=1e-3)


def test_without_offset_reports_zero_offset():
    f = fit_gaussian(gaussian((32, 32), (16, 16), 4.0, 4.0), with_offset=False)
    assert f.offset == 0.0
    assert f.sigma == pytest.approx(4.0, rel=1e-3)


def test_r_squared_is_one_on_exact_gaussian():
    f = fit_gaussian(gaussian((32, 32), (15.2, 16.8), 3.0, 5.0, theta=0.2))
    assert f.r_squared == pytest.approx(1.0, abs=1e-9)


def test_r_squared_lower_with_noise():
    clean = gaussian((32, 32), (16, 16), 4.0, 4.0)
    noisy = clean + np.random.default_rng(0).normal(0.0, 0.2, clean.shape)
    f = fit_gaussian(noisy)
    assert f.converged
    assert 0.0 < f.r_squared < 0.9


@pytest.mark.parametrize(
    "m, reason",
    [
        (np.zeros((8, 8)), "all zero"),
        (np.full((8, 8), np.nan), "contains NaN/Inf"),
        (np.full((8, 8), 3.0), "constant map"),
        (np.array([[1.0]]), "constant map"),
        (np.zeros((0, 0)), "empty map"),
    ],
)
def test_degenerate_maps_return_reason_without_raising(m, reason):
    f = fit_gaussian(m)
    assert f.degenerate == reason
    assert not f.converged
    assert np.isnan(f.sigma_x) and np.isnan(f.r_squared)


def test_tiny_non_constant_map_is_degenerate():
    f = fit_gaussian(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert f.degenerate is not None and "too few pixels" in f.degenerate
    assert not f.converged


def test_nan_inside_otherwise_good_map_is_degenerate():
    m = gaussian((16, 16), (8, 8), 3.0, 3.0)
    m[0, 0] = np.inf
    assert fit_gaussian(m).degenerate == "contains NaN/Inf"


def test_to_dict_is_json_safe_and_frozen():
    f = fit_gaussian(gaussian((32, 32), (16, 16), 4.0, 4.0))
    d = f.to_dict()
    assert set(d) == {
        "amplitude",
        "center_row",
        "center_col",
        "sigma_x",
        "sigma_y",
        "rotation",
        "offset",
        "r_squared",
        "converged",
        "degenerate",
    }
    assert json.loads(json.dumps(d))["sigma_x"] == pytest.approx(4.0, rel=1e-3)
    json.dumps(GaussianFit.failed("all zero").to_dict())
    with pytest.raises(AttributeError):
        f.sigma_x = 1.0


@pytest.mark.parametrize("scale", [1e-170, 1e-300, 1e200])
def test_a_tiny_or_huge_map_fits_like_the_unit_map_and_never_raises(scale):
    rows, cols = np.indices((21, 21))
    g = np.exp(-((rows - 10.0) ** 2 + (cols - 10.0) ** 2) / 20.0)
    fit = fit_gaussian(g * scale)
    assert fit.degenerate is None and fit.r_squared > 0.999
    assert fit.sigma == pytest.approx(fit_gaussian(g).sigma, rel=1e-6)
    assert fit.amplitude == pytest.approx(scale, rel=1e-6)


def test_a_map_below_the_smallest_normal_float_is_degenerate_not_an_error():
    m = np.zeros((9, 9))
    m[4, 4] = 1e-310
    assert "vanishing map" in fit_gaussian(m).degenerate
