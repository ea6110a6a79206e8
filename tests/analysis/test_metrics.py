import numpy as np
import pytest
import torch

from erf import ConvStack, measure_erf, theoretical_rf
from erf.analysis.metrics import (
    area_ratios,
    erf_center,
    is_degenerate,
    loglog_slope,
    luo_size,
    mass_radius,
    moment_sigma,
    radial_mass,
    robust_luo_size,
)
from erf.analysis.sizes import erf_size
from erf.analysis.summary import erf_metrics
from erf.result import ERFResult


def uniform_stack_map(n: int, k: int) -> np.ndarray:
    """2-D ERF of n stride-1 k x k all-equal conv layers: outer product of n-fold box conv."""
    line = np.ones(1)
    for _ in range(n):
        line = np.convolve(line, np.ones(k))
    return np.outer(line, line)


@pytest.mark.parametrize("n, expected", [(5, 8.31), (10, 11.70), (20, 16.16), (40, 22.74)])
def test_luo_size_matches_published_uniform_k3_values(n, expected):
    assert luo_size(uniform_stack_map(n, 3)) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("n, k", [(1, 3), (5, 3), (10, 3), (4, 5), (7, 7), (3, 2)])
def test_moment_variance_of_uniform_stack_is_n_k2_minus_1_over_12(n, k):
    sr, sc = moment_sigma(uniform_stack_map(n, k))
    expected = n * (k**2 - 1) / 12
    assert sr**2 == pytest.approx(expected, rel=1e-9)
    assert sc**2 == pytest.approx(expected, rel=1e-9)


def test_moment_sigma_about_given_center_includes_offset():
    m = np.zeros((5, 5))
    m[2, 3] = 1.0
    assert moment_sigma(m) == (0.0, 0.0)
    assert moment_sigma(m, center=(2, 2)) == (0.0, 1.0)


def test_moment_sigma_clips_negative_values():
    m = np.zeros((5, 5))
    m[2, 2] = 1.0
    m[0, 0] = -5.0
    assert moment_sigma(m) == (0.0, 0.0)


def test_moment_sigma_nan_for_zero_mass():
    assert all(np.isnan(moment_sigma(np.zeros((4, 4)))))


def test_luo_size_single_pixel_is_one():
    assert luo_size(np.array([[3.0]])) == 1.0


def test_luo_size_nan_for_zero_or_nonfinite_centre():
    m = np.ones((5, 5))
    m[2, 2] = 0.0
    assert np.isnan(luo_size(m))
    m[2, 2] = np.nan
    assert np.isnan(luo_size(m))


def test_luo_size_uses_given_center():
    m = np.zeros((6, 6))
    m[1, 1] = 1.0
    assert np.isnan(luo_size(m))
    assert luo_size(m, center=(1, 1)) == 1.0


def test_mass_radius_of_delta_is_zero():
    m = np.zeros((9, 9))
    m[4, 4] = 1.0
    assert mass_radius(m) == 0.0
    assert mass_radius(m, fraction=1.0) == 0.0


def test_mass_radius_of_uniform_disk_matches_radius():
    radius = 20.0
    rows, cols = np.indices((101, 101))
    m = (np.hypot(rows - 50, cols - 50) <= radius).astype(float)
    assert mass_radius(m, fraction=1.0) == pytest.approx(radius, abs=0.5)
    # A pixel is wholly inside at r = its distance and enters from r - 1: the disk of radius r
    # holds about pi (r + 1/2)^2 pixels, so a quarter of the pi 20^2 is reached at 10 - 1/2.
    assert mass_radius(m, fraction=0.25) == pytest.approx(radius / 2 - 0.5, abs=0.1)


def test_mass_radius_moves_continuously_with_the_map_between_pixel_distances():
    m = np.zeros((9, 9))
    m[4, 4], m[4, 5] = 1.0, 1.0  # half the mass at the centre, half at distance 1
    radii = [mass_radius(m, f) for f in (0.5, 0.625, 0.75, 1.0)]
    assert radii == pytest.approx([0.0, 0.25, 0.5, 1.0])


def test_mass_radius_is_monotone_in_fraction():
    m = uniform_stack_map(8, 3)
    radii = [mass_radius(m, fraction=f) for f in np.linspace(0.0, 1.0, 21)]
    assert all(a <= b for a, b in zip(radii, radii[1:]))


def test_mass_radius_nan_for_zero_mass():
    assert np.isnan(mass_radius(np.zeros((4, 4))))


def test_loglog_slope_recovers_exact_power_law():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    slope, intercept, se = loglog_slope(x, 3 * x**0.5)
    assert slope == pytest.approx(0.5, abs=1e-12)
    assert intercept == pytest.approx(np.log(3), abs=1e-12)
    assert se == pytest.approx(0.0, abs=1e-12)


