"""A job's metrics: honest flags for degenerate maps, poor fits and clipped TRFs."""

import numpy as np

from erf.analysis.summary import erf_metrics
from erf.result import ERFResult
from erf.rf.theory import theoretical_rf


def _result(erf_map, n_nonfinite=0):
    m = np.asarray(erf_map, dtype=np.float64)
    h, w = m.shape
    return ERFResult(
        total=m.copy(),
        total_sq=m**2,
        n_samples=1,
        input_shape=(1, h, w),
        target=None,
        target_shape=(1, h, w),
        position=(h // 2, w // 2),
        channel=None,
        reduce="abs",
        n_nonfinite=n_nonfinite,
    )


def _gaussian(size=41, sigma=4.0):
    r = np.arange(size) - size // 2
    return np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))


def test_an_all_zero_map_is_degenerate_with_a_reason_and_no_size_or_fit():
    metrics = erf_metrics(_result(np.zeros((21, 21))))
    assert metrics["degenerate"] == "all zero"
    assert np.isnan(metrics["erf_size"]) and np.isnan(metrics["sigma_x"])
    assert "fit" not in metrics


def test_a_map_the_probe_knows_to_be_rounding_noise_gets_no_size_ratio_or_interval():
    # ConvNeXt's stem seeded on every channel: a Gaussian-looking map of rounding noise
    result = _result(_gaussian() * 1e-9)
    result.meta["noise_only"] = "the target is a LayerNorm over the channels ..."
    trf = theoretical_rf([(3, 1, 1)] * 4, input_shape=(41, 41))
    metrics = erf_metrics(result, trf)
    assert metrics["degenerate"].startswith("rounding noise only: the target is a LayerNorm")
    assert np.isnan(metrics["erf_size"]) and np.isnan(metrics["erf_trf_ratio"])
    assert "fit" not in metrics


def test_a_gaussian_map_has_a_good_fit_and_no_flags():
    metrics = erf_metrics(_result(_gaussian()))
    assert metrics["degenerate"] is None and metrics["fit_problem"] is None
    assert abs(metrics["sigma_x"] - 4.0) < 1e-3 and metrics["fit_r2"] > 0.999


def test_a_fit_below_the_r2_threshold_is_flagged_as_not_a_size():
    square = np.zeros((41, 41))
    square[10:31, 10:31] = 1.0  # a box, not a Gaussian
    metrics = erf_metrics(_result(square), r2_min=0.95)
    assert metrics["fit_r2"] < 0.95
    assert metrics["fit_problem"].startswith("poor Gaussian fit")


def test_a_trf_larger_than_the_input_is_flagged_as_clipped():
    trf = theoretical_rf([(3, 1, 1)] * 15)  # 31 x 31
    assert erf_metrics(_result(_gaussian(size=41)), trf)["trf_clipped"] is False
    assert erf_metrics(_result(_gaussian(size=25)), trf)["trf_clipped"] is True


def test_skipped_nonfinite_samples_are_counted_in_the_metrics():
    assert erf_metrics(_result(_gaussian(), n_nonfinite=3))["n_nonfinite"] == 3


def test_a_trf_that_varies_by_unit_reports_the_probed_units_own_box():
    from torch import nn

    # adaptive pooling 41 -> 6 does not divide: windows of 7 and 8 pixels alternate
    model = nn.Sequential(nn.AdaptiveAvgPool2d(6))
    trf = theoretical_rf(model, input_shape=(1, 41, 41))
    assert trf.varies_by_unit and trf.size_range == ((7, 8), (7, 8))
    result = _result(_gaussian(size=41))
    result = ERFResult(**{**result.__dict__, "target_shape": (1, 6, 6), "position": (0, 1)})
    metrics = erf_metrics(result, trf, bootstrap=0)
    (r0, r1), (c0, c1) = trf.interval((0, 1))  # rows [0, 6], cols [6, 13]
    assert (metrics["trf_rows"], metrics["trf_cols"]) == (r1 - r0 + 1, c1 - c0 + 1) == (7, 8)
    assert metrics["trf_varies_by_unit"] is True
