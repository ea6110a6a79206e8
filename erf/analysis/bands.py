"""Confidence bands of threshold counts: the interval of Luo's ERF size. Pure numpy/scipy.

Luo's size counts the pixels above 4.55 % of the centre value. A count is a step function of
the map: where the expected map has pixels within the noise of the threshold (a symmetric map
holds them in tied rings of 4 or 8), a finite-sample map drops or adds them in bulk, and the
count is biased by up to a ring however many replicates a bootstrap draws (measured by
``erf.analysis.calibration``: 0.66–0.80 coverage at 0.95, bias 1.1–1.4 standard deviations).
A bootstrap cannot see that bias, because in the measured map the ring is already broken.

The band instead bounds the count from the per-pixel intervals of the mean map: the smallest
count is the pixels whose lower bound clears the highest threshold, the largest the pixels
whose upper bound clears the lowest one (the threshold's bounds come from the centre value's
bounds). A pixel near the threshold is counted in the upper bound and not in the lower one,
so ties cost width instead of coverage. Per-pixel bounds are Student-t intervals over the
result's groups (input groups, or weight draws for a pooled many-draws result).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from erf.analysis.metrics import LUO_FRACTION


def group_mean_and_se(groups: np.ndarray, group_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean map ``sum(groups) / sum(group_n)`` and its per-pixel standard error from the
    spread of the K group means (the ratio-mean variance: K / (K - 1) · Σ n_g² (x_g − x̄)² /
    (Σ n_g)², which is s² / K for equal groups). ``groups``: ``[K, H, W]`` sums; ``group_n``:
    ``[K]`` sample counts, all > 0, K >= 2."""
    g = np.asarray(groups, dtype=np.float64)
    n = np.asarray(group_n, dtype=np.float64)
    k = len(n)
    total_n = n.sum()
    mean = g.sum(axis=0) / total_n
    deviations = g - n[:, None, None] * mean  # n_g (x_g - mean)
    var = k / (k - 1) * (deviations**2).sum(axis=0) / total_n**2
    return mean, np.sqrt(var)


def t_quantile(level: float, n_groups: int) -> float:
    """The two-sided Student-t quantile of ``level`` with ``n_groups`` - 1 degrees of freedom."""
    return float(stats.t.ppf((1 + level) / 2, n_groups - 1))


def luo_size_band(
    groups: np.ndarray,
    group_n: np.ndarray,
    center: tuple[int, int],
    level: float,
    *,
    robust: bool = False,
    clamp: bool = False,
) -> tuple[float, float]:
    """(low, high) of Luo's size, sqrt(#pixels > (1 - 0.9545) · peak), of the expected map:
    sqrt(#{lower bound > (1 - 0.9545) · peak_high}) and sqrt(#{upper bound > (1 - 0.9545) ·
    peak_low}), with per-pixel bounds mean ± t_(K-1) · se (``group_mean_and_se``) and the peak
    the centre pixel (``robust``: the median of the centre's 3 x 3 neighbourhood, whose bounds
    are the medians of the neighbours' bounds, as a median is monotone in each value).
    ``clamp``: the map is the clamped mean (``clamp_after_mean``). (NaN, NaN) with fewer than
    2 groups or when the peak's upper bound is not positive."""
    if len(group_n) < 2:
        return math.nan, math.nan
    mean, se = group_mean_and_se(groups, group_n)
    half = t_quantile(level, len(group_n)) * se
    low, high = mean - half, mean + half
    if clamp:
        low, high = np.clip(low, 0.0, None), np.clip(high, 0.0, None)
    r, c = center
    if robust:
        rows = slice(max(r - 1, 0), r + 2)
        cols = slice(max(c - 1, 0), c + 2)
        peak_low, peak_high = float(np.median(low[rows, cols])), float(np.median(high[rows, cols]))
    else:
        peak_low, peak_high = float(low[r, c]), float(high[r, c])
    if not (np.isfinite(peak_low) and np.isfinite(peak_high)) or peak_high <= 0:
        return math.nan, math.nan
    share = 1.0 - LUO_FRACTION
    fewest = np.count_nonzero(low > share * peak_high)
    most = np.count_nonzero(high > share * max(peak_low, 0.0))
    return math.sqrt(fewest), math.sqrt(most)


def draws_size_band(maps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """``luo_size_band`` of the mean of per-draw ``maps`` (``[M, H, W]``, each draw counting
    once) about the map centre (H // 2, W // 2): the interval over weight draws of Luo's size
    of the pooled map. (NaN, NaN) with one draw."""
    stack = np.asarray(maps, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"maps must be [draws, H, W], got shape {stack.shape}")
    center = (stack.shape[1] // 2, stack.shape[2] // 2)
    return luo_size_band(stack, np.ones(len(stack)), center, level)


__all__ = ["draws_size_band", "group_mean_and_se", "luo_size_band", "t_quantile"]
