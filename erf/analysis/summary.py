"""One measurement's numbers: ERF size metrics, Gaussian fit and TRF, as one flat dict, with
bootstrap intervals of every size metric.

Pure: takes an ERFResult and a TheoreticalRF, returns plain Python values (JSON-ready).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from erf import reductions
from erf.analysis.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    JACKKNIFE_BLOCKS,
    bootstrap_replicates,
    check_settings,
    jackknife_intervals,
    nonempty,
    percentile_interval,
)
from erf.analysis.fit import GaussianFit, fit_gaussian
from erf.analysis.metrics import (
    erf_center,
    is_degenerate,
    radial_mass,
    unit_location,
)
from erf.analysis.ndim import (
    fit_gaussian_nd,
    luo_axis_sizes,
    luo_size_nd,
    moment_sigmas,
    nd_center,
)
from erf.analysis.sizes import (
    interval_columns,
    measure_all,
    measure_kind,
    no_interval_text,
    size_metrics_registered,
)
from erf.result import ERFResult
from erf.rf import TheoreticalRF

FIT_KEYS = ("fit_r2", "sigma_x", "sigma_y")


# Metrics that get ``<key>_ci_low`` / ``<key>_ci_high`` (fixed names: error bars read them):
# the count-band sizes, their TRF ratio, the other registered sizes with an interval
# (``erf.analysis.sizes``), the Gaussian fit.
def ci_keys() -> tuple[str, ...]:
    """``CI_KEYS`` as the registry stands now (a metric registered later is included)."""
    banded = interval_columns("count_band")
    others = (c for c in interval_columns() if c not in banded)
    return (*banded, "erf_trf_ratio", *others, *FIT_KEYS)


CI_KEYS = ci_keys()
# The metrics whose intervals are delete-a-block jackknifes about the row's own values.
JACKKNIFE_KEYS = (*interval_columns("jackknife"), *FIT_KEYS)


def expanded_level(level: float, n: int) -> float:
    """The percentile level that makes a bootstrap over ``n`` groups cover at about ``level``:
    Hesterberg's expanded percentile interval (2015, "What teachers should know about the
    bootstrap", The American Statistician): 2·Φ(√(n / (n − 1)) · t_{n−1}((1 + level) / 2)) − 1.
    The plain percentile interval of a mean over n groups is too narrow by about
    √((n − 1) / n) and by the normal instead of Student's t quantile (measured: 0.89 coverage
    at 0.95 with 16 groups; 0.91 expanded, on skewed Exp(1)-noise maps)."""
    if n < 2:
        return level
    z = math.sqrt(n / (n - 1)) * stats.t.ppf((1 + level) / 2, n - 1)
    return float(2 * stats.norm.cdf(z) - 1)


def trf_bound(trf: TheoreticalRF) -> str:
    """What ``trf``'s size is: "lower" for a measured support that does not cover the input
    (pixels whose gradient vanished for the probed weights and inputs, or lying past the
    input's border, are missing: ``erf.probe.support``), else "exact" (the closed form, the
    graph analysis, or a measured support that covers the whole input: a global TRF)."""
    return "lower" if trf.source == "measured_support" and not trf.is_global else "exact"


def size_metrics(erf_map: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """The registered size metrics of one map about ``center`` (``erf.analysis.sizes``; pixels,
    area ratios are fractions): ``erf_size`` (Luo), ``erf_size_robust``, the moment sigmas, the
    mass radii and RepLKNet's area ratios."""
    return measure_all(erf_map, center)


def fit_metrics(erf_map: np.ndarray, start: GaussianFit | None = None) -> dict[str, float]:
    """``fit_r2``, ``sigma_x``, ``sigma_y`` of the Gaussian fit of one map (warm-started
    from ``start`` when given)."""
    fit = fit_gaussian(erf_map, start=start)
    return {"fit_r2": fit.r_squared, "sigma_x": fit.sigma_x, "sigma_y": fit.sigma_y}


