"""Bootstrap intervals from group sums (erf.analysis.bootstrap) and where they land in a job's
metrics (erf.analysis.summary.erf_metrics, erf.analysis.draw_stats)."""

import math

import numpy as np
import pytest

from erf.analysis.bootstrap import (
    bootstrap_intervals,
    percentile_interval,
    replicate_maps,
    resample_counts,
)
from erf.analysis.draw_stats import draw_metrics, pool_draws
from erf.analysis.summary import CI_KEYS, erf_metrics, expanded_level
from erf.result import ERFResult

SIDE = 15
ROWS, COLS = np.indices((SIDE, SIDE))
SHAPE_MAP = np.exp(-((ROWS - 7) ** 2 + (COLS - 7) ** 2) / (2 * 2.5**2))  # the true mean map


def _samples(rng, n: int) -> np.ndarray:
    """i.i.d. per-sample maps with mean SHAPE_MAP: the shape times Exp(1) pixel noise."""
    return SHAPE_MAP * rng.exponential(1.0, size=(n, SIDE, SIDE))


def _groups(samples: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    groups = np.stack([samples[g::k].sum(0) for g in range(k)])
    return groups, np.array([len(samples[g::k]) for g in range(k)])


def _centre(m: np.ndarray) -> dict[str, float]:
    return {"centre": float(m[7, 7]), "ring": float(m[7, 10])}


def test_replicate_maps_are_the_pooled_means_of_the_drawn_groups():
    rng = np.random.default_rng(0)
    groups, counts = _groups(_samples(rng, 10), 4)
    weights = resample_counts(4, 3, seed=5)
    assert weights.shape == (3, 4) and (weights.sum(1) == 4).all()
    for w, got in zip(weights, replicate_maps(groups, counts, weights)):
        oracle = sum(w[g] * groups[g] for g in range(4)) / sum(w[g] * counts[g] for g in range(4))
        np.testing.assert_allclose(got, oracle, rtol=1e-13)


@pytest.mark.parametrize("level", [0.9, 0.95])
def test_intervals_cover_the_true_value_at_about_the_nominal_rate(level):
    """300 seeded experiments of 16 groups x 4 samples (skewed Exp noise): the intervals of
    the centre pixel's mean cover its true value (1.0) at about ``level``: the plain
    percentile interval a little less (measured 0.85 / 0.89), the expanded one that the job
    metrics use closer (0.88 / 0.91). The binomial sd of a rate over 300 trials is ~0.017."""
    rng = np.random.default_rng(11)
    plain, expanded = [], []
    for trial in range(300):
        groups, counts = _groups(_samples(rng, 64), 16)
        for hits, lev in ((plain, level), (expanded, expanded_level(level, 16))):
            found = bootstrap_intervals(groups, counts, _centre, level=lev, seed=trial)
            low, high = found["centre"]
            hits.append(low <= SHAPE_MAP[7, 7] <= high)
    assert level - 0.08 <= np.mean(plain) <= level + 0.03
    assert level - 0.06 <= np.mean(expanded) <= level + 0.03
    assert np.mean(expanded) > np.mean(plain)


def test_expanded_level_widens_small_samples_and_vanishes_for_large_ones():
    # By hand: sqrt(16 / 15) * t_15(0.975) = 1.0328 * 2.1314 = 2.2013; 2 * Phi(2.2013) - 1.
    assert expanded_level(0.95, 16) == pytest.approx(0.9723, abs=2e-4)
    assert expanded_level(0.95, 10**6) == pytest.approx(0.95, abs=1e-5)
    assert expanded_level(0.95, 4) > expanded_level(0.95, 16) > 0.95


def test_intervals_shrink_as_groups_hold_more_samples():
    rng = np.random.default_rng(3)

    def width(per_group: int) -> float:
        groups, counts = _groups(_samples(rng, 16 * per_group), 16)
        low, high = bootstrap_intervals(groups, counts, _centre, seed=0)["centre"]
        return high - low

    narrow, wide = np.mean([width(32) for _ in range(5)]), np.mean([width(2) for _ in range(5)])
    assert narrow < wide / 2.5  # sqrt(32 / 2) = 4 in expectation


def test_same_seed_gives_identical_intervals_and_another_seed_others():
    groups, counts = _groups(_samples(np.random.default_rng(1), 40), 8)
    a = bootstrap_intervals(groups, counts, _centre, seed=7)
    assert a == bootstrap_intervals(groups, counts, _centre, seed=7)
    assert a != bootstrap_intervals(groups, counts, _centre, seed=8)


def test_empty_groups_are_dropped_and_fewer_than_two_give_no_interval():
    groups, counts = _groups(_samples(np.random.default_rng(2), 6), 3)
    padded = np.concatenate([groups, np.zeros((2, SIDE, SIDE))])
    with_empty = bootstrap_intervals(padded, np.r_[counts, 0, 0], _centre, seed=1)
    assert with_empty == bootstrap_intervals(groups, counts, _centre, seed=1)
    assert bootstrap_intervals(groups[:1], counts[:1], _centre) == {}


def test_percentile_interval_needs_half_the_replicates_finite():
    assert percentile_interval([1.0, 2.0, 3.0, math.nan], 0.5) == (1.5, 2.5)  # linear, 25/75 %
    assert all(math.isnan(v) for v in percentile_interval([1.0, math.nan, math.nan]))


@pytest.mark.parametrize(
    "replicates,level,match",
    [(-1, 0.95, "fit.bootstrap=-1"), (2.5, 0.95, "fit.bootstrap"), (10, 1.0, "fit.ci_level=1.0")],
)
def test_bad_settings_are_one_line_errors_naming_the_option(replicates, level, match):
    result = _result(_samples(np.random.default_rng(0), 8), k=4)
    with pytest.raises(ValueError, match=match):
        erf_metrics(result, bootstrap=replicates, ci_level=level)


def test_level_one_is_the_range_of_the_replicates_as_two_groups_get():
    """Two groups: the expanded 95 % level is ~1.0 (t with 1 degree of freedom), the range."""
    groups, counts = _groups(_samples(np.random.default_rng(0), 8), 2)
    assert expanded_level(0.95, 2) > 0.999
    low, high = bootstrap_intervals(groups, counts, _centre, level=1.0)["centre"]
    means = [groups[0, 7, 7] / counts[0], groups[1, 7, 7] / counts[1]]  # all-of-one replicates
    assert (low, high) == pytest.approx((min(means), max(means)))


def _result(samples: np.ndarray, k: int | None = 8) -> ERFResult:
    h, w = samples.shape[1:]
    groups, counts = _groups(samples, k) if k else (None, None)
    return ERFResult(
        total=samples.sum(0), total_sq=(samples**2).sum(0), n_samples=len(samples),
        input_shape=(1, h, w), target=None, target_shape=(1, h, w), position=(h // 2, w // 2),
        channel=None, reduce="abs", groups=groups, group_n=counts,
        n_dead=int((samples == 0).reshape(len(samples), -1).all(1).sum()),
    )  # fmt: skip


def test_job_metrics_carry_an_interval_around_every_metric():
    samples = _samples(np.random.default_rng(4), 32)
    samples[3] = 0.0  # one dead input
    metrics = erf_metrics(_result(samples), bootstrap=50)
    for key in CI_KEYS:
        if key == "erf_trf_ratio" or math.isnan(metrics[key]):  # no TRF; no 99 % square
            assert math.isnan(metrics[f"{key}_ci_low"]), key
            continue
        low, high = metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"]
        assert low <= high, key
        if key != "fit_r2":  # fit_r2's interval is about its bias-corrected value
            assert low - 1e-9 <= metrics[key] <= high + 1e-9, key
    assert metrics["ci_level"] == 0.95 and metrics["ci_n"] == 8
    assert metrics["ci_method"].startswith("0.95 intervals over 8 input groups")
    assert "50 replicates, seed 0" in metrics["ci_method"]
    assert (metrics["n_dead"], metrics["dead_fraction"]) == (1, 1 / 32)


def test_without_groups_the_intervals_are_nan_and_say_why():
    none = erf_metrics(_result(_samples(np.random.default_rng(5), 8), k=None))
    assert "bootstrap_groups=0" in none["ci_method"]
    assert all(math.isnan(none[f"{k}_ci_low"]) for k in CI_KEYS)


def test_without_replicates_only_the_count_band_which_needs_none_is_given():
    off = erf_metrics(_result(_samples(np.random.default_rng(5), 8)), bootstrap=0)
    assert "fit.bootstrap=0" in off["ci_method"]
    banded = {"erf_size", "erf_size_robust", "erf_trf_ratio"}
    assert all(math.isnan(off[f"{k}_ci_low"]) for k in CI_KEYS if k not in banded)
    assert off["erf_size_ci_low"] <= off["erf_size"] <= off["erf_size_ci_high"]


def _draw(seed: int, dead: bool = False) -> ERFResult:
    samples = _samples(np.random.default_rng(seed), 6) * (0.0 if dead else 1.0)
    r = _result(samples, k=3)
    r.meta = {"seed": seed}
    return r


def test_a_many_draws_job_gets_intervals_over_draws_and_dead_draws_are_left_out():
    draws = [_draw(s) for s in range(5)] + [_draw(9, dead=True)]
    pooled = pool_draws(draws)
    metrics = erf_metrics(pooled, bootstrap=40)
    assert metrics["ci_n"] == 6
    assert metrics["ci_method"].startswith("0.95 intervals over 6 weight draws")
    assert metrics["erf_size_ci_low"] <= metrics["erf_size"] <= metrics["erf_size_ci_high"]
    per_draw = draw_metrics(draws)
    assert per_draw["n_dead_draws"] == 1 and per_draw["dead"] == [False] * 5 + [True]
    assert math.isnan(per_draw["erf_size"][5])  # kept in draw order, as NaN
    alive = [v for v in per_draw["erf_size"][:5]]
    assert per_draw["erf_size_spread"]["n"] == 5
    assert per_draw["erf_size_spread"]["mean"] == pytest.approx(np.mean(alive))


def test_clamp_after_mean_replicates_are_clamped_like_the_map(monkeypatch):
    """Signed per-sample maps whose mean is negative on a ring: the reported map is 0 there,
    and every bootstrap replicate handed to the metrics must be clamped the same way, or the
    interval describes another map than the one reported."""
    import erf.analysis.sizes as sizes

    rng = np.random.default_rng(7)
    ring = np.hypot(ROWS - 7, COLS - 7)
    signed = SHAPE_MAP - 2.0 * np.exp(-((ring - 5) ** 2) / 2)
    samples = signed * rng.exponential(1.0, size=(32, SIDE, SIDE))
    seen = []
    for name in ("mass_radius", "moment_sigma"):  # the bootstrap's and the jackknife's metrics
        real = getattr(sizes, name)
        monkeypatch.setattr(
            sizes, name, lambda m, *a, real=real, **k: (seen.append(m.min()), real(m, *a, **k))[1]
        )
    for reduce, clamped in (("clamp_after_mean", True), ("signed_clamp", True), ("abs", False)):
        seen.clear()
        result = _result(samples)
        result.reduce = reduce
        erf_metrics(result, bootstrap=20)
        assert len(seen) > 20, reduce  # the map itself and its replicates
        assert (min(seen) >= 0.0) == clamped, reduce
