"""The cross-architecture study's statistics: t-intervals over seeds, cells, seed-averaged maps."""

import math

import numpy as np
import pytest

from erf.analysis.cross_arch import (
    cell_stats,
    group_cells,
    mean_map,
    seed_interval,
    trf_is_global,
)


def test_the_interval_is_the_hand_computed_student_t_interval():
    # values 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3,
    # t_{0.975, 3} = 3.182446305 (a t table), half width t * s / sqrt(4)
    half = 3.182446305284263 * math.sqrt(14 / 3) / 2
    got = seed_interval([1.0, 2.0, 3.0, 6.0])
    assert got["n"] == 4
    assert got["mean"] == pytest.approx(3.0)
    assert got["lo"] == pytest.approx(3.0 - half, rel=1e-9)
    assert got["hi"] == pytest.approx(3.0 + half, rel=1e-9)
    assert half == pytest.approx(3.43743, abs=1e-5)  # 3.182446 * 2.160247 / 2


def test_a_90_percent_interval_uses_its_own_quantile():
    # t_{0.95, 2} = 2.919985580; values 0, 1, 2: mean 1, s = 1
    got = seed_interval([0.0, 1.0, 2.0], level=0.9)
    assert got["hi"] - got["mean"] == pytest.approx(2.919985580 / math.sqrt(3), rel=1e-8)


def test_missing_values_are_skipped_and_one_value_has_no_interval():
    assert seed_interval([None, float("nan"), 2.0, 4.0])["n"] == 2
    one = seed_interval([5.0, None])
    assert one["n"] == 1 and one["mean"] == 5.0
    assert math.isnan(one["lo"]) and math.isnan(one["hi"])
    none = seed_interval([])
    assert none["n"] == 0 and math.isnan(none["mean"])
    same = seed_interval([7.0, 7.0, 7.0])
    assert same["lo"] == same["hi"] == 7.0
    with pytest.raises(ValueError, match="level"):
        seed_interval([1.0, 2.0], level=95)


def test_cells_group_jobs_in_order_and_a_global_trf_has_no_size():
    rows = [
        {"label": "A", "inputs": "gaussian", "erf_size": 10.0, "trf_size": 100.0},
        {"label": "B", "inputs": "gaussian", "erf_size": 1.0, "trf_global_from": "blocks.0",
         "trf_size": 64.0, "erf_trf_ratio": 0.1},
        {"label": "A", "inputs": "gaussian", "erf_size": 12.0, "trf_size": 100.0},
    ]  # fmt: skip
    cells = group_cells(rows, ("label", "inputs"))
    assert list(cells) == [("A", "gaussian"), ("B", "gaussian")]
    a = cell_stats(cells[("A", "gaussian")])
    assert a["erf_size"]["mean"] == 11.0 and a["erf_size"]["n"] == 2
    assert a["trf_size"]["lo"] == a["trf_size"]["hi"] == 100.0
    b = cell_stats(cells[("B", "gaussian")])
    assert trf_is_global(rows[1]) and not trf_is_global(rows[0])
    assert b["trf_size"]["n"] == 0 and b["erf_trf_ratio"]["n"] == 0
    assert b["erf_size"]["mean"] == 1.0


def test_the_seed_averaged_map_is_the_mean_and_shapes_must_agree():
    a, b = np.zeros((3, 4)), np.full((3, 4), 2.0)
    np.testing.assert_array_equal(mean_map([a, b]), np.ones((3, 4)))
    with pytest.raises(ValueError, match="shapes"):
        mean_map([a, np.zeros((4, 4))])
    with pytest.raises(ValueError, match="no maps"):
        mean_map([])
