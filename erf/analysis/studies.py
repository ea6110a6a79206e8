"""Statistics of the Luo et al. 2016 studies over many jobs and weight draws. Pure numpy/scipy.

Rows are the flat metric dicts of ``metrics.json`` (one per job). A job that measured several
weight draws in one pass carries their per-draw values under ``draws``; ``per_draw_rows``
turns it into one row per draw, so every statistic below treats draws and single-draw jobs
alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from erf.analysis.bootstrap import jackknife_spread
from erf.analysis.fit import fit_gaussian
from erf.analysis.metrics import loglog_slope, luo_size

PER_DRAW_KEYS = ("erf_size", "erf_trf_ratio")


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


def per_draw_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per weight draw: a job with ``draws`` (per-draw ``seeds`` and sizes) becomes
    one row per seed, with that draw's ``erf_size`` and ``erf_trf_ratio``; other jobs stay
    one row, their seed read from ``seed`` or the job config."""
    out = []
    for row in rows:
        draws = row.get("draws")
        if not draws:
            seed = row.get("seed", (row.get("config") or {}).get("seed"))
            out.append({**row, "seed": seed})
            continue
        for i, seed in enumerate(draws["seeds"]):
            out.append(
                {
                    **{k: v for k, v in row.items() if k != "draws"},
                    "seed": seed,
                    **{k: draws[k][i] for k in PER_DRAW_KEYS if k in draws},
                }
            )
    return out


