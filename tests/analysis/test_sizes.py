"""The size-metric registry: each registered metric's columns, interval kind and ``erf_size``
method, and what registering a new one carries into a job's metrics and intervals."""

import numpy as np
import pytest
from scipy.signal import convolve2d

from erf.analysis import sizes
from erf.analysis.metrics import luo_size, mass_radius, moment_sigma
from erf.analysis.sizes import erf_size
from erf.analysis.summary import CI_KEYS, JACKKNIFE_KEYS, erf_metrics
from erf.result import ERFResult


def uniform_stack_map(n: int, k: int, size: int = 0) -> np.ndarray:
    """The n-fold convolution of a k x k box (a uniform-weight stack's ERF), optionally
    centred in a size x size frame."""
    box = np.ones((k, k))
    m = box
    for _ in range(n - 1):
        m = convolve2d(m, box)
    if size:
        frame = np.zeros((size, size))
        start = (size - m.shape[0]) // 2
        frame[start : start + m.shape[0], start : start + m.shape[1]] = m
        m = frame
    return m


def test_erf_size_dispatches_to_each_method():
    m = uniform_stack_map(6, 3)
    sr, sc = moment_sigma(m)
    assert erf_size(m) == luo_size(m)
    assert erf_size(m, method="moment") == pytest.approx(np.sqrt(sr * sc))
    assert erf_size(m, method="mass", fraction=0.9) == mass_radius(m, fraction=0.9)


def test_erf_size_rejects_unknown_method_naming_allowed_ones():
    with pytest.raises(
        ValueError, match="unknown method 'area'; allowed: luo, robust, moment, mass"
    ):
        erf_size(np.ones((3, 3)), method="area")


def test_erf_size_rejects_non_2d_input():
    with pytest.raises(ValueError, match="2-D"):
        erf_size(np.ones((2, 3, 3)))


def test_the_registered_metrics_write_the_documented_columns_in_order():
    columns = [c for m in sizes.size_metrics_registered() for c in m.columns]
    assert columns == [
        "erf_size", "erf_size_robust", "moment_sigma_row", "moment_sigma_col",
        "mass_radius_50", "mass_radius_95",
        "area_ratio_20", "area_ratio_30", "area_ratio_50", "area_ratio_99", "participation_size",
    ]  # fmt: skip


def test_interval_keys_follow_from_each_metrics_declared_interval():
    assert CI_KEYS == (
        "erf_size", "erf_size_robust", "erf_trf_ratio", "moment_sigma_row",
        "moment_sigma_col", "mass_radius_50", "mass_radius_95", "fit_r2", "sigma_x", "sigma_y",
    )  # fmt: skip
    assert JACKKNIFE_KEYS[:2] == ("moment_sigma_row", "moment_sigma_col")
    assert not any(k.startswith("area_ratio") for k in CI_KEYS)


def test_a_registration_without_what_its_interval_needs_is_refused():
    with pytest.raises(ValueError, match="count_band interval needs band"):
        sizes.size_metric("x", {"x": "x"}, interval="count_band")
    with pytest.raises(ValueError, match="say why"):
        sizes.size_metric("x", {"x": "x"}, interval=None)
    with pytest.raises(ValueError, match="interval must be one of"):
        sizes.size_metric("x", {"x": "x"}, interval="bayes")
    with pytest.raises(ValueError, match="already registered"):
        sizes.size_metric("luo2", {"erf_size": "x"}, interval="bootstrap")(lambda m, c: {})


def test_a_new_metric_is_one_entry_and_reaches_metrics_and_intervals(monkeypatch):
    """Register a metric (the peak value's share of the total) in the test: erf_metrics
    reports it and bootstraps it over input groups with no other change."""
    monkeypatch.setattr(sizes, "_REGISTRY", dict(sizes._REGISTRY))
    share = lambda m, c: {"peak_share": float(m[c] / m.sum())}  # noqa: E731
    sizes.size_metric("peak_share", {"peak_share": "peak share"}, interval="bootstrap")(share)
    rng = np.random.default_rng(0)
    truth = uniform_stack_map(4, 3, size=15)
    groups = truth * rng.exponential(size=(8, 15, 15)) * 4
    result = ERFResult(
        groups.sum(0), (groups**2).sum(0), 32, (1, 15, 15), None, (1, 15, 15), (7, 7), None,
        "abs", groups=groups, group_n=np.full(8, 4),
    )  # fmt: skip
    row = erf_metrics(result, bootstrap=50)
    assert row["peak_share"] == pytest.approx(result.map[7, 7] / result.map.sum())
    low, high = row["peak_share_ci_low"], row["peak_share_ci_high"]
    assert low <= row["peak_share"] <= high and high - low > 0
    assert "peak_share" in sizes.interval_columns("bootstrap")
    assert "peak_share" in sizes.measure_kind("bootstrap", truth, (7, 7))


def test_participation_size_of_a_uniform_box_is_its_side_and_of_a_gaussian_2_sqrt_pi_sigma():
    box = np.zeros((21, 21))
    box[5:12, 3:10] = 2.5
    assert sizes.participation_size(box) == pytest.approx(7.0)
    rows, cols = np.indices((121, 121))
    gauss = np.exp(-((rows - 60) ** 2 + (cols - 60) ** 2) / (2 * 6.0**2))
    assert sizes.participation_size(gauss) == pytest.approx(2 * np.sqrt(np.pi) * 6.0, rel=1e-9)
    assert erf_size(gauss, method="participation") == sizes.participation_size(gauss)


def test_participation_size_ignores_negative_values_and_is_nan_without_mass():
    signed = np.zeros((9, 9))
    signed[2:5, 2:5] = 1.0
    signed[7, 7] = -50.0
    assert sizes.participation_size(signed) == pytest.approx(3.0)
    assert np.isnan(sizes.participation_size(np.zeros((4, 4))))
