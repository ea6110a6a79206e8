"""Numbers of the cross-architecture study: per (model, inputs, size) cell, the seed-averaged
map and a mean with a 95 % Student-t interval over seeds of every metric. Pure numpy/scipy.

Rows are the flat metric dicts of ``metrics.json`` (one per job, one job per seed). Each seed
is one independent draw (new weights at init, new inputs), so the interval of a metric is
``mean ± t_{(1+level)/2, n-1} · s / √n`` over the n finite per-seed values (s: sample std,
ddof 1); with one value it is NaN-wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from erf.analysis.studies import t_interval

# Per-seed metrics the study reports (pixels, or fractions of the input for area ratios).
CROSS_ARCH_METRICS = (
    "area_ratio_20",
    "area_ratio_30",
    "area_ratio_50",
    "area_ratio_99",
    "erf_size",
    "trf_size",
    "erf_trf_ratio",
)


def seed_interval(values: Sequence[float | None], level: float = 0.95) -> dict[str, float]:
    """``{"n", "mean", "lo", "hi"}`` of the finite ``values`` (None and NaN are skipped):
    the mean and the two-sided Student-t interval at ``level`` over them."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    t = t_interval([math.nan if v is None else float(v) for v in values], level)
    return {"n": t["n"], "mean": t["mean"], "lo": t["low"], "hi": t["high"]}


def trf_is_global(row: Mapping[str, Any]) -> bool:
    """Whether a job's TRF is the whole input (``is_global`` or a ``trf_global_from`` layer)."""
    return bool(row.get("is_global") or row.get("trf_global_from"))


def cell_key(row: Mapping[str, Any], by: Sequence[str]) -> tuple:
    """The cell a job belongs to: its values of ``by`` (None where missing)."""
    return tuple(row.get(k) for k in by)


def group_cells(
    rows: Sequence[Mapping[str, Any]], by: Sequence[str]
) -> dict[tuple, list[Mapping[str, Any]]]:
    """Jobs grouped by their values of ``by``, in order of first appearance."""
    cells: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        cells.setdefault(cell_key(row, by), []).append(row)
    return cells


def cell_stats(
    members: Sequence[Mapping[str, Any]],
    metrics: Sequence[str] = CROSS_ARCH_METRICS,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """``metric -> seed_interval`` over the jobs of one cell. A global TRF has no size: its
    ``trf_size`` and ``erf_trf_ratio`` are left out (NaN) for jobs whose ``is_global`` is true."""
    out = {}
    for metric in metrics:
        sized = metric not in ("trf_size", "erf_trf_ratio")
        values = [m.get(metric) if sized or not trf_is_global(m) else None for m in members]
        out[metric] = seed_interval(values, level)
    return out


def mean_map(maps: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of equally shaped [H, W] maps (float64): the seed-averaged ERF of a cell."""
    if not maps:
        raise ValueError("no maps to average")
    shapes = {np.shape(m) for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"maps of different shapes cannot be averaged: {sorted(shapes)}")
    return np.mean(np.stack([np.asarray(m, dtype=np.float64) for m in maps]), axis=0)
