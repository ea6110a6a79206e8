"""Bootstrap intervals of ERF metrics from group sums. Pure numpy.

A probe keeps, besides the total, ``K`` group sums of the per-sample map (sample ``i`` in
group ``i % K``; ``ERFResult.groups``, ``group_n``); a many-draws job's groups are its draws.
A replicate resamples the K groups with replacement, rebuilds the mean map from the drawn
groups' sums and sample counts, and computes the metrics on it; the interval of a metric is
the central ``level`` percentile range of its replicate values. Groups of i.i.d. samples
are i.i.d., so this is the ordinary bootstrap of the mean map at the granularity of groups
(K = 16 groups of a 64-sample run: 4 samples each).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from scipy import stats

DEFAULT_REPLICATES = 200
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
MAX_REPLICATES = 100_000  # fit.bootstrap: beyond this a job's metrics would take hours
MIN_FINITE = 0.5  # an interval needs at least this fraction of finite replicate values
CHUNK = 16  # replicates whose maps are built at once (memory: CHUNK maps)

Statistic = Callable[[np.ndarray], dict[str, float]]


def check_settings(replicates: int, level: float) -> None:
    """One-line ValueErrors, naming the config key, for a replicate count that is not an
    integer in [0, MAX_REPLICATES] or a level outside (0, 1)."""
    check_replicates(replicates)
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"fit.ci_level={level!r} is not allowed: expected a number in (0, 1)")


def check_replicates(replicates: int) -> None:
    """``check_settings`` for the replicate count alone."""
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)):
        raise ValueError(f"fit.bootstrap={replicates!r} is not allowed: expected an integer >= 0")
    if not 0 <= replicates <= MAX_REPLICATES:
        raise ValueError(
            f"fit.bootstrap={replicates!r} is not allowed: expected an integer >= 0 "
            f"(at most {MAX_REPLICATES})"
        )


def resample_counts(n_groups: int, replicates: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``[replicates, n_groups]``: how often each group is drawn in each replicate (K draws
    with replacement from ``np.random.default_rng(seed)``). Replicate ``b`` is the same for
    every ``replicates`` >= b + 1, so a shorter run (the Gaussian fit's) uses the first rows
    of a longer one."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_groups, size=(replicates, n_groups))
    return np.stack([np.bincount(row, minlength=n_groups) for row in picks]).astype(np.float64)


def replicate_maps(
    groups: np.ndarray, group_n: np.ndarray, counts: np.ndarray, clamp: bool = False
) -> Iterator[np.ndarray]:
    """The mean map ``[H, W]`` of each replicate: sum(count_g * groups[g]) / sum(count_g *
    group_n[g]); ``clamp`` clips it at 0 (the ``clamp_after_mean`` reduction's map)."""
    k, h, w = groups.shape
    flat = groups.reshape(k, h * w)
    n = np.asarray(group_n, dtype=np.float64)
    for first in range(0, len(counts), CHUNK):
        weights = counts[first : first + CHUNK]
        sums = weights @ flat
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / (weights @ n)[:, None]
        for mean in means:
            mean = mean.reshape(h, w)
            yield np.clip(mean, 0.0, None) if clamp else mean


def percentile_interval(values, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Central ``level`` percentile interval of the finite ``values``; (NaN, NaN) when fewer
    than ``MIN_FINITE`` of them are finite."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if v.size == 0 or finite.size < MIN_FINITE * v.size or finite.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def nonempty(groups: np.ndarray, group_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups that hold at least one sample (a group of skipped samples holds none)."""
    n = np.asarray(group_n)
    keep = n > 0
    return np.asarray(groups, dtype=np.float64)[keep], n[keep]


def bootstrap_replicates(
    groups: np.ndarray,
    group_n: np.ndarray,
    statistic: Statistic,
    *,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    clamp: bool = False,
) -> dict[str, np.ndarray]:
    """``{key: [replicates] values}`` of every value ``statistic(map)`` returns, over
    ``replicates`` bootstrap replicates of the mean map built from ``groups`` (``[K, H, W]``
    sums) and ``group_n`` (``[K]`` sample counts). Empty groups are dropped; with fewer than 2
    groups left, or no replicates, the dict is empty. Same inputs and ``seed``: same values."""
    check_replicates(replicates)
    groups, group_n = nonempty(groups, group_n)
    if len(groups) < 2 or replicates < 1:
        return {}
    counts = resample_counts(len(groups), replicates, seed)
    values: dict[str, list[float]] = {}
    for mean in replicate_maps(groups, group_n, counts, clamp):
        for key, value in statistic(mean).items():
            values.setdefault(key, []).append(value)
    return {key: np.asarray(v, dtype=np.float64) for key, v in values.items()}


def bootstrap_intervals(
    groups: np.ndarray,
    group_n: np.ndarray,
    statistic: Statistic,
    *,
    replicates: int = DEFAULT_REPLICATES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
    clamp: bool = False,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals ``{key: (low, high)}`` of every value ``statistic(map)`` returns
    (``bootstrap_replicates``); ``level`` 1 is the range of the replicate values. With fewer
    than 2 non-empty groups the dict is empty."""
    if not 0 < level <= 1:  # 1: the whole range (an expanded level for very few groups)
        raise ValueError(f"level={level!r} is not allowed: expected a number in (0, 1]")
    values = bootstrap_replicates(
        groups, group_n, statistic, replicates=replicates, seed=seed, clamp=clamp
    )
    return {key: percentile_interval(v, level) for key, v in values.items()}


JACKKNIFE_BLOCKS = 16  # a jackknife deletes one of at most this many blocks of groups


def jackknife_spread(
    estimate: float, leave_outs, level: float = DEFAULT_LEVEL
) -> tuple[float, float, float] | None:
    """The delete-a-block jackknife of a statistic from its B leave-one-block-out values
    θ_(b): (SE, half-width, bias-corrected estimate) with SE = sqrt((B − 1) / B · Σ (θ_(b) −
    mean)²), half-width t_(B−1) · SE at ``level`` and the corrected estimate B · θ − (B − 1) ·
    mean θ_(b), which removes a bias proportional to 1 / n. None when a leave-out value is not
    finite. The one jackknife of ``jackknife_intervals`` and
    ``erf.analysis.repeats.jackknife``."""
    v = np.asarray(leave_outs, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        return None
    b = v.size
    se = math.sqrt((b - 1) / b * float(np.sum((v - v.mean()) ** 2)))
    half = float(stats.t.ppf((1 + level) / 2, b - 1)) * se
    return se, half, b * estimate - (b - 1) * float(v.mean())


def jackknife_intervals(
    groups: np.ndarray,
    group_n: np.ndarray,
    statistic: Statistic,
    estimate: dict[str, float],
    *,
    level: float = DEFAULT_LEVEL,
    blocks: int = JACKKNIFE_BLOCKS,
    corrected: tuple[str, ...] = (),
) -> dict[str, tuple[float, float]]:
    """Delete-a-block jackknife t-intervals ``{key: (low, high)}`` of every value of
    ``statistic(map)`` (``estimate``: its values on the full mean map): the K groups are split
    into B = min(K, ``blocks``) contiguous blocks, the statistic is recomputed on the mean map
    without block b, and the interval is centre ± t_(B−1) · sqrt((B − 1) / B · Σ (θ_(b) −
    mean)²). The centre is the estimate, or for the keys in ``corrected`` the jackknife
    bias-corrected B · θ − (B − 1) · mean θ_(b), which removes a bias proportional to 1 / n
    (the R² a finite map loses to its noise). (NaN, NaN) for a key with a non-finite value;
    an empty dict with fewer than 2 non-empty groups."""
    groups, group_n = nonempty(groups, group_n)
    if len(groups) < 2:
        return {}
    total, n = groups.sum(axis=0), float(np.sum(group_n))
    parts = np.array_split(np.arange(len(groups)), min(len(groups), blocks))
    values: dict[str, list[float]] = {}
    for part in parts:
        rest = (total - groups[part].sum(axis=0)) / (n - float(np.sum(group_n[part])))
        for key, value in statistic(rest).items():
            values.setdefault(key, []).append(value)
    out = {}
    for key, vals in values.items():
        theta = float(estimate.get(key, math.nan))
        spread = jackknife_spread(theta, vals, level) if math.isfinite(theta) else None
        if spread is None:
            out[key] = (math.nan, math.nan)
            continue
        _, half, bias_corrected = spread
        centre = bias_corrected if key in corrected else theta
        out[key] = (centre - half, centre + half)
    return out


__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_REPLICATES",
    "DEFAULT_SEED",
    "JACKKNIFE_BLOCKS",
    "MAX_REPLICATES",
    "bootstrap_intervals",
    "bootstrap_replicates",
    "check_replicates",
    "check_settings",
    "jackknife_intervals",
    "jackknife_spread",
    "nonempty",
    "percentile_interval",
    "replicate_maps",
    "resample_counts",
]