def growth_stats(
    rows: Sequence[Mapping[str, Any]],
    x: str = "depth",
    group_by: Sequence[str] = ("init", "activation"),
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Per group: ERF size and ERF/TRF against ``x`` over weight draws, and their log-log
    slopes with confidence intervals.

    The slope CI is a t-interval over draws: draw ``seed`` at every ``x`` is one curve (the
    same seed at every depth), whose own least-squares log-log slope is one sample. The
    point estimate reported beside it is the slope of the mean size curve. ``rows`` are
    per-draw rows (``per_draw_rows``).
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        xs = sorted({m[x] for m in members})
        entry: dict[str, Any] = {**dict(zip(group_by, key)), "x": x, "xs": xs}
        trf = {m[x]: m.get("trf_size") for m in members}
        entry["trf_size"] = [trf[v] for v in xs]
        for y in PER_DRAW_KEYS:
            at = {v: [m.get(y) for m in members if m[x] == v] for v in xs}
            per_x = [t_interval(_floats(at[v]), level) for v in xs]
            entry[y] = [p["mean"] for p in per_x]
            entry[f"{y}_low"] = [p["low"] for p in per_x]
            entry[f"{y}_high"] = [p["high"] for p in per_x]
            entry["n_draws"] = [p["n"] for p in per_x]
            curves: dict[Any, dict[Any, float]] = {}
            for m in members:
                curves.setdefault(m.get("seed"), {})[m[x]] = _float(m.get(y))
            draw_slopes = [
                loglog_slope(xs, [c[v] for v in xs])[0]
                for c in curves.values()
                if all(v in c for v in xs)
            ]
            ci = t_interval(draw_slopes, level)
            entry[f"{y}_slope"] = loglog_slope(xs, entry[y])[0]
            entry[f"{y}_slope_low"], entry[f"{y}_slope_high"] = ci["low"], ci["high"]
            entry[f"{y}_slope_draws"] = ci["n"]
        out.append(entry)
    return out


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _floats(values: Sequence[Any]) -> list[float]:
    return [_float(v) for v in values]


def binomial_path_counts(blocks: int) -> dict[int, int]:
    """Paths through a stack of ``blocks`` residual blocks by the number j of residual
    branches they take: C(blocks, j) (the identity is taken at the other blocks)."""
    return {j: math.comb(int(blocks), j) for j in range(int(blocks) + 1)}


def centre_profile(erf_map: np.ndarray, center: tuple[int, int] | None = None) -> np.ndarray:
    """The map's row through ``center`` (default (H // 2, W // 2)), scaled to 1 at the centre:
    the 1-D shape compared across activations (a Gaussian is a parabola on a log axis)."""
    m = np.asarray(erf_map, dtype=np.float64)
    r, c = (m.shape[0] // 2, m.shape[1] // 2) if center is None else center
    peak = m[r, c]
    return m[r] / peak if peak > 0 else np.full(m.shape[1], np.nan)


def fit_r2_interval(
    maps: np.ndarray | Sequence[np.ndarray], groups: int = 16, level: float = 0.95
) -> dict[str, Any]:
    """Gaussian-fit R² of the mean of per-draw ``maps`` ([M, H, W]), its jackknife
    bias-corrected value and interval over weight draws.

    The M draws are split into G = min(M, ``groups``) contiguous groups; R²_(g) is the fit R²
    (``erf.analysis.fit.fit_gaussian``) of the mean map without group g. Noise in a finite
    mean map lowers its R² by about c / M (the noise's share of the map's variance), so the
    estimate ``fit_r2`` is biased low and an interval centred on it misses the R² of the map at
    infinitely many draws (measured: 0.01 coverage at 0.95, ``experiments/calibration``). The
    jackknife removes a c / M bias exactly: ``fit_r2_corrected`` = G · R² − (G − 1) · mean
    R²_(g) (the leave-out maps hold (G − 1) / G of the draws, so their bias is G / (G − 1)
    times larger). The interval is ``fit_r2_corrected`` ± t_{G-1} · SE with SE =
    sqrt((G − 1) / G · Σ (R²_(g) − mean)²), capped at 1. It is over weight draws: for a
    protocol whose draws each average many inputs it includes their input noise. With one
    draw ``low``/``high``/``fit_r2_corrected`` are NaN."""
    stack = np.asarray(maps, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise ValueError(f"maps must be [draws, H, W] with draws >= 1, got shape {stack.shape}")
    if groups < 2:
        raise ValueError(f"groups must be >= 2, got {groups}")
    j = jackknife(lambda ms: fit_gaussian(ms[0]).r_squared, [stack], groups, level)
    out: dict[str, Any] = {
        "fit_r2": j["estimate"],
        "fit_r2_corrected": j["corrected"],
        "low": j["corrected_low"],
        "high": min(1.0, j["corrected_high"]),
        "se": j["se"],
        "n_draws": stack.shape[0],
    }
    if j["groups"]:
        out["groups"] = j["groups"]
    return out


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


def pooled_growth(
    stacks: Sequence[np.ndarray], xs: Sequence[float], trf: Sequence[float], groups: int = 16
) -> dict[str, Any]:
    """Luo's reading of a growth curve: the ERF size of the map averaged over all draws (and
    inputs) at each ``xs`` (one [M, H, W] stack of per-draw maps per x, the same draws at
    every x), its log-log slope, and the same for ERF/TRF, each with a jackknife interval over
    draws (``jackknife``). Unlike ``growth_stats``, no per-draw size is taken, so it also
    applies when each draw holds one input (``probe.protocol=luo``), whose single-gradient
    maps have no meaningful size of their own."""
    _size = luo_size
    xs = [float(x) for x in xs]
    trf = [float(t) for t in trf]
    out: dict[str, Any] = {"xs": xs}
    out["erf_size"] = [_size(np.asarray(s, dtype=np.float64).mean(axis=0)) for s in stacks]
    for name, fn in (
        ("erf_size", lambda ms: loglog_slope(xs, [_size(m) for m in ms])[0]),
        ("erf_trf_ratio", lambda ms: loglog_slope(xs, [_size(m) / t for m, t in zip(ms, trf)])[0]),
    ):
        j = jackknife(fn, stacks, groups)
        out[f"{name}_slope"] = j["estimate"]
        out[f"{name}_slope_low"], out[f"{name}_slope_high"] = j["low"], j["high"]
        out[f"{name}_slope_groups"] = j["groups"]
    return out