def test_loglog_slope_ignores_nonpositive_and_nonfinite_pairs():
    x = np.array([0.0, -1.0, 1.0, 2.0, 4.0, np.nan, 8.0])
    y = 2 * np.where(x > 0, x, 1.0) ** -0.43
    y[4] = -1.0  # drops x=4
    slope, _, _ = loglog_slope(x, y)
    assert slope == pytest.approx(-0.43, abs=1e-12)


def test_loglog_slope_standard_error_nan_below_three_points():
    slope, _, se = loglog_slope([1.0, 10.0], [2.0, 20.0])
    assert slope == pytest.approx(1.0)
    assert np.isnan(se)


def test_loglog_slope_standard_error_positive_with_scatter():
    _, _, se = loglog_slope([1.0, 2.0, 4.0, 8.0], [1.0, 2.2, 3.7, 8.5])
    assert se > 0


@pytest.mark.parametrize(
    "m, reason",
    [
        (np.zeros((0, 3)), "empty map"),
        (np.array([[1.0, np.nan]]), "contains NaN/Inf"),
        (np.array([[1.0, np.inf]]), "contains NaN/Inf"),
        (np.zeros((3, 3)), "all zero"),
        (np.full((3, 3), 2.5), "constant map"),
    ],
)
def test_is_degenerate_gives_reason(m, reason):
    assert is_degenerate(m) == reason


def test_is_degenerate_none_for_usable_map():
    assert is_degenerate(uniform_stack_map(3, 3)) is None


