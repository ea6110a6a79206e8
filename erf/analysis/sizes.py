"""Size metrics: each one a registry entry that says what it measures on a map, the columns it
adds to a job's row, and how its interval is made.

An entry (``@size_metric(...)`` on a function ``(map, center) -> {column: value}``) carries

- ``name``: the method of ``erf.erf_size(map, method=name)`` (entries with a ``size``);
- ``columns``: the ``metrics.json`` / ``summary.csv`` columns it writes, with their labels
  (``erf.analysis.row`` places them in the row);
- ``interval``: how ``erf_metrics`` makes each column's interval over input groups or draws,
  one of ``INTERVALS``: "count_band" (the t-band of Luo's threshold count,
  ``erf.analysis.bands``; the entry gives ``band``), "bootstrap" (expanded percentile
  bootstrap of the measure), "jackknife" (delete-a-block jackknife about the row's value), or
  None (no interval: say why in ``why_no_interval``). Every interval kind is the one the
  coverage simulation (``erf.analysis.calibration``) shows to cover at its level; a new metric
  runs through that simulation by being registered.

Adding a size metric is one entry here plus its test (``tests/analysis/test_sizes.py``).
Pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from erf.analysis.bands import luo_size_band
from erf.analysis.metrics import (
    REPLKNET_THRESHOLDS,
    area_ratios,
    as_map,
    erf_center,
    luo_size,
    mass_radius,
    moment_sigma,
    robust_luo_size,
    unit_location,
)
from erf.result import ERFResult

INTERVALS = ("count_band", "bootstrap", "jackknife", None)
Measure = Callable[[np.ndarray, tuple[int, int]], dict[str, float]]
Band = Callable[..., tuple[float, float]]  # (groups, group_n, center, level, clamp=) -> (lo, hi)


@dataclass(frozen=True)
class SizeMetric:
    """One registered size metric (see the module docstring)."""

    name: str
    columns: dict[str, str]  # column -> label (axis labels, table headings)
    measure: Measure
    interval: str | None
    size: Callable[..., float] | None = None  # erf_size(map, method=name, **kw)
    band: Band | None = None
    why_no_interval: str = ""
    centred: bool = True  # measured about the unit's centre pixel (else its own centre)
    family: str = ""  # how ``ci_method`` names it (default: the name)


_REGISTRY: dict[str, SizeMetric] = {}


def size_metric(
    name: str,
    columns: dict[str, str],
    *,
    interval: str | None,
    size: Callable[..., float] | None = None,
    band: Band | None = None,
    why_no_interval: str = "",
    centred: bool = True,
    family: str = "",
) -> Callable[[Measure], Measure]:
    """Register the decorated ``measure(map, center) -> {column: value}`` as size metric
    ``name`` (a name or column taken twice, or an interval kind without what it needs, is a
    ValueError). ``why_no_interval``: a short reason that ``ci_method`` quotes; ``family``:
    the metric's name there (default ``name``)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if (interval == "count_band") != (band is not None):
        raise ValueError("a count_band interval needs band=..., and only it takes one")
    if interval is None and not why_no_interval:
        raise ValueError(f"size metric {name!r} has no interval: say why (why_no_interval=)")

    def register(measure: Measure) -> Measure:
        taken = {c for m in _REGISTRY.values() for c in m.columns}
        if name in _REGISTRY or taken & set(columns):
            raise ValueError(f"size metric {name!r} or one of its columns is already registered")
        _REGISTRY[name] = SizeMetric(
            name,
            dict(columns),
            measure,
            interval,
            size,
            band,
            why_no_interval,
            centred,
            family or name,
        )
        return measure

    return register


def size_metrics_registered() -> tuple[SizeMetric, ...]:
    """Every registered size metric, in registration order."""
    return tuple(_REGISTRY.values())


def get_size_metric(name: str) -> SizeMetric:
    """The size metric ``name``; a one-line ValueError naming the methods when there is none."""
    found = _REGISTRY.get(name)
    if found is None or found.size is None:
        methods = ", ".join(m.name for m in _REGISTRY.values() if m.size is not None)
        raise ValueError(f"unknown method {name!r}; allowed: {methods}")
    return found


