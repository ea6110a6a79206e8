"""Size metrics of 2-D ERF maps. Pure numpy, no torch.

Conventions: a map is an ``[H, W]`` array, row-major, indexed (row, col); all sizes are in
pixels. The default centre of an H x W map is the pixel ``(H // 2, W // 2)``.
"""

from __future__ import annotations

import numpy as np

LUO_FRACTION = 0.9545  # Luo et al. 2016: pixels above (1 - 0.9545) * centre value count as ERF
SIZE_METHODS = ("luo", "moment", "mass")


def as_map(m) -> np.ndarray:
    """Return ``m`` as a float64 ``[H, W]`` array; ValueError if it is not 2-D."""
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D map [H, W], got shape {m.shape}")
    return m


def default_center(m: np.ndarray) -> tuple[int, int]:
    """The centre pixel (H // 2, W // 2) of an H x W map."""
    return m.shape[0] // 2, m.shape[1] // 2


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
    ``center`` = (row, col), default (H // 2, W // 2). NaN if the centre value is <= 0 or not
    finite.
    """
    m = as_map(m)
    r, c = default_center(m) if center is None else center
    v = m[r, c]
    if not np.isfinite(v) or v <= 0:
        return float("nan")
    return float(np.sqrt(np.count_nonzero(m > (1.0 - LUO_FRACTION) * v)))


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


def mass_radius(m, fraction: float = 0.5, center: tuple[float, float] | None = None) -> float:
    """Radius in pixels of the smallest centred disk holding ``fraction`` of the mass.

    Pixels are sorted by Euclidean distance from ``center`` (default (H // 2, W // 2)); the
    result is the distance of the pixel at which the cumulative non-negative mass first reaches
    ``fraction`` * total. NaN if the mass is zero or not finite.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    m = as_map(m)
    w = _mass(m).ravel()
    r0, c0 = default_center(m) if center is None else center
    rows, cols = np.indices(m.shape)
    dist = np.hypot(rows - r0, cols - c0).ravel()
    order = np.argsort(dist, kind="stable")
    cum = np.cumsum(w[order])
    total = cum[-1] if cum.size else 0.0
    if not np.isfinite(total) or total <= 0:
        return float("nan")
    i = min(int(np.searchsorted(cum, fraction * total, side="left")), cum.size - 1)
    return float(dist[order[i]])


def erf_size(m, method: str = "luo", **kw) -> float:
    """One ERF size in pixels, by ``method``.

    "luo": :func:`luo_size`; "moment": geometric mean sqrt(sigma_row * sigma_col) of
    :func:`moment_sigma`; "mass": :func:`mass_radius`. Extra keywords go to that function.
    """
    m = as_map(m)
    if method == "luo":
        return luo_size(m, **kw)
    if method == "moment":
        sr, sc = moment_sigma(m, **kw)
        return float(np.sqrt(sr * sc))
    if method == "mass":
        return mass_radius(m, **kw)
    raise ValueError(f"unknown method {method!r}; allowed: {', '.join(SIZE_METHODS)}")


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


def area_ratios(m, thresholds: tuple[float, ...] = REPLKNET_THRESHOLDS) -> dict[float, float]:
    """RepLKNet's high-contribution area ratios (Ding et al. CVPR 2022, erf/analyze_erf.py).

    The map is scaled as log10(x + 1), then divided by its max. For each threshold t the
    centred square of side 2i + 1 (i = 1, 2, ...; centre (H // 2, W // 2)) grows until the
    fraction of the total inside it *exceeds* t; the ratio is side² / (H·W). When no square
    up to i = H // 2 - 1 exceeds t (RepLKNet's loop bound), the ratio is NaN. Note that
    log10(x + 1) depends on the map's absolute scale: compare maps made the same way.
    """
    data = np.log10(_mass(as_map(m)) + 1.0)
    peak = data.max() if data.size else 0.0
    h, w = data.shape
    out = {float(t): float("nan") for t in thresholds}
    if not np.isfinite(peak) or peak <= 0:
        return out
    data = data / peak
    total = data.sum()
    r0, c0 = h // 2, w // 2
    for t in thresholds:
        for i in range(1, h // 2):
            inside = data[max(r0 - i, 0) : r0 + i + 1, max(c0 - i, 0) : c0 + i + 1].sum()
            if inside / total > t:
                side = 2 * i + 1
                out[float(t)] = side * side / (h * w)
                break
    return out


def radial_mass(m, center: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radial cumulative mass profile: for r = 0, 1, 2, ... pixels, the fraction of the total
    (non-negative) mass within Euclidean distance r of ``center`` (default (H // 2, W // 2)).

    Returns (radii, fraction); fraction is non-decreasing and ends at 1. All-NaN for a map
    without positive mass.
    """
    w = _mass(as_map(m))
    cr, cc = default_center(w) if center is None else center
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
