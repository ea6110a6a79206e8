"""Intervals over independent repeats of a measurement (weight draws, seeds). Pure numpy/scipy.

Two estimators that several studies share (``erf.studies``): the Student-t interval of a
mean over repeats (``t_interval``), and the delete-a-group jackknife of a statistic of the
mean maps of per-draw stacks (``jackknife``), which also gives the statistic's bias-corrected
value. Every study-specific statistic (growth slopes, fit R² over draws, seed cells) lives in
its study's module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from erf.analysis.bootstrap import jackknife_spread


def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean and two-sided Student-t confidence interval of the finite ``values``.

    With one value the interval is NaN-wide; with identical values it has zero width.
    """
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = v.size
    nan = float("nan")
    if n == 0:
        return {"mean": nan, "low": nan, "high": nan, "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "low": nan, "high": nan, "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(n)}


def jackknife(
    statistic: Callable[[Sequence[np.ndarray]], float],
    stacks: Sequence[np.ndarray],
    groups: int = 16,
    level: float = 0.95,
) -> dict[str, float]:
    """A statistic of the mean maps of draw ``stacks`` (each [M, H, W], the same M draws in
    the same order, e.g. one stack per depth) with a delete-a-group jackknife interval over
    draws: draws are split into G = min(M, ``groups``) contiguous groups, the statistic is
    recomputed on the mean maps without group g (the same draws left out of every stack), and
    the interval is estimate ± t_{G-1} · sqrt((G - 1) / G · Σ (θ_(g) - mean)²). ``corrected``
    is the jackknife bias-corrected estimate G · θ − (G − 1) · mean θ_(g), and
    ``corrected_low``/``corrected_high`` the same half-width about it. ``low``/``high`` (and the
    corrected values) are NaN with one draw or a non-finite leave-out value."""
    arrays = [np.asarray(s, dtype=np.float64) for s in stacks]
    m = arrays[0].shape[0]
    if any(a.ndim != 3 or a.shape[0] != m for a in arrays):
        raise ValueError("every stack must be [draws, H, W] with the same number of draws")
    totals = [a.sum(axis=0) for a in arrays]
    estimate = float(statistic([t / m for t in totals]))
    nan = float("nan")
    out = {"estimate": estimate, "low": nan, "high": nan, "se": nan, "n_draws": m, "groups": 0}
    out.update(corrected=nan, corrected_low=nan, corrected_high=nan)
    g = min(m, int(groups))
    if g < 2:
        return out
    vals = []
    for part in np.array_split(np.arange(m), g):
        rest = [(t - a[part].sum(axis=0)) / (m - part.size) for t, a in zip(totals, arrays)]
        vals.append(float(statistic(rest)))
    spread = jackknife_spread(estimate, vals, level)
    if spread is None:
        return out
    se, half, corrected = spread
    out.update(se=se, low=estimate - half, high=estimate + half, groups=g)
    out.update(corrected=corrected, corrected_low=corrected - half, corrected_high=corrected + half)
    return out
