"""Statistics of the Luo et al. 2016 studies (erf.analysis.studies), on rows with known answers."""

import math

import numpy as np
import pytest

from erf.analysis.studies import (
    binomial_path_counts,
    centre_profile,
    growth_stats,
    per_draw_rows,
    t_interval,
)


def test_t_interval_of_one_two_three_uses_the_student_t_quantile():
    ci = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2 dof) from tables; sample sd is 1
    assert ci["mean"] == 2.0
    assert ci["low"] == pytest.approx(2.0 - half)
    assert ci["high"] == pytest.approx(2.0 + half)
    assert ci["n"] == 3


def test_t_interval_ignores_non_finite_values_and_has_no_width_for_one_value():
    assert t_interval([float("nan"), None, 4.0]) == {
        "mean": 4.0,
        "low": pytest.approx(float("nan"), nan_ok=True),
        "high": pytest.approx(float("nan"), nan_ok=True),
        "n": 1,
    }


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


def test_binomial_path_counts_sum_to_two_to_the_blocks():
    counts = binomial_path_counts(6)
    assert counts == {0: 1, 1: 6, 2: 15, 3: 20, 4: 15, 5: 6, 6: 1}
    assert sum(counts.values()) == 2**6


def test_centre_profile_is_the_centre_row_scaled_to_one_at_the_centre():
    m = np.outer([1, 2, 1], [1, 4, 2, 1]).astype(float)
    np.testing.assert_allclose(centre_profile(m), [0.5, 2, 1, 0.5])


def test_fit_r2_interval_is_a_jackknife_interval_about_the_bias_corrected_r2():
    from erf.analysis.fit import fit_gaussian
    from erf.analysis.studies import fit_r2_interval

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:21, 0:21]
    g = np.exp(-((rows - 10) ** 2 + (cols - 10) ** 2) / (2 * 3.0**2))
    maps = g + 0.05 * rng.standard_normal((12, 21, 21))
    out = fit_r2_interval(maps, groups=4)
    assert out["fit_r2"] == fit_gaussian(maps.mean(axis=0)).r_squared
    # jackknife by hand: leave out 3 draws at a time
    loo = [fit_gaussian(np.delete(maps, range(3 * i, 3 * i + 3), axis=0).mean(0)).r_squared
           for i in range(4)]  # fmt: skip
    se = np.sqrt(3 / 4 * np.sum((np.array(loo) - np.mean(loo)) ** 2))
    corrected = 4 * out["fit_r2"] - 3 * np.mean(loo)
    assert out["se"] == pytest.approx(se, rel=1e-12) and out["groups"] == 4
    assert out["fit_r2_corrected"] == pytest.approx(corrected, rel=1e-12)
    assert corrected > out["fit_r2"]  # noise lowers a map's R²; the correction adds it back
    assert out["low"] < corrected < out["high"] <= 1
    noisier = fit_r2_interval(g + 0.2 * rng.standard_normal((12, 21, 21)), groups=4)
    assert noisier["fit_r2"] < out["fit_r2"]
    single = fit_r2_interval(maps[:1])
    assert np.isnan(single["low"]) and single["n_draws"] == 1


def test_pooled_growth_sizes_the_pooled_maps_and_jackknifes_the_slope_over_draws():
    from erf.analysis.metrics import loglog_slope, luo_size
    from erf.analysis.null_models import null_map
    from erf.analysis.studies import jackknife, pooled_growth

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
    # jackknife by hand for a scalar statistic: delete one of 3 groups of 2 draws
    j = jackknife(lambda ms: float(ms[0].sum()), [stacks[0]], groups=3)
    loo = [np.delete(stacks[0], [2 * i, 2 * i + 1], axis=0).mean(0).sum() for i in range(3)]
    assert j["se"] == pytest.approx(np.sqrt(2 / 3 * np.sum((loo - np.mean(loo)) ** 2)))
    with pytest.raises(ValueError, match="same number of draws"):
        jackknife(lambda ms: 0.0, [stacks[0], stacks[1][:3]])