def erf_metrics(
    result: ERFResult,
    trf: TheoreticalRF | None = None,
    r2_min: float = 0.9,
    *,
    bootstrap: int = DEFAULT_REPLICATES,
    ci_level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Metrics of ``result.map`` (pixels unless stated), with the TRF when given.

    - ``center_row``/``center_col``: the reference pixel of every centred metric
      (``erf.analysis.metrics.erf_center`` of the probed unit's place in the input).
    - ``erf_size``: Luo et al.'s size, sqrt(#pixels > (1 - 0.9545)·value at the centre
      pixel), i.e. the side of a square of equal area. ``erf_size_robust``: the same with the
      threshold relative to the median of the centre's 3 x 3 neighbourhood
      (``metrics.robust_luo_size``; a single spiky centre pixel barely moves it).
    - ``<key>_ci_low``/``<key>_ci_high`` for every key of ``CI_KEYS``: ``ci_level`` (0.95)
      intervals over the result's groups: input groups (``ERFResult.groups``), or weight draws
      for a pooled many-draws result (``meta["bootstrap_over"] == "draws"``); each family by
      the method that covers in ``erf.analysis.calibration`` (``_intervals``): the t-band of
      the threshold count for the Luo sizes (``erf.analysis.bands``), a delete-a-block
      jackknife for the sigmas and, about its bias-corrected value, for ``fit_r2``, the
      expanded percentile bootstrap (``bootstrap`` replicates, ``np.random.default_rng(seed)``)
      for the mass radii; none for the area ratios. ``ci_method`` says what they are over and
      how, ``ci_n`` is the number of groups or draws. NaN (null) without groups, with fewer
      than 2 or on a degenerate map; ``bootstrap=0`` keeps only the count bands.
    - ``n_dead``/``dead_fraction``: inputs whose per-sample map was all zero, and their
      share of ``n_samples``.
    - ``sigma_x``/``sigma_y``/``rotation``/``fit_r2``: elliptical Gaussian fit (x = column).
    - ``moment_sigma_row``/``_col``: second-moment std about the centre of mass.
    - ``mass_radius_50``/``_95``: radius of the smallest disk about the centre pixel holding
      50 % / 95.45 % of the total.
    - ``trf_size``: sqrt(TRF rows × TRF cols), comparable with ``erf_size``;
      ``erf_trf_ratio`` = erf_size / trf_size; ``trf_path_sizes``: [rows, cols, number of
      input-to-target paths with that RF] when the graph analysis counted paths.
      ``trf_clipped`` is True when the TRF of the probed unit does not fit inside the input
      (the ERF is then cut off). ``trf_source``: "closed_form", "graph" or "measured_support"
      (a lower bound, ``erf.probe.support``); ``trf_bound``: ``trf_bound(trf)``, "lower" when
      ``trf_size`` is only a lower bound of the TRF, else "exact"; ``trf_global_from``: the
      first global layer; ``trf_varies_by_unit``: no single (size, stride, padding) describes
      the layer, so ``trf_rows``/``trf_cols`` are the probed unit's own box;
      ``trf_convention``: ``TheoreticalRF.convention`` (what the box counts as read).
    - ``area_ratio_20/30/50/99``: RepLKNet's high-contribution area ratios (log10(x+1)
      scaling, centred squares; ``metrics.area_ratios``).
    - ``radial_mass``: fraction of the mass within r = 0, 1, 2, ... pixels of the centre pixel.
    - ``unit_in_input``: (row, col) of the probed unit in input pixels: the centre of its
      exact local TRF, else the probe's grid-scale estimate (``erf.probe.layout.unit_in_input``;
      None for a prefix token); ``unit_in_input_from`` says which. ``layout``, ``grid``,
      ``prefix_tokens``, ``layout_decided_by``: how the probe read the target tensor.
    - ``degenerate``: None, or why no size or fit is reported (e.g. an all-zero map, or a map
      the probe knows to be rounding noise only: ``meta["noise_only"]``, an all-channel seed
      on a LayerNorm over the channels with uniform weights).
    - ``fit_problem``: None, or why the Gaussian parameters should not be read as a size (no
      convergence, degenerate map, or R² below ``r2_min``).

    A sequence ``[L]`` or volume ``[D, H, W]`` map gets ``nd_erf_metrics`` instead.
    """
    check_settings(bootstrap, ci_level)
    if result.ndim != 2:
        return nd_erf_metrics(result, trf, r2_min)
    erf_map = result.map
    unit = _unit_in_input(result, trf)
    center = erf_center(result.shape, unit["unit_in_input"])
    degenerate = _degenerate(result, erf_map)
    out: dict[str, Any] = {
        **_sample_fields(result, unit),
        "input_h": result.shape[0],
        "input_w": result.shape[1],
        "center_row": center[0],
        "center_col": center[1],
        "degenerate": degenerate,
    }
    fit = None
    if degenerate is None:
        fit = fit_gaussian(erf_map)
        out.update(
            **size_metrics(erf_map, center),
            radial_mass=radial_mass(erf_map, center=center)[1].tolist(),
            fit_r2=fit.r_squared,
            fit_problem=fit.degenerate or _poor_fit(fit.r_squared, r2_min),
            **{k: getattr(fit, k) for k in ("sigma_x", "sigma_y", "rotation")},
            fit=fit.to_dict(),
        )
    else:
        nan = float("nan")
        out.update(
            erf_size=nan, erf_size_robust=nan, sigma_x=nan, sigma_y=nan, fit_r2=nan,
            fit_problem=degenerate,
        )  # fmt: skip
    if trf is not None:
        (r0, r1), (c0, c1) = trf.interval(result.position)
        h, w = result.shape
        rows, cols = trf.size
        if trf.varies_by_unit:  # the probed unit's own box, not the centre unit's span
            rows, cols = r1 - r0 + 1, c1 - c0 + 1
        out.update(
            trf_rows=rows,
            trf_cols=cols,
            trf_size=math.sqrt(rows * cols),
            trf_varies_by_unit=trf.varies_by_unit,
            trf_convention=trf.convention,
            trf_stride=list(trf.stride),
            trf_padding=list(trf.padding),
            trf_interval=[[r0, r1], [c0, c1]],
            trf_clipped=bool(r0 < 0 or c0 < 0 or r1 >= h or c1 >= w),
            trf_source=trf.source,
            trf_bound=trf_bound(trf),
            trf_global_from=trf.global_from,
        )
        if trf.path_sizes:
            out["trf_path_sizes"] = [[int(r), int(c), int(n)] for (r, c), n in trf.path_sizes]
        out["erf_trf_ratio"] = out["erf_size"] / out["trf_size"]
    out.update(_intervals(result, center, fit, out, bootstrap, ci_level, seed))
    return out


def _intervals(
    result: ERFResult,
    center: tuple[int, int],
    fit: GaussianFit | None,
    row: dict[str, Any],
    replicates: int,
    level: float,
    seed: int,
) -> dict[str, Any]:
    """``<key>_ci_low``/``_ci_high`` of every ``CI_KEYS`` metric, ``ci_level``,
    ``ci_method`` and ``ci_n`` (``erf_metrics``; ``row`` holds its point values, about which
    the jackknife intervals sit). Each family's method is the one ``erf.analysis.calibration``
    shows to cover at ``level`` (``experiments/calibration``)."""
    over_draws = result.meta.get("bootstrap_over") == "draws"
    unit = "weight draws" if over_draws else "input groups"
    groups, group_n = (None, None) if result.groups is None else nonempty(
        result.groups, result.group_n
    )  # fmt: skip
    n = 0 if groups is None else len(groups)
    found: dict[str, tuple[float, float]] = {}
    if groups is None:
        method = "none: the result holds no bootstrap groups (probe.bootstrap_groups=0)"
    elif n < 2:
        method = f"none: {n} {unit} (an interval needs at least 2)"
    elif fit is None:
        method = "none: degenerate map"
    else:
        clamp = reductions.is_signed(result.reduce)
        for metric in size_metrics_registered():
            if metric.interval == "count_band":
                (key,) = metric.columns
                found[key] = metric.band(groups, group_n, center, level, clamp=clamp)
        if replicates > 0:
            estimate = {key: row[key] for key in JACKKNIFE_KEYS}
            start = fit if fit.degenerate is None else None
            found.update(
                _bootstrapped(
                    groups,
                    group_n,
                    center,
                    estimate,
                    start,
                    replicates=replicates,
                    level=level,
                    seed=seed,
                    clamp=clamp,
                )  # fmt: skip
            )
        method = _method_text(n, unit, over_draws, replicates, level, seed)
    trf_size = row.get("trf_size")
    if trf_size and "erf_size" in found:  # the TRF is exact: the ratio scales the interval
        low, high = found["erf_size"]
        found["erf_trf_ratio"] = (low / trf_size, high / trf_size)
    out: dict[str, Any] = {}
    for key in ci_keys():
        low, high = found.get(key, (math.nan, math.nan))
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high
    out.update(ci_level=level, ci_method=method, ci_n=n)
    return out


def _bootstrapped(
    groups: np.ndarray,
    group_n: np.ndarray,
    center: tuple[int, int],
    estimate: dict[str, float],
    start: GaussianFit | None,
    *,
    replicates: int,
    level: float,
    seed: int,
    clamp: bool,
) -> dict[str, tuple[float, float]]:
    """The resampling intervals of ``erf_metrics``: expanded percentile bootstrap intervals of
    the mass radii (``replicates``); delete-a-block jackknife t-intervals of the moment and
    Gaussian sigmas, and of the fit's R² about its bias-corrected value (the methods that
    cover best in ``experiments/calibration``)."""
    resampled = bootstrap_replicates(
        groups, group_n, lambda m: measure_kind("bootstrap", m, center),
        replicates=replicates, seed=seed, clamp=clamp,
    )  # fmt: skip
    percentiles = expanded_level(level, len(groups))
    found = {key: percentile_interval(v, percentiles) for key, v in resampled.items()}

    def smooth(m: np.ndarray) -> dict[str, float]:
        m = np.clip(m, 0.0, None) if clamp else m
        return {**measure_kind("jackknife", m, center), **fit_metrics(m, start)}

    jack = jackknife_intervals(
        groups, group_n, smooth, estimate, level=level, corrected=("fit_r2",)
    )
    found.update(jack)
    if "fit_r2" in found:
        low, high = found["fit_r2"]
        found["fit_r2"] = (low, min(high, 1.0))
    return found


def _method_text(
    n: int, unit: str, over_draws: bool, replicates: int, level: float, seed: int
) -> str:
    """``ci_method``: what the intervals are over, what not, and how each family is made."""
    scope = (
        "each draw's inputs included; not over architectures or input distributions"
        if over_draws
        else "not over weight draws: another seed gives another map"
    )
    blocks = min(n, JACKKNIFE_BLOCKS)
    resampled = (
        f"mass radii: expanded percentile bootstrap ({replicates} replicates, seed {seed}); "
        f"moment sigmas, sigma_x/y: jackknife t over {blocks} blocks; fit_r2: the same about "
        "its jackknife bias-corrected value, the R² at infinitely many inputs, which noise "
        "lowers (the interval may lie above fit_r2)"
        if replicates
        else "sigmas, mass radii, fit_r2: none (fit.bootstrap=0)"
    )
    return (
        f"{level:g} intervals over {n} {unit} ({scope}). erf_size, erf_size_robust, "
        f"erf_trf_ratio: t-band of the threshold count (conservative); {resampled}; "
        f"{no_interval_text()}"
    )


LAYOUT_KEYS = ("layout", "grid", "prefix_tokens", "layout_decided_by")


def _unit_in_input(result: ERFResult, trf: TheoreticalRF | None) -> dict[str, Any]:
    """``unit_in_input`` and ``unit_in_input_from`` (``erf.analysis.metrics.unit_location``)."""
    unit, source = unit_location(result, trf)
    return {"unit_in_input": unit, "unit_in_input_from": source}


def _poor_fit(r2: float, r2_min: float) -> str | None:
    """A flag for a converged fit whose R² is below ``r2_min`` (the map is not Gaussian)."""
    if math.isfinite(r2) and r2 < r2_min:
        return f"poor Gaussian fit: R² {r2:.3f} < {r2_min:g}; sigma_x/sigma_y are not a size"
    return None


def nd_erf_metrics(
    result: ERFResult, trf: TheoreticalRF | None = None, r2_min: float = 0.9
) -> dict[str, Any]:
    """Metrics of a sequence (``[L]``) or volume (``[D, H, W]``) map, in samples / voxels,
    one list entry per axis ((t,) or (d, h, w); ``erf.analysis.ndim``):

    - ``ndim``, ``map_shape``, ``center`` (the reference entry: the probed unit's place in the
      input, ``nd_center``), ``unit_in_input`` / ``unit_in_input_from`` as for images;
    - ``erf_size``: Luo's count above (1 - 0.9545) x the centre value, as ``count ** (1/ndim)``
      (1-D: a length); ``erf_size_axes``: Luo's size along each axis through the centre;
      ``moment_sigmas``: standard deviation per axis about the centre of mass;
    - ``fit``: the Gaussian fit with a full covariance (``fit_gaussian_nd``), ``fit_sigmas``
      (per axis), ``fit_r2`` and ``fit_problem`` (R² below ``r2_min``, no convergence);
    - with ``trf``: ``trf_sizes`` (per axis), ``trf_size`` (their geometric mean, comparable
      with ``erf_size``), ``trf_interval`` (``[[start, end], ...]`` of the probed unit),
      ``trf_clipped``, ``trf_stride``, ``trf_padding``, ``trf_source``, ``trf_bound``,
      ``trf_global_from``, ``erf_trf_ratio`` and ``erf_trf_ratio_axes``;
    - ``ci_method``: intervals over input groups are made for 2-D maps only (none here).
    """
    erf_map = result.map
    unit = _unit_in_input(result, trf)
    center = nd_center(result.shape, unit["unit_in_input"])
    degenerate = _degenerate(result, erf_map)
    nan = float("nan")
    out: dict[str, Any] = {
        **_sample_fields(result, unit),
        "ndim": result.ndim,
        "map_shape": list(result.shape),
        "center": list(center),
        "degenerate": degenerate,
        "erf_size": nan,
        "erf_size_axes": [nan] * result.ndim,
        "fit_r2": nan,
        "fit_problem": degenerate,
    }
    if degenerate is None:
        fit = fit_gaussian_nd(erf_map)
        out.update(
            erf_size=luo_size_nd(erf_map, center),
            erf_size_axes=list(luo_axis_sizes(erf_map, center)),
            moment_sigmas=list(moment_sigmas(erf_map)),
            fit=fit.to_dict(),
            fit_sigmas=fit.to_dict()["sigmas"],
            fit_r2=fit.r_squared,
            fit_problem=fit.degenerate
            or (
                f"poor Gaussian fit: R² {fit.r_squared:.3f} < {r2_min:g}; fit_sigmas are not a size"
                if math.isfinite(fit.r_squared) and fit.r_squared < r2_min
                else None
            ),
        )
    if trf is not None:
        out.update(_nd_trf(result, trf, out))
    out.update(ci_level=nan, ci_method="none: intervals are made for 2-D maps only", ci_n=0)
    return out


def _nd_trf(result: ERFResult, trf: TheoreticalRF, row: dict[str, Any]) -> dict[str, Any]:
    """The TRF columns of ``nd_erf_metrics`` (``row`` holds the ERF sizes)."""
    spans = [tuple(int(v) for v in span) for span in trf.interval(result.position)]
    sizes = [int(b - a + 1) for a, b in spans] if trf.varies_by_unit else list(trf.size)
    trf_size = float(np.prod(sizes)) ** (1.0 / len(sizes))
    return {
        "trf_sizes": [int(v) for v in sizes],
        "trf_size": trf_size,
        "trf_interval": [list(span) for span in spans],
        "trf_clipped": any(a < 0 or b >= n for (a, b), n in zip(spans, result.shape)),
        "trf_stride": [float(v) if v != int(v) else int(v) for v in trf.stride],
        "trf_padding": [int(v) for v in trf.padding],
        "trf_varies_by_unit": trf.varies_by_unit,
        "trf_source": trf.source,
        "trf_bound": trf_bound(trf),
        "trf_global_from": trf.global_from,
        "erf_trf_ratio": row["erf_size"] / trf_size,
        "erf_trf_ratio_axes": [e / t for e, t in zip(row["erf_size_axes"], sizes)],
    }


def _degenerate(result: ERFResult, erf_map: np.ndarray) -> str | None:
    """Why the map is not a size (``is_degenerate``), or the probe's own "rounding noise
    only" when it knows the map is zero."""
    degenerate = is_degenerate(erf_map)
    if degenerate is None and result.meta.get("noise_only"):
        degenerate = f"rounding noise only: {result.meta['noise_only']}"
    return degenerate


def _sample_fields(result: ERFResult, unit: dict[str, Any]) -> dict[str, Any]:
    """The metrics every map has, images or not: layout, the unit, sample counts, reduce."""
    return {
        **{k: result.meta[k] for k in LAYOUT_KEYS if k in result.meta},
        **unit,
        "n_samples": result.n_samples,
        "n_nonfinite": result.n_nonfinite,
        "n_dead": result.n_dead,
        "dead_fraction": result.n_dead / result.n_samples if result.n_samples else math.nan,
        "reduce": result.reduce,
    }
