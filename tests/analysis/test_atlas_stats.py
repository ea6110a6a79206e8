"""Per-unit atlas numbers: the centre shift is the centroid minus the TRF centre, sizes and
ERF/TRF come with intervals that cover the noiseless value, and units are placed by region."""

import math
from dataclasses import replace

import numpy as np
import pytest

from erf.analysis.atlas import atlas_row, atlas_summary, mass_outside, region, shape_stats
from erf.analysis.calibration import grouped_result, noisy_samples
from erf.analysis.metrics import luo_size


@pytest.mark.parametrize(
    "unit, expected",
    [((2, 2), "centre"), ((0, 0), "corner"), ((4, 0), "corner"), ((0, 2), "edge"),
     ((1, 1), "interior")],
)  # fmt: skip
def test_region_names_where_a_unit_sits_on_its_map(unit, expected):
    assert region(unit, (5, 5)) == expected


def test_the_shift_of_a_point_mass_is_its_offset_from_the_unit_centre():
    m = np.zeros((6, 6))
    m[2, 4] = 3.0
    stats = shape_stats(m, (1.0, 1.5))
    assert (stats["shift_row"], stats["shift_col"]) == (1.0, 2.5)
    assert stats["shift_norm"] == pytest.approx(math.hypot(1.0, 2.5))
    assert stats["moment_sigma"] == 0.0


def test_mass_outside_counts_the_share_beyond_the_box():
    m = np.zeros((4, 4))
    m[0, 0], m[3, 3] = 1.0, 3.0
    assert mass_outside(m, ((0, 1), (0, 1))) == pytest.approx(0.75)
    assert mass_outside(m, ((-5, 9), (-5, 9))) == 0.0


def _border_unit(n_samples=256):
    """A corner unit whose ERF (a blob at rows/cols 1..3) sits inside its TRF box (-3..3),
    pulled inwards by the border: the truth centroid is (2, 2), the unit centre (0, 0)."""
    truth = np.zeros((9, 9))
    truth[1:4, 1:4] = 1.0
    truth[2, 2] = 4.0
    samples = noisy_samples(truth, n_samples, "half_normal", np.random.default_rng(0))
    meta = {"atlas": {"trf_interval": [[-3, 3], [-3, 3]], "trf_pixels": 16, "pass": 2}}
    result = grouped_result(samples, 16, meta)
    return replace(result, position=(0, 0), target_shape=(1, 9, 9)), truth


def test_a_border_unit_row_has_its_shift_size_and_intervals():
    result, truth = _border_unit()
    row = atlas_row(result)
    assert (row["region"], row["border_distance"], row["pass"]) == ("corner", 0, 2)
    assert (row["unit_in_input_row"], row["unit_in_input_col"]) == (0.0, 0.0)
    assert row["unit_in_input_from"] == "TRF"
    assert row["shift_row_ci_low"] <= 2.0 <= row["shift_row_ci_high"]
    assert row["shift_col_ci_low"] <= 2.0 <= row["shift_col_ci_high"]
    assert (row["peak_row"], row["peak_col"]) == (2, 2)  # the threshold's reference
    assert row["erf_size"] == luo_size(result.map, center=(2, 2))
    assert row["erf_size_ci_low"] <= 3.0 <= row["erf_size_ci_high"]  # 9 pixels above 4.55 %
    assert row["erf_trf_ratio"] == pytest.approx(row["erf_size"] / 4.0)
    assert row["erf_trf_ratio_ci_low"] <= row["erf_trf_ratio"] <= row["erf_trf_ratio_ci_high"]
    assert row["mass_outside_trf"] == pytest.approx(0.0, abs=1e-12)
    assert row["trf_rows"] == row["trf_cols"] == 7


def test_without_groups_there_are_no_intervals_and_an_empty_map_is_degenerate():
    result, _ = _border_unit()
    row = atlas_row(replace(result, groups=None, group_n=None))
    assert math.isnan(row["shift_row_ci_low"]) and math.isfinite(row["shift_row"])
    empty = atlas_row(replace(result, total=np.zeros((9, 9)), groups=None, group_n=None))
    assert empty["degenerate"] and math.isnan(empty["shift_norm"])


def test_the_summary_averages_each_region():
    rows = [
        {"region": "edge", "erf_size": 2.0, "erf_trf_ratio": 0.5, "shift_norm": 1.0,
         "moment_sigma": 1.0},
        {"region": "edge", "erf_size": 4.0, "erf_trf_ratio": 0.7, "shift_norm": float("nan"),
         "moment_sigma": 3.0},
    ]  # fmt: skip
    summary = atlas_summary(rows)
    assert summary == {
        "edge": {"n_units": 2, "erf_size": 3.0, "erf_trf_ratio": 0.6, "shift_norm": 1.0,
                 "moment_sigma": 2.0}
    }  # fmt: skip


def test_without_an_exact_box_the_unit_is_placed_by_the_grid_scale_and_has_no_trf_numbers():
    result, _ = _border_unit()
    row = atlas_row(replace(result, meta={"unit_in_input": [0.5, 1.5]}))
    assert (row["unit_in_input_row"], row["unit_in_input_col"]) == (0.5, 1.5)
    assert row["unit_in_input_from"] == "grid scale"
    assert row["trf_rows"] is None and math.isnan(row["mass_outside_trf"])
    assert row["shift_row"] == pytest.approx(row["centroid_row"] - 0.5)


def test_a_unit_with_no_place_in_the_input_is_refused():
    result, _ = _border_unit()
    with pytest.raises(ValueError, match=r"unit \(0, 0\): no place in the input"):
        atlas_row(replace(result, meta={}))


def test_one_group_of_inputs_gives_no_intervals():
    truth = np.zeros((9, 9))
    truth[2, 2] = 1.0
    samples = noisy_samples(truth, 8, "half_normal", np.random.default_rng(0))
    meta = {"atlas": {"trf_interval": [[-3, 3], [-3, 3]], "trf_pixels": 16, "pass": 0}}
    result = replace(grouped_result(samples, 1, meta), position=(0, 0), target_shape=(1, 9, 9))
    row = atlas_row(result)
    assert math.isfinite(row["erf_size"]) and math.isnan(row["erf_size_ci_low"])
