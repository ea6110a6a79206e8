"""Shift vs growth of ERF maps, against exact oracles: a shifted Gaussian has shift = the
offset and the same sizes about its own centre; a spread Gaussian grows and does not move."""

import math

import numpy as np
import pytest
from scipy import stats

from erf.analysis.shift import (
    KEYS,
    shift_growth,
    shift_growth_change,
    shift_growth_stats,
    vanished,
)

N = 121  # odd grid, unit at (60, 60); Gaussians with sigma <= 6 are far from the border


def gaussian(sigma: float, row: float = 60.0, col: float = 60.0, n: int = N) -> np.ndarray:
    r, c = np.indices((n, n), dtype=np.float64)
    return np.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * sigma**2))


UNIT = (60.0, 60.0)


@pytest.mark.parametrize("offset", [(0, 7), (-12, 5), (9, -9)])
def test_a_shifted_gaussian_shifts_by_its_offset_and_does_not_grow_about_its_centre(offset):
    centred = shift_growth(gaussian(3.0), UNIT)
    moved = shift_growth(gaussian(3.0, 60 + offset[0], 60 + offset[1]), UNIT)
    assert moved["shift_row"] == pytest.approx(offset[0], abs=1e-9)
    assert moved["shift_col"] == pytest.approx(offset[1], abs=1e-9)
    assert moved["shift_norm"] == pytest.approx(math.hypot(*offset), abs=1e-9)
    change = shift_growth_change(centred, moved)
    for key in ("luo_size_own", "moment_sigma_own", "mass_radius_50_own"):
        assert change[key] == pytest.approx(0.0, abs=1e-9), key


def test_the_centred_gaussian_has_no_shift_and_its_known_sizes():
    g = shift_growth(gaussian(4.0), UNIT)
    assert g["shift_norm"] == pytest.approx(0.0, abs=1e-12)
    # the sampled Gaussian's variance is sigma² (Poisson summation; error ~exp(-2 pi² sigma²))
    assert g["moment_sigma_own"] == pytest.approx(4.0, rel=1e-9)
    assert g["moment_sigma_unit"] == pytest.approx(4.0, rel=1e-9)
    # half the mass of a 2-D Gaussian lies within sigma * sqrt(2 ln 2) = 4.71; pixel steps
    assert abs(g["mass_radius_50_own"] - 4.0 * math.sqrt(2 * math.log(2))) < 0.6
    # Luo: the disk where exp(-r²/2s²) > 0.0455 has radius s·sqrt(2 ln(1/0.0455)); size = √area
    radius = 4.0 * math.sqrt(2 * math.log(1 / (1 - 0.9545)))
    assert abs(g["luo_size_own"] - math.sqrt(math.pi) * radius) < 0.5
    assert g["luo_size_unit"] == g["luo_size_own"]


def test_the_moment_about_the_unit_obeys_the_parallel_axis_theorem():
    sigma, dr, dc = 3.0, -8.0, 5.0
    g = shift_growth(gaussian(sigma, 60 + dr, 60 + dc), UNIT)
    expected = math.sqrt(math.sqrt(sigma**2 + dr**2) * math.sqrt(sigma**2 + dc**2))
    assert g["moment_sigma_unit"] == pytest.approx(expected, rel=1e-9)
    assert g["moment_sigma_own"] == pytest.approx(sigma, rel=1e-9)
    # a shifted map looks larger about the unit: the 50 % disk must reach past the offset
    assert g["mass_radius_50_unit"] > math.hypot(dr, dc) - sigma


def test_a_spread_gaussian_grows_about_both_centres_without_moving():
    change = shift_growth_change(
        shift_growth(gaussian(2.0), UNIT), shift_growth(gaussian(5.0), UNIT)
    )
    assert change["shift_norm"] == pytest.approx(0.0, abs=1e-12)
    assert change["moment_sigma_own"] == pytest.approx(3.0, rel=1e-9)
    assert change["moment_sigma_unit"] == pytest.approx(3.0, rel=1e-9)
    assert change["luo_size_own"] > 5 and change["mass_radius_50_own"] > 2


def test_a_half_pixel_unit_is_measured_from_its_exact_position():
    g = shift_growth(gaussian(3.0, 60.0, 60.0), (59.5, 60.5))
    assert (g["shift_row"], g["shift_col"]) == pytest.approx((0.5, -0.5), abs=1e-9)


def test_a_map_without_mass_gives_nan_and_a_bad_unit_is_refused():
    out = shift_growth(np.zeros((9, 9)), (4, 4))
    assert set(out) == set(KEYS) and all(math.isnan(v) for v in out.values())
    with pytest.raises(ValueError, match="unit must be"):
        shift_growth(gaussian(2.0), (float("nan"), 3.0))
    with pytest.raises(ValueError, match="unit must be"):
        shift_growth(gaussian(2.0), (3.0,))


def _row(task, seed, before_offset, after_offset, before_sigma=3.0, after_sigma=3.0):
    return {
        "task": task,
        "seed": seed,
        "before": shift_growth(gaussian(before_sigma, 60, 60 + before_offset), UNIT),
        "after": shift_growth(gaussian(after_sigma, 60, 60 + after_offset), UNIT),
    }


def test_stats_over_seeds_give_per_seed_values_and_t_intervals():
    offsets = [-10, -20, -30]  # after training the map moved left by 10, 20, 30 px
    rows = [_row("seg", s, 0, off) for s, off in zip((2, 0, 1), offsets)]
    rows.append(_row("cls", 0, 0, 0, 2.0, 4.0))
    (cls, seg) = shift_growth_stats(rows)
    assert seg["task"] == "seg" and seg["seeds"] == [0, 1, 2]
    col = seg["shift_col"]["change"]
    assert col["values"] == pytest.approx([-20, -30, -10], abs=1e-9)
    half = stats.t.ppf(0.975, 2) * 10.0 / math.sqrt(3)  # std of (-20, -30, -10) is 10
    assert col["mean"] == pytest.approx(-20, abs=1e-9)
    assert (col["low"], col["high"]) == pytest.approx((-20 - half, -20 + half), abs=1e-9)
    own = seg["moment_sigma_own"]["change"]
    assert own["values"] == pytest.approx([0, 0, 0], abs=1e-9) and own["n"] == 3
    assert seg["shift_norm"]["before"]["mean"] == pytest.approx(0, abs=1e-9)
    assert cls["moment_sigma_own"]["change"]["values"] == pytest.approx([2.0], rel=1e-9)
    assert math.isnan(cls["moment_sigma_own"]["change"]["low"])  # one seed: no interval


def test_stats_refuse_a_seed_twice_in_one_group_and_a_bad_level():
    rows = [_row("seg", 0, 0, 1), _row("seg", 0, 0, 2)]
    with pytest.raises(ValueError, match="seeds"):
        shift_growth_stats(rows)
    with pytest.raises(ValueError, match="level"):
        shift_growth_stats(rows[:1], level=1.5)


def test_a_map_that_vanished_after_training_is_named_and_a_smaller_one_is_not():
    before = gaussian(3.0)
    assert vanished(before, 0.5 * gaussian(6.0)) is None  # half the peak: a real map
    assert "dead" in vanished(before, 1e-7 * gaussian(3.0, 60, 20))  # numerical dust
    assert "no positive mass" in vanished(before, np.zeros_like(before))
    with pytest.raises(ValueError, match="ratio"):
        vanished(before, before, ratio=0.0)
