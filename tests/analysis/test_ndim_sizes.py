"""Sizes and Gaussian fits of sequence [L] and volume [D, H, W] maps (erf.analysis.ndim), and
the job summary of such maps. Oracles: the n-fold box convolution (numpy), whose variance is
n (k² - 1) / 12 per axis; synthetic Gaussians with a known covariance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from erf.analysis import ndim
from erf.analysis.metrics import LUO_FRACTION, luo_size
from erf.analysis.ndim import (
    as_nd_map,
    centre_of_mass,
    fit_gaussian_1d,
    fit_gaussian_nd,
    luo_axis_sizes,
    luo_size_nd,
    moment_sigmas,
    nd_center,
)
from erf.analysis.summary import erf_metrics
from erf.result import ERFResult
from erf.rf.trf import TheoreticalRF


def box(n: int, k: int = 3) -> np.ndarray:
    p = np.ones(1)
    for _ in range(n):
        p = np.convolve(p, np.ones(k))
    return p


def luo_count(profile: np.ndarray) -> int:
    """Luo's count on a 1-D profile, written out: entries above (1 - 0.9545) x the middle."""
    middle = profile[len(profile) // 2]
    return sum(1 for v in profile if v > (1 - 0.9545) * middle)


def test_luo_size_of_a_profile_is_its_count_above_the_threshold():
    for n in (3, 10, 25):
        assert luo_size_nd(box(n)) == luo_count(box(n))


def test_luo_size_per_axis_of_a_separable_volume_is_each_axis_profile_size():
    p, q, r = box(4), box(6), box(9, k=2)[:-1]  # odd lengths, centres at the middles
    volume = np.einsum("i,j,k->ijk", p, q, r)
    assert luo_axis_sizes(volume) == (luo_count(p), luo_count(q), luo_count(r))


def test_luo_size_of_a_volume_is_the_cube_root_of_its_count():
    volume = np.einsum("i,j,k->ijk", box(4), box(4), box(4))
    threshold = (1 - LUO_FRACTION) * volume[4, 4, 4]
    assert luo_size_nd(volume) == pytest.approx(np.count_nonzero(volume > threshold) ** (1 / 3))


def test_luo_size_nd_on_a_2d_map_is_luo_size():
    image = np.outer(box(5), box(7)[1:-1])
    assert luo_size_nd(image) == pytest.approx(luo_size(image))


def test_box_profile_luo_size_grows_as_the_square_root_of_depth():
    # Gaussian limit: count ~ 2 sqrt(2 ln(1 / 0.0455)) sigma, sigma = sqrt(n (k^2 - 1) / 12)
    depths = np.array([16, 64, 256])
    sizes = np.array([luo_size_nd(box(int(n))) for n in depths])
    slope = np.polyfit(np.log(depths), np.log(sizes), 1)[0]
    assert slope == pytest.approx(0.5, abs=0.02)
    limit = 2 * math.sqrt(2 * math.log(1 / (1 - LUO_FRACTION))) * math.sqrt(256 * 8 / 12)
    assert sizes[-1] == pytest.approx(limit, abs=2)


def test_moment_sigmas_of_box_convolutions_are_luos_variance():
    volume = np.einsum("i,j,k->ijk", box(3), box(5), box(8))
    expected = [math.sqrt(n * (3**2 - 1) / 12) for n in (3, 5, 8)]
    np.testing.assert_allclose(moment_sigmas(volume), expected, rtol=1e-12)


def test_fit_recovers_a_3d_gaussian_with_a_full_covariance():
    cov = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, -0.4], [0.5, -0.4, 2.0]])
    grid = np.indices((13, 14, 12)).astype(float) - np.array([6.0, 7.5, 5.0])[:, None, None, None]
    q = np.einsum("i...,ij,j...->...", grid, np.linalg.inv(cov), grid)
    fit = fit_gaussian_nd(2.0 * np.exp(-q / 2) + 0.1)
    np.testing.assert_allclose(fit.covariance, cov, atol=1e-6)
    np.testing.assert_allclose(fit.center, (6.0, 7.5, 5.0), atol=1e-6)
    assert (fit.amplitude, fit.offset, fit.r_squared) == pytest.approx((2.0, 0.1, 1.0))
    assert fit.sigma == pytest.approx(np.linalg.det(cov) ** (1 / 6), rel=1e-6)


def test_fit_recovers_a_1d_gaussian():
    t = np.arange(40)
    fit = fit_gaussian_1d(np.exp(-0.5 * ((t - 17.3) / 3.2) ** 2))
    assert (fit.center[0], fit.sigmas[0]) == pytest.approx((17.3, 3.2), abs=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(9), np.full((4, 4, 4), 2.0), np.r_[1.0, np.nan, 1.0]])
def test_fit_of_a_degenerate_map_reports_why_instead_of_raising(bad):
    fit = fit_gaussian_nd(bad)
    assert fit.degenerate and not fit.converged and math.isnan(fit.r_squared)