def _replknet_side_by_hand(data, t):
    """Independent transcription of the published loop on an already-scaled map."""
    h, w = data.shape
    for i in range(1, h // 2):
        if data[h // 2 - i : h // 2 + 1 + i, w // 2 - i : w // 2 + 1 + i].sum() / data.sum() > t:
            return (2 * i + 1) ** 2 / (h * w)
    return float("nan")


def test_area_ratios_follow_replknets_log_scaling_and_growing_square():
    rng = np.random.default_rng(0)
    m = np.outer(np.hanning(41), np.hanning(41)) * 500 + rng.random((41, 41))
    scaled = np.log10(m + 1)
    scaled /= scaled.max()
    ratios = area_ratios(m)
    assert set(ratios) == {0.2, 0.3, 0.5, 0.99}
    for t, r in ratios.items():
        assert r == pytest.approx(_replknet_side_by_hand(scaled, t), nan_ok=True)
    assert ratios[0.2] <= ratios[0.3] <= ratios[0.5]
    assert np.isnan(ratios[0.99])  # the noise floor keeps 1 % of the mass outside any square


def test_area_ratio_of_a_uniform_square_block_is_its_area_fraction():
    m = np.zeros((21, 21))
    m[8:13, 8:13] = 3.0  # a 5x5 block: only the 5x5 square holds everything
    assert area_ratios(m, (0.99,))[0.99] == pytest.approx(25 / 441)


def test_area_ratios_are_nan_for_an_all_zero_map():
    assert all(np.isnan(v) for v in area_ratios(np.zeros((9, 9))).values())


def test_radial_mass_of_a_delta_is_one_at_radius_zero():
    m = np.zeros((7, 7))
    m[3, 3] = 2.0
    radii, frac = radial_mass(m)
    assert radii[0] == 0 and frac[0] == 1.0 and np.all(frac == 1.0)


def test_radial_mass_counts_pixels_by_ceiled_distance_and_ends_at_one():
    m = np.ones((5, 5))
    radii, frac = radial_mass(m)
    # distances from (2, 2): 0 (1 px), 1 (4 px), sqrt2 -> 2 (4 px), 2 (4 px), sqrt5 -> 3 (8 px),
    # sqrt8 -> 3 (4 px)
    np.testing.assert_allclose(frac, np.cumsum([1, 4, 8, 12]) / 25)
    assert radii.tolist() == [0, 1, 2, 3]


# --- area ratios on non-square maps, against RepLKNet's get_rectangle on square ones --------


def _replknet_ratios(m: np.ndarray, thresholds=(0.2, 0.3, 0.5, 0.99)) -> dict:
    """Oracle: RepLKNet's erf/analyze_erf.py as they wrote it (square maps): log10(x + 1),
    divide by the max, then get_rectangle's centred square grown from i = 1 to h // 2 - 1."""
    data = np.log10(m + 1)
    data = data / np.max(data)
    h, w = data.shape
    out = {}
    for thresh in thresholds:
        out[thresh] = float("nan")
        for i in range(1, h // 2):
            selected = data[h // 2 - i : h // 2 + 1 + i, w // 2 - i : w // 2 + 1 + i]
            if np.sum(selected) / np.sum(data) > thresh:
                out[thresh] = (i * 2 + 1) / h * (i * 2 + 1) / w
                break
    return out


@pytest.mark.parametrize("side", [31, 32, 64, 97])
def test_area_ratios_on_square_maps_are_replknets(side):
    rng = np.random.default_rng(side)
    rows, cols = np.indices((side, side))
    blob = np.exp(-((rows - side // 2) ** 2 + (cols - side // 2) ** 2) / (2 * (side / 6) ** 2))
    for m in (blob * 50, blob * 50 * rng.random((side, side)), rng.random((side, side))):
        got, want = area_ratios(m), _replknet_ratios(m)
        assert got.keys() == want.keys()
        for t in want:
            assert got[t] == pytest.approx(want[t], rel=1e-12, nan_ok=True), t


@pytest.mark.parametrize("shape", [(224, 112), (112, 224), (224, 224), (31, 90), (9, 9)])
def test_area_ratios_stay_fractions_of_the_map_and_a_uniform_map_gives_its_threshold(shape):
    """Uniform map: the share of the total inside a window is its share of the area, so the
    ratio is the smallest window area above t (never above 1: 1.98 before, on 224 x 112)."""
    h, w = shape
    ratios = area_ratios(np.ones(shape))
    side = 2 * (max(h, w) // 2 - 1) + 1  # RepLKNet's largest square
    largest = min(side, h) * min(side, w) / (h * w)
    for t, ratio in ratios.items():
        if largest <= t:  # not even the largest window holds more than t
            assert np.isnan(ratio)
            continue
        assert 0 < ratio <= 1
        assert t < ratio <= t + 2 * (h + w + 2) / (h * w) + 1e-12  # one growth step above t
    rng = np.random.default_rng(0)
    assert all(0 <= v <= 1 for v in area_ratios(rng.random(shape)).values() if not np.isnan(v))


# --- one centre -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,unit,want",
    [
        ((224, 224), None, (112, 112)),
        ((224, 224), (111.5, 111.5), (112, 112)),  # the geometric centre of an even map
        ((97, 96), (48.0, 47.5), (48, 48)),
        ((30, 30), (14.49, 3.0), (14, 3)),
        ((16, 16), (-3.0, 40.0), (0, 15)),  # clipped to the map
    ],
)
def test_erf_center_rounds_the_units_place_half_up_else_takes_h_over_2(shape, unit, want):
    assert erf_center(shape, unit) == want
    assert erf_center(np.zeros(shape), unit) == want


def test_python_api_and_the_cli_metrics_use_the_same_centre_on_the_same_map():
    """A pooled stack on a 30 x 30 input: the probed unit (7, 7) of the 15 x 15 grid sits at
    input (14.5, 14.5), between pixels; metrics.json (erf_metrics with the TRF) and the
    Python API on the result or the bare map must all use pixel (15, 15)."""
    model = ConvStack(3, 3, channels=2, activation="relu", init="random", pool_at=(0,))
    result = measure_erf(model, (2, 30, 30), n_samples=8, batch_size=8, device="cpu",
                         dtype=torch.float64, progress=False)  # fmt: skip
    cli = erf_metrics(result, theoretical_rf(model, (2, 30, 30)), bootstrap=0)
    assert cli["unit_in_input"] == [14.5, 14.5]
    assert (cli["center_row"], cli["center_col"]) == erf_center(result) == (15, 15)
    for m in (result, result.map):
        assert erf_size(m) == cli["erf_size"]
        assert mass_radius(m, 0.5) == cli["mass_radius_50"]
        assert robust_luo_size(m) == cli["erf_size_robust"]
        assert area_ratios(m)[0.5] == cli["area_ratio_50"]
    np.testing.assert_array_equal(radial_mass(result)[1], cli["radial_mass"])
    # Off-centre units: the result knows where its unit is, the bare map cannot.
    moved = ERFResult(**{**vars(result), "meta": {**result.meta, "unit_in_input": [9.5, 20.2]}})
    assert erf_center(moved) == (10, 20)
    assert luo_size(moved) == luo_size(result.map, center=(10, 20))


# --- a size robust to one spiky centre pixel ----------------------------------------------


def test_robust_size_barely_moves_when_one_huge_centre_pixel_is_added():
    rows, cols = np.indices((61, 61))
    gauss = np.exp(-((rows - 30) ** 2 + (cols - 30) ** 2) / (2 * 6.0**2))
    spiked = gauss.copy()
    spiked[30, 30] = 1e3
    # Oracle for the smooth map: pixels above 4.55 % of the peak, a disk of radius
    # 6 * sqrt(2 ln(1 / 0.0455)) = 14.9 px, area ~ 700 px, side ~ 26.4.
    assert luo_size(gauss) == pytest.approx(np.sqrt(np.pi * 2 * 36 * np.log(1 / 0.0455)), rel=0.02)
    assert luo_size(spiked) == 1.0  # only the spike is above 4.55 % of 1e3
    assert robust_luo_size(gauss) == pytest.approx(luo_size(gauss), rel=0.02)
    assert robust_luo_size(spiked) == robust_luo_size(gauss)
    assert erf_size(spiked, method="robust") == robust_luo_size(spiked)
