"""Intervals over repeats (erf.analysis.repeats): the Student-t interval of a mean and the
delete-a-group jackknife of a statistic of mean maps, against hand-computed values."""

import math

import numpy as np
import pytest

from erf.analysis.repeats import jackknife, t_interval


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


def test_the_jackknife_of_a_scalar_statistic_is_the_hand_computed_one():
    rng = np.random.default_rng(1)
    stack = rng.uniform(0.5, 1.5, size=(6, 5, 5))
    # delete one of 3 groups of 2 draws
    j = jackknife(lambda ms: float(ms[0].sum()), [stack], groups=3)
    loo = [np.delete(stack, [2 * i, 2 * i + 1], axis=0).mean(0).sum() for i in range(3)]
    assert j["estimate"] == pytest.approx(stack.mean(0).sum())
    assert j["se"] == pytest.approx(np.sqrt(2 / 3 * np.sum((loo - np.mean(loo)) ** 2)))
    assert j["groups"] == 3 and j["n_draws"] == 6
    assert j["corrected"] == pytest.approx(3 * j["estimate"] - 2 * np.mean(loo))
    with pytest.raises(ValueError, match="same number of draws"):
        jackknife(lambda ms: 0.0, [stack, stack[:3]])


def test_the_jackknife_of_one_draw_has_no_interval():
    j = jackknife(lambda ms: float(ms[0].sum()), [np.ones((1, 3, 3))])
    assert j["estimate"] == 9.0 and j["groups"] == 0
    assert math.isnan(j["low"]) and math.isnan(j["high"]) and math.isnan(j["corrected"])