def test_centre_rounds_the_unit_half_up_and_defaults_to_the_middle():
    assert nd_center((9, 10, 11)) == (4, 5, 5)
    assert nd_center((10,), unit=(4.5,)) == (5,)


def _result(erf_map: np.ndarray, position: tuple[int, ...]) -> ERFResult:
    return ERFResult(
        total=erf_map, total_sq=erf_map**2, n_samples=1, input_shape=(1, *erf_map.shape),
        target=None, target_shape=(1, *erf_map.shape), position=position, channel=None,
        reduce="abs",
    )  # fmt: skip


def test_summary_of_a_sequence_holds_luo_size_fit_and_trf_ratio():
    profile = np.r_[np.zeros(5), box(6), np.zeros(5)]  # length 23, unit at 11
    trf = TheoreticalRF(size=(13,), stride=(1,), padding=(6,), source="exact")
    row = erf_metrics(_result(profile, (11,)), trf)
    assert row["ndim"] == 1 and row["center"] == [11]
    assert row["erf_size"] == luo_count(box(6))
    assert row["trf_sizes"] == [13] and row["trf_interval"] == [[5, 17]]
    assert row["erf_trf_ratio"] == pytest.approx(luo_count(box(6)) / 13)
    assert row["fit_sigmas"][0] == pytest.approx(math.sqrt(6 * 8 / 12), rel=0.05)


def test_summary_of_a_volume_holds_per_axis_sizes_and_trf_clipping():
    volume = np.einsum("i,j,k->ijk", box(2), box(2), box(2))  # 5 x 5 x 5, unit at (2, 2, 2)
    trf = TheoreticalRF(size=(5, 5, 7), stride=(1, 1, 1), padding=(2, 2, 3), source="exact")
    row = erf_metrics(_result(volume, (2, 2, 2)), trf)
    assert row["erf_size_axes"] == [luo_count(box(2))] * 3
    assert row["trf_interval"] == [[0, 4], [0, 4], [-1, 5]] and row["trf_clipped"]
    assert row["trf_size"] == pytest.approx((5 * 5 * 7) ** (1 / 3))


def test_a_result_is_read_as_its_map():
    profile = np.r_[np.zeros(3), box(4), np.zeros(3)]
    result = _result(profile, (7,))
    assert np.array_equal(as_nd_map(result), profile)
    assert luo_axis_sizes(result) == (luo_count(box(4)),)


@pytest.mark.parametrize("call", [as_nd_map, luo_axis_sizes, moment_sigmas])
def test_an_image_map_is_refused_by_the_sequence_and_volume_metrics(call):
    with pytest.raises(ValueError, match=r"expected a sequence \[L\] or volume \[D, H, W\] map"):
        call(np.ones((4, 4)))


def test_a_centre_without_positive_value_has_no_luo_size():
    dip = np.r_[1.0, 2.0, 0.0, 2.0, 1.0]  # the middle entry is 0
    assert math.isnan(luo_size_nd(dip))
    assert all(math.isnan(v) for v in luo_axis_sizes(dip))


def test_a_map_without_positive_mass_has_no_moments():
    negative = -np.einsum("i,j,k->ijk", box(1), box(1), box(1))
    assert all(math.isnan(v) for v in (*moment_sigmas(negative), *centre_of_mass(negative)))


def test_a_negative_gaussian_fitted_without_offset_has_its_centre_sigma_and_sign():
    """The start cannot come from the moments of a map without positive mass: it is the
    middle of the map, and the fit still finds the Gaussian."""
    t = np.arange(30)
    fit = fit_gaussian_nd(-2.0 * np.exp(-0.5 * ((t - 12.4) / 2.5) ** 2), with_offset=False)
    assert (fit.amplitude, fit.center[0], fit.sigmas[0]) == pytest.approx((-2.0, 12.4, 2.5))
    assert fit.offset == 0.0


def test_a_map_with_fewer_entries_than_parameters_is_not_fitted():
    fit = fit_gaussian_nd(np.r_[0.0, 1.0, 0.0])  # amplitude, centre, sigma, offset: 4
    assert fit.degenerate == "too few entries (3) for 4 parameters"


def test_a_fit_that_runs_out_of_evaluations_reports_no_numbers(monkeypatch):
    monkeypatch.setattr(ndim, "MAX_EVALUATIONS", 1)
    t = np.arange(30)
    fit = fit_gaussian_1d(np.exp(-0.5 * ((t - 12.4) / 2.5) ** 2))
    assert fit.degenerate == "fit did not converge" and math.isnan(fit.center[0])


def test_a_one_d_fit_refuses_a_map_with_more_axes():
    with pytest.raises(ValueError, match=r"expected a profile \[L\], got shape \(3, 3\)"):
        fit_gaussian_1d(np.ones((3, 3)))
