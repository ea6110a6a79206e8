"""Size metrics of 2-D ERF maps. Pure numpy, no torch.

Conventions: a map is an ``[H, W]`` array, row-major, indexed (row, col); all sizes are in
pixels. Every metric that needs "the centre" takes it from :func:`erf_center`, the one
definition: the input pixel under the probed unit when that is known (pass an ``ERFResult``,
or ``center=``), else ``(H // 2, W // 2)``. Each metric takes a map or an ``ERFResult``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from erf.result import ERFResult

LUO_FRACTION = 0.9545  # Luo et al. 2016: pixels above (1 - 0.9545) * centre value count as ERF


def as_map(m) -> np.ndarray:
    """Return ``m`` (an array, or an ``ERFResult``: its ``map``) as a float64 ``[H, W]``
    array; ValueError if it is not 2-D."""
    if isinstance(m, ERFResult):
        m = m.map
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D map [H, W], got shape {m.shape}")
    return m


def erf_center(m, unit: Sequence[float] | None = None) -> tuple[int, int]:
    """THE centre pixel (row, col) of an ERF map: the reference of Luo's size, the mass radii,
    the radial profile and the area ratios, in the Python API and in ``metrics.json`` alike.

    ``m``: a map, its shape ``(H, W)``, or an ``ERFResult`` (whose ``meta["unit_in_input"]``
    is used when ``unit`` is not given). ``unit``: where the probed unit sits in the input,
    (row, col) in pixels, possibly fractional (``erf.analysis.summary`` passes the centre of
    the exact TRF when it has one). The pixel is ``unit`` rounded half up (a unit centred
    between two pixels takes the lower/right one) and clipped to the map; without a unit it
    is ``(H // 2, W // 2)``, which is the same pixel for a unit at the geometric centre
    ``((H - 1) / 2, (W - 1) / 2)`` of an even or odd map.
    """
    if isinstance(m, ERFResult):
        unit = m.meta.get("unit_in_input") if unit is None else unit
        shape = m.shape
    elif isinstance(m, tuple) and len(m) == 2 and all(isinstance(v, int) for v in m):
        shape = m
    else:
        shape = np.shape(m)
    h, w = int(shape[0]), int(shape[1])
    if unit is None:
        return h // 2, w // 2
    row, col = (math.floor(float(v) + 0.5) for v in unit)
    return min(max(row, 0), h - 1), min(max(col, 0), w - 1)


def unit_location(result: ERFResult, trf=None) -> tuple[list[float] | None, str | None]:
    """Where the probed unit of ``result`` sits in the input, (row, col) in pixels, and how
    that is known: the centre of ``trf`` (an ``erf.TheoreticalRF`` of the same model and
    input) when it is local and exact ("TRF"), else the probe's estimate from the grid's
    scale, ``meta["unit_in_input"]`` ("grid scale"), else ``(None, None)``. The two differ
    on strided "same"-padded networks, whose TRF is not centred on the grid-scale point."""
    exact = (
        trf is not None
        and not trf.is_global
        and getattr(trf, "source", None) != "measured_support"
        and not isinstance(result.position, str)
    )
    if exact:
        return [(a + b) / 2 for a, b in trf.interval(result.position)], "TRF"
    estimate = result.meta.get("unit_in_input")
    return estimate, None if estimate is None else "grid scale"


def _map_and_center(m, center) -> tuple[np.ndarray, tuple]:
    """The map of ``m`` and the centre to use: ``center`` if given, else ``erf_center(m)``."""
    return as_map(m), erf_center(m) if center is None else tuple(center)


def _mass(m: np.ndarray) -> np.ndarray:
    """The map as a non-negative mass: negative values clipped to 0."""
    return np.clip(m, 0.0, None)


def center_of_mass(m) -> tuple[float, float]:
    """(row, col) centre of mass, in pixels, of the non-negative part of the map."""
    w = _mass(as_map(m))
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return float("nan"), float("nan")
    rows, cols = np.indices(w.shape)
    return float((w * rows).sum() / total), float((w * cols).sum() / total)


def luo_size(m, center: tuple[int, int] | None = None) -> float:
    """Luo et al. 2016 ERF size in pixels.

    sqrt(number of pixels whose value exceeds (1 - 0.9545) * value at ``center``), with
    ``center`` = (row, col), default :func:`erf_center`. NaN if the centre value is <= 0 or
    not finite.
    """
    m, (r, c) = _map_and_center(m, center)
    return _luo_count(m, m[r, c])


def _luo_count(m: np.ndarray, peak: float) -> float:
    """sqrt(#pixels > (1 - 0.9545) * peak); NaN for a peak that is <= 0 or not finite."""
    if not np.isfinite(peak) or peak <= 0:
        return float("nan")
    return float(np.sqrt(np.count_nonzero(m > (1.0 - LUO_FRACTION) * peak)))


def robust_luo_size(m, center: tuple[int, int] | None = None) -> float:
    """Luo's size with the threshold relative to a robust peak: (1 - 0.9545) times the
    *median* of the 3 x 3 neighbourhood of ``center`` (default :func:`erf_center`; clipped at
    the map's edges) instead of the centre pixel alone. One spiky centre pixel (a unit that
    sees its own input pixel much more strongly) moves Luo's size a lot and this one little:
    up to four of the nine values may be outliers. On a smooth peak the median is a little
    below the centre value, so the size is a little larger than Luo's. NaN as ``luo_size``.
    """
    m, (r, c) = _map_and_center(m, center)
    r, c = int(r), int(c)
    patch = m[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]
    return _luo_count(m, float(np.median(patch)))


def moment_sigma(m, center: tuple[float, float] | None = None) -> tuple[float, float]:
    """Per-axis standard deviation (sigma_row, sigma_col) in pixels.

    The map is treated as a mass distribution (negative values clipped to 0). Second moments
    are taken about the centre of mass, or about ``center`` = (row, col) if given. NaN, NaN if
    the mass is zero or not finite.
    """
    m = as_map(m)
    w = _mass(m)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return float("nan"), float("nan")
    r0, c0 = center_of_mass(m) if center is None else center
    rows, cols = np.indices(w.shape)
    var_r = (w * (rows - r0) ** 2).sum() / total
    var_c = (w * (cols - c0) ** 2).sum() / total
    return float(np.sqrt(var_r)), float(np.sqrt(var_c))


@functools.lru_cache(maxsize=8)
def _ramp_order(shape: tuple[int, int], center: tuple[float, float]):
    """For ``mass_radius``: the pixel distances from ``center`` (flat, row-major), their stable
    ascending order, and the sorted breakpoints d - 1 and d of every pixel's ramp; cached, as
    bootstrap replicates ask for the same shape and centre."""
    rows, cols = np.indices(shape)
    dist = np.hypot(rows - center[0], cols - center[1]).ravel()
    order = np.argsort(dist, kind="stable")
    return dist[order], order, np.unique(np.concatenate([dist - 1.0, dist]))


def _ramp_sum(points: np.ndarray, starts: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """sum_p masses[p] * max(r - starts[p], 0) at every r of ``points`` (``starts`` sorted)."""
    k = np.searchsorted(starts, points, side="right")
    mass = np.concatenate([[0.0], np.cumsum(masses)])
    moment = np.concatenate([[0.0], np.cumsum(masses * starts)])
    return points * mass[k] - moment[k]


def mass_radius(m, fraction: float = 0.5, center: tuple[float, float] | None = None) -> float:
    """Radius in pixels of the disk about ``center`` (default :func:`erf_center`) that holds
    ``fraction`` of the non-negative mass, read off a continuous cumulative mass curve.

    A pixel at distance d enters the disk over radii d - 1 to d (linearly; wholly inside at
    radius d, as in a count of the pixels within r): M(r) = sum_p m_p · clip(r - d_p + 1, 0,
    1), and the radius is the smallest r >= 0 with M(r) = ``fraction`` · total (0 when the
    centre pixel holds it). A count of whole pixels moves in jumps between pixel distances, so
    its bootstrap interval is mostly zero wide; this curve moves with the map and with the
    centre. NaN if the mass is zero or not finite.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    m, (r0, c0) = _map_and_center(m, center)
    dist, order, points = _ramp_order(m.shape, (float(r0), float(c0)))
    masses = _mass(m).ravel()[order]
    total = masses.sum()
    if not np.isfinite(total) or total <= 0:
        return float("nan")
    curve = _ramp_sum(points, dist - 1.0, masses) - _ramp_sum(points, dist, masses)
    target = fraction * total
    j = min(int(np.searchsorted(curve, target, side="left")), curve.size - 1)
    if j == 0:
        return max(float(points[0]), 0.0)
    step = curve[j] - curve[j - 1]
    share = (target - curve[j - 1]) / step if step > 0 else 1.0
    radius = points[j - 1] + (points[j] - points[j - 1]) * min(max(share, 0.0), 1.0)
    return max(float(radius), 0.0)


def loglog_slope(x, y) -> tuple[float, float, float]:
    """Least-squares fit log(y) = slope * log(x) + intercept (natural logs).

    Returns (slope, intercept, standard error of the slope). Pairs where either value is
    non-finite or <= 0 are ignored. The standard error is NaN with fewer than 3 points; all are
    NaN with fewer than 2 points or a single distinct x.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = lx.size
    nan = float("nan")
    if n < 2:
        return nan, nan, nan
    dx = lx - lx.mean()
    sxx = (dx**2).sum()
    if sxx <= 0:
        return nan, nan, nan
    slope = (dx * (ly - ly.mean())).sum() / sxx
    intercept = ly.mean() - slope * lx.mean()
    if n < 3:
        return float(slope), float(intercept), nan
    resid = ly - (slope * lx + intercept)
    se = np.sqrt((resid**2).sum() / (n - 2) / sxx)
    return float(slope), float(intercept), float(se)


def is_degenerate(m) -> str | None:
    """Why the map is unusable ("empty map", "contains NaN/Inf", "all zero", "constant map",
    "vanishing map": a peak below float64's smallest normal number, where the map has lost its
    precision), or None if it is usable. A 1-pixel map counts as constant."""
    m = np.asarray(m, dtype=np.float64)
    if m.size == 0:
        return "empty map"
    if not np.isfinite(m).all():
        return "contains NaN/Inf"
    if not m.any():
        return "all zero"
    if m.max() == m.min():
        return "constant map"
    peak = float(np.abs(m).max())
    if peak < np.finfo(np.float64).tiny:
        return f"vanishing map (peak {peak:.3g} below the smallest normal float64)"
    return None


REPLKNET_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def area_ratios(
    m,
    thresholds: tuple[float, ...] = REPLKNET_THRESHOLDS,
    center: tuple[int, int] | None = None,
) -> dict[float, float]:
    """RepLKNet's high-contribution area ratios (Ding et al. CVPR 2022, erf/analyze_erf.py),
    each in [0, 1].

    The map is scaled as log10(x + 1), then divided by its max. For each threshold t a square
    of side 2i + 1 (i = 1, 2, ...) centred on ``center`` (default :func:`erf_center`) grows
    until the fraction of the total inside it *exceeds* t; the ratio is the area of the
    square's part inside the map over the map's area, rows_inside x cols_inside / (H x W).
    On a square map with the default centre the square never leaves the map, and this is
    RepLKNet's side² / (H·W) exactly; on a non-square map the square stops growing along the
    short side, so the ratio stays a fraction of the map (RepLKNet's formula would exceed 1).
    When no square up to i = max(H, W) // 2 - 1 exceeds t (RepLKNet's loop bound), the ratio
    is NaN. On a uniform map the ratio is the smallest such area above t. Note that
    log10(x + 1) depends on the map's absolute scale: compare maps made the same way.
    """
    m, (r0, c0) = _map_and_center(m, center)
    data = np.log10(_mass(m) + 1.0)
    peak = data.max() if data.size else 0.0
    h, w = data.shape
    out = {float(t): float("nan") for t in thresholds}
    if not np.isfinite(peak) or peak <= 0:
        return out
    data = data / peak
    # Every window's sum from one summed-area table (a bootstrap computes this 200 times).
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = data.cumsum(0).cumsum(1)
    i = np.arange(1, max(h, w) // 2)
    top, bottom = np.maximum(r0 - i, 0), np.minimum(r0 + i + 1, h)
    left, right = np.maximum(c0 - i, 0), np.minimum(c0 + i + 1, w)
    inside = table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left]
    fractions = inside / table[h, w]
    areas = (bottom - top) * (right - left) / (h * w)
    for t in thresholds:
        above = np.flatnonzero(fractions > t)
        if above.size:
            out[float(t)] = float(areas[above[0]])
    return out


def radial_mass(m, center: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radial cumulative mass profile: for r = 0, 1, 2, ... pixels, the fraction of the total
    (non-negative) mass within Euclidean distance r of ``center`` (default :func:`erf_center`).

    Returns (radii, fraction); fraction is non-decreasing and ends at 1. All-NaN for a map
    without positive mass.
    """
    m, (cr, cc) = _map_and_center(m, center)
    w = _mass(m)
    rows, cols = np.indices(w.shape)
    dist = np.hypot(rows - cr, cols - cc)
    radii = np.arange(int(np.ceil(dist.max())) + 1, dtype=np.float64)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return radii, np.full_like(radii, np.nan)
    per_ring = np.bincount(
        np.ceil(dist).astype(int).ravel(), weights=w.ravel(), minlength=len(radii)
    )
    return radii, np.cumsum(per_ring) / total