def measure_all(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """Every registered metric's columns of one map about ``center``, in registration order."""
    out: dict[str, float] = {}
    for metric in _REGISTRY.values():
        out.update(metric.measure(m, center))
    return out


def measure_kind(kind: str, m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """The columns of the metrics whose interval is ``kind`` (what a resampling recomputes)."""
    out: dict[str, float] = {}
    for metric in _REGISTRY.values():
        if metric.interval == kind:
            out.update(metric.measure(m, center))
    return out


def no_interval_text() -> str:
    """``ci_method``'s clause for the metrics without an interval ("area ratios: none (...)")."""
    return "; ".join(
        f"{m.family}: none ({m.why_no_interval})" for m in _REGISTRY.values() if m.interval is None
    )


def interval_columns(kind: str | None = None) -> tuple[str, ...]:
    """The columns that get an interval (``kind``: only those made that way)."""
    return tuple(
        c
        for metric in _REGISTRY.values()
        if metric.interval is not None and (kind is None or metric.interval == kind)
        for c in metric.columns
    )


def erf_size(m: Any, method: str = "luo", *, trf: Any = None, **kw: Any) -> float:
    """One ERF size in pixels, by ``method`` (a registered size metric with a size: "luo",
    "robust", "moment", "mass"), of a map or an ``ERFResult``, centred at
    ``erf.analysis.metrics.erf_center``. With ``trf`` (the result's ``erf.TheoreticalRF``) a
    centred metric's centre is the exact TRF centre (``unit_location``), the pixel
    ``metrics.json`` uses; without it an ``ERFResult`` is centred at the probe's grid-scale
    estimate, which can be a pixel off on strided networks.

    "luo": ``luo_size``; "robust": ``robust_luo_size``; "moment": geometric mean
    sqrt(sigma_row * sigma_col) of ``moment_sigma`` (about the centre of mass); "mass":
    ``mass_radius``. Extra keywords go to that function.
    """
    metric = get_size_metric(method)
    if trf is not None:
        if not isinstance(m, ERFResult):
            raise ValueError("erf_size(trf=...) needs the ERFResult (its probed position)")
        if metric.centred and "center" not in kw:
            kw["center"] = erf_center(m, unit_location(m, trf)[0])
    return metric.size(m, **kw)


def _geometric_moment(m: Any, **kw: Any) -> float:
    s_row, s_col = moment_sigma(m, **kw)
    return float(np.sqrt(s_row * s_col))


# ------------------------------------------------------------------------- registered metrics


@size_metric(
    "luo",
    {"erf_size": "ERF size (px)"},
    interval="count_band",
    size=luo_size,
    band=lambda *a, **kw: luo_size_band(*a, robust=False, **kw),
)
def _luo(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """Luo et al.'s size: sqrt(#pixels > (1 - 0.9545) · value at the centre pixel)."""
    return {"erf_size": luo_size(m, center=center)}


@size_metric(
    "robust",
    {"erf_size_robust": "robust ERF size (px)"},
    interval="count_band",
    size=robust_luo_size,
    band=lambda *a, **kw: luo_size_band(*a, robust=True, **kw),
)
def _robust(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """Luo's size relative to the median of the centre's 3 x 3 neighbourhood."""
    return {"erf_size_robust": robust_luo_size(m, center=center)}


@size_metric(
    "moment",
    {"moment_sigma_row": "moment σ rows (px)", "moment_sigma_col": "moment σ cols (px)"},
    interval="jackknife",
    size=_geometric_moment,
    centred=False,
)
def _moment(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """Second-moment standard deviations about the centre of mass (``center`` unused)."""
    s_row, s_col = moment_sigma(m)
    return {"moment_sigma_row": s_row, "moment_sigma_col": s_col}


@size_metric(
    "mass",
    {"mass_radius_50": "50 % mass radius (px)", "mass_radius_95": "95.45 % mass radius (px)"},
    interval="bootstrap",
    size=mass_radius,
)
def _mass(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """Radii of the disks about the centre pixel holding 50 % and 95.45 % of the mass."""
    return {
        "mass_radius_50": mass_radius(m, 0.5, center=center),
        "mass_radius_95": mass_radius(m, 0.9545, center=center),
    }


@size_metric(
    "area",
    {f"area_ratio_{round(t * 100)}": f"area ratio {round(t * 100)} %" for t in REPLKNET_THRESHOLDS},
    interval=None,
    why_no_interval="they move in whole square rings",  # a bootstrap: mostly zero wide
    family="area ratios",
)
def _area(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """RepLKNet's high-contribution area ratios (log10(x + 1) scaling, centred squares)."""
    return {f"area_ratio_{round(t * 100)}": v for t, v in area_ratios(m, center=center).items()}


def participation_size(m: Any) -> float:
    """sqrt((Σ m)² / Σ m²) of the map's non-negative part, in pixels: the side of the square of
    equal pixels with the same participation ratio (a uniform k x k box gives k, a Gaussian of
    σ gives 2√π σ). Threshold-free, scale-free, about no centre. NaN without positive mass."""
    w = np.clip(as_map(m), 0.0, None)
    total, square = w.sum(), (w * w).sum()
    if not (np.isfinite(total) and total > 0 and square > 0):
        return float("nan")
    return float(total / np.sqrt(square))


@size_metric(
    "participation",
    {"participation_size": "participation size (px)"},
    interval=None,
    # bootstrap coverage 0.25-0.91 at 0.95 (experiments/calibration/participation_coverage.csv)
    why_no_interval="biased low by the noise in Σ m², so a bootstrap undercovers",
    family="participation_size",
    size=participation_size,
    centred=False,
)
def _participation(m: np.ndarray, center: tuple[int, int]) -> dict[str, float]:
    """``participation_size`` of the map (``center`` unused)."""
    return {"participation_size": participation_size(m)}


__all__ = [
    "INTERVALS",
    "SizeMetric",
    "erf_size",
    "get_size_metric",
    "participation_size",
    "interval_columns",
    "measure_all",
    "measure_kind",
    "no_interval_text",
    "size_metric",
    "size_metrics_registered",
]
