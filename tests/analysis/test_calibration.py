"""The standing coverage check: every interval erf_metrics prints covers its truth at its level
on cases whose truth is exact (a small profile here; the slow profile and the committed table
are experiments/calibration)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.signal import convolve2d

from erf.analysis.bootstrap import bootstrap_intervals
from erf.analysis.calibration import (
    CASES,
    SyntheticCase,
    box_stack_map,
    coverage_rows,
    grouped_result,
    laplace_map,
    noisy_samples,
    simulate,
    truth_metrics,
    verdict,
)
from erf.analysis.fit import fit_gaussian
from erf.analysis.metrics import luo_size
from erf.analysis.summary import CI_KEYS

BOX = SyntheticCase("box_depth4_n64", box_stack_map(4, 3, 21), 64, 16, trf_size=9)
CUSP = SyntheticCase("laplace_n64", laplace_map(2.0, 25), 64, 16)


def test_the_box_truth_is_the_n_fold_convolution_of_the_kernel():
    kernel = np.ones((3, 3))
    by_hand = np.zeros((21, 21))
    by_hand[10, 10] = 1.0
    for _ in range(4):
        by_hand = convolve2d(by_hand, kernel, mode="same")
    np.testing.assert_allclose(box_stack_map(4, 3, 21), by_hand / by_hand.max(), rtol=1e-12)


def test_noisy_samples_average_to_the_truth():
    truth = laplace_map(2.0, 9)
    for noise in ("half_normal", "exponential", "gaussian"):
        mean = noisy_samples(truth, 40_000, noise, np.random.default_rng(0)).mean(axis=0)
        np.testing.assert_allclose(mean, truth, atol=0.03, err_msg=noise)


def test_coverage_rows_count_hits_and_misses_on_either_side():
    rows = [
        {"m": 1.0, "m_ci_low": 0.5, "m_ci_high": 1.5},  # covers 1.0
        {"m": 2.0, "m_ci_low": 1.5, "m_ci_high": 2.5},  # above the truth
        {"m": 0.2, "m_ci_low": 0.1, "m_ci_high": 0.3},  # below it
        {"m": 1.0, "m_ci_low": 1.0, "m_ci_high": 1.0},  # zero width, on the truth: covers
        {"m": 1.0, "m_ci_low": None, "m_ci_high": None},  # no interval
    ]
    (row,) = coverage_rows(rows, {"m": 1.0}, keys=["m"])
    assert (row["n"], row["n_missing"]) == (4, 1)
    assert (row["coverage"], row["miss_below"], row["miss_above"]) == (0.5, 0.25, 0.25)
    assert row["zero_width"] == 0.25 and row["width"] == pytest.approx(0.55)


@pytest.mark.parametrize("case", [BOX, CUSP], ids=lambda c: c.name)
def test_every_printed_interval_covers_its_exact_truth_at_its_level(case):
    rows = simulate(case, 150, seed=3, bootstrap=100)
    table = coverage_rows(rows, truth_metrics(case))
    printed = {k for k in CI_KEYS if any(np.isfinite(r[f"{k}_ci_low"]) for r in rows)}
    assert {r["metric"] for r in table} >= printed - {"erf_trf_ratio"} and printed
    failing = [(r["metric"], round(r["coverage"], 3)) for r in table if r["verdict"] != "ok"]
    assert not failing, failing


def test_the_check_fails_the_intervals_it_replaced():
    """Power: the percentile bootstrap of Luo's size and of the fit R² (what erf printed
    before) are judged "undercovers" by the same verdict on the same case."""

    def old_intervals(m: np.ndarray) -> dict[str, float]:
        return {"luo": luo_size(m), "r2": fit_gaussian(m).r_squared}

    rows = []
    for rep in range(100):
        samples = noisy_samples(CUSP.truth, CUSP.n_samples, CUSP.noise, np.random.default_rng(rep))
        r = grouped_result(samples, CUSP.n_groups)
        found = bootstrap_intervals(r.groups, r.group_n, old_intervals, replicates=30)
        rows.append(
            {f"{k}_ci_{end}": v for k, iv in found.items() for end, v in zip(("low", "high"), iv)}
        )
    truth = old_intervals(CUSP.truth)
    table = coverage_rows(rows, truth, keys=["luo", "r2"])
    assert [(r["metric"], r["verdict"]) for r in table] == [
        ("luo", "undercovers"),
        ("r2", "undercovers"),
    ], [(r["metric"], r["coverage"]) for r in table]


def test_the_verdict_allows_the_simulations_binomial_error_and_no_more():
    assert verdict({"n": 100, "coverage": 0.90}) == "ok"  # 90/100: 0.92 is within chance
    assert verdict({"n": 2000, "coverage": 0.90}) == "undercovers"
    assert verdict({"n": 100, "coverage": 0.80}) == "undercovers"
    assert verdict({"n": 0, "coverage": float("nan")}) == "no interval"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ERF_CALIBRATION") != "slow", reason="set ERF_CALIBRATION=slow")
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_printed_interval_covers_on_every_exact_case_at_300_repetitions(name):
    """The committed profile (experiments/calibration), about 25 s per case on 2 cores."""
    case = CASES[name]
    table = coverage_rows(simulate(case, 300, seed=11), truth_metrics(case))
    failing = [(r["metric"], round(r["coverage"], 3)) for r in table if r["verdict"] != "ok"]
    assert not failing, failing
