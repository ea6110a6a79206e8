"""The growth study (erf.studies.growth): per-draw rows, growth slopes with intervals over
draws on rows with known answers, the pooled reading's jackknife, and its files on a sweep of
synthetic job folders."""

import csv
import math

import numpy as np
import pytest
from helpers.sweeps import gaussian, write_job

from erf.analysis.metrics import loglog_slope, luo_size
from erf.analysis.null_models import null_map
from erf.io.store import read_json
from erf.studies import get_study, write_study
from erf.studies.growth import growth_stats, per_draw_rows, pooled_growth


def test_per_draw_rows_expands_a_many_draws_job_into_one_row_per_seed():
    job = {"depth": 5, "erf_size": 9.0, "draws": {"seeds": [3, 4], "erf_size": [8.0, 10.0]}}
    single = {"depth": 5, "erf_size": 7.0, "config": {"seed": 11}}
    rows = per_draw_rows([job, single])
    assert [(r["seed"], r["erf_size"]) for r in rows] == [(3, 8.0), (4, 10.0), (11, 7.0)]
    assert all("draws" not in r for r in rows)


def _power_law_rows(exponent, amplitudes, depths):
    """Per-draw rows with erf_size = a_seed * depth**exponent and TRF = 2 * depth + 1."""
    return [
        {
            "init": "random",
            "depth": d,
            "seed": seed,
            "erf_size": a * d**exponent,
            "trf_size": 2 * d + 1,
            "erf_trf_ratio": a * d**exponent / (2 * d + 1),
        }
        for seed, a in enumerate(amplitudes)
        for d in depths
    ]


def test_growth_slopes_of_exact_power_laws_are_the_exponent_with_a_zero_width_interval():
    rows = _power_law_rows(0.5, [1.0, 1.3, 0.8, 1.1], [5, 10, 20, 40])
    (group,) = growth_stats(rows, group_by=("init",))
    assert group["erf_size_slope"] == pytest.approx(0.5)
    assert group["erf_size_slope_low"] == pytest.approx(0.5)
    assert group["erf_size_slope_high"] == pytest.approx(0.5)
    assert group["erf_size_slope_draws"] == 4
    assert group["n_draws"] == [4, 4, 4, 4]
    assert group["erf_size"][0] == pytest.approx(np.mean([1.0, 1.3, 0.8, 1.1]) * 5**0.5)


def test_growth_slope_interval_covers_the_spread_of_per_draw_slopes():
    rows = _power_law_rows(0.5, [1.0], [5, 10, 20]) + [
        {**r, "seed": 1, "erf_size": r["depth"] ** 0.6}
        for r in _power_law_rows(0, [1.0], [5, 10, 20])
    ]
    (group,) = growth_stats(rows, group_by=("init",))
    half = 12.706204736174698 * 0.1 / math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(n)
    assert group["erf_size_slope_low"] == pytest.approx(0.55 - half)
    assert group["erf_size_slope_high"] == pytest.approx(0.55 + half)


def test_pooled_growth_sizes_the_pooled_maps_and_jackknifes_the_slope_over_draws():
    rng = np.random.default_rng(1)
    xs, stacks, trf = [2, 4, 8], [], []
    for n in xs:
        m = np.pad(null_map(n, 3, "sqrt_box"), 4)
        stacks.append(m * rng.uniform(0.5, 1.5, size=(6, *m.shape)))  # per-draw noise
        trf.append(1 + 2 * n)
    out = pooled_growth(stacks, xs, trf, groups=3)
    sizes = [luo_size(s.mean(axis=0)) for s in stacks]
    assert out["erf_size"] == sizes
    assert out["erf_size_slope"] == pytest.approx(loglog_slope(xs, sizes)[0])
    assert out["erf_size_slope_low"] <= out["erf_size_slope"] <= out["erf_size_slope_high"]
    assert out["erf_size_slope_groups"] == 3


def test_the_growth_files_hold_each_group_its_pooled_reading_and_the_null_models(tmp_path):
    for i, (init, depth) in enumerate(
        (("uniform", 2), ("uniform", 4), ("random", 2), ("random", 4))
    ):
        maps = [gaussian(21, 1.0 + 0.5 * depth + 0.1 * d) for d in range(3)]
        draws = {"seeds": [0, 1, 2], "erf_size": [2.0 * depth + d for d in range(3)]}
        write_job(tmp_path, f"{i}_{init}_d{depth}", maps, init=init, depth=depth,
                  kernel_size=3, seed=0, erf_size=2.0 * depth, trf_size=2.0 * depth + 1,
                  erf_trf_ratio=2.0 * depth / (2 * depth + 1), draws=draws)  # fmt: skip
    text = write_study(tmp_path, "growth", x="depth", group_by=["init"])
    assert set(get_study("growth").files) <= {p.name for p in tmp_path.iterdir()}
    growth = read_json(tmp_path / "growth.json")
    assert [g["init"] for g in growth["groups"]] == ["random", "uniform"]
    assert all(g["xs"] == [2, 4] and "pooled" in g for g in growth["groups"])
    assert [n["model"] for n in growth["null_models"]] == ["box", "sqrt_box"]
    with open(tmp_path / "growth_slopes.csv") as f:
        groups = [r["group"] for r in csv.DictReader(f)]
    assert groups == ["random", "uniform", "null model: box", "null model: sqrt_box"]
    assert text.splitlines()[0].startswith("init ") and "(3 draws)" in text
