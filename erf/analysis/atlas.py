"""Per-unit numbers of an atlas (``erf.probe.atlas``): how the ERF changes with the unit's
position on its map. Pure numpy.

For each unit (one ``ERFResult``), in input pixels unless stated:

- ``unit_in_input_row``/``_col``: the unit's centre, the centre of its unclipped exact TRF box
  (``meta["atlas"]["trf_interval"]``; without one, the probe's grid-scale estimate);
- ``erf_size``: Luo's size with the threshold relative to the ERF's peak pixel
  (``peak_row``/``_col``, the argmax of the mean map) rather than the pixel under the unit,
  which a border unit's shifted ERF may leave nearly empty; with the t-band interval of its
  threshold count (``erf.analysis.bands``);
- ``centroid_row``/``_col``: the ERF's centre of mass; ``shift_row``/``_col``/``_norm``:
  centroid minus unit centre (the border pulls it inwards: positive rows at the top edge);
- ``moment_sigma``: √(σ_row σ_col) about the centroid (a size a shift does not inflate);
- ``trf_pixels``: the number of input pixels the unit can read (its exact dependence set;
  a corner unit of a zero-padded stack reads a quarter of a centre unit's);
  ``erf_trf_ratio``: ``erf_size / √trf_pixels``;
- ``mass_outside_trf``: the share of the ERF's mass outside the unclipped TRF box (0 unless
  padding wraps: circular padding brings the opposite border in).

Intervals (``<key>_ci_low``/``_ci_high``) are over the result's input groups at ``level``:
the count band for ``erf_size`` and ``erf_trf_ratio``, a delete-a-block jackknife for the
shifts, centroids and ``moment_sigma`` (the methods ``erf.analysis.summary`` uses for these
families). Position on the map: ``unit_row``/``unit_col`` (units), ``border_distance`` (units
to the nearest map edge) and ``region`` ("centre", "interior", "edge" or "corner").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from erf import reductions
from erf.analysis.bands import luo_size_band
from erf.analysis.bootstrap import jackknife_intervals, nonempty
from erf.analysis.metrics import center_of_mass, is_degenerate, luo_size, moment_sigma
from erf.result import ERFResult

JACKKNIFED = (
    "centroid_row", "centroid_col", "shift_row", "shift_col", "shift_norm", "moment_sigma",
)  # fmt: skip
INTERVAL_KEYS = ("erf_size", "erf_trf_ratio", *JACKKNIFED)
COLUMNS = (
    "unit_row", "unit_col", "region", "border_distance", "unit_in_input_row",
    "unit_in_input_col", "unit_in_input_from", "trf_rows", "trf_cols", "trf_pixels",
    "erf_size", "erf_trf_ratio", *JACKKNIFED, "peak_row", "peak_col", "mass_outside_trf",
    "n_samples", "degenerate",
    "pass",
)  # fmt: skip


def region(unit: Sequence[int], map_hw: Sequence[int]) -> str:
    """Where ``unit`` (row, col) sits on an h x w map: "centre" ((h // 2, w // 2)),
    "corner", "edge" (on one border) or "interior"."""
    (r, c), (h, w) = unit, map_hw
    on_row, on_col = r in (0, h - 1), c in (0, w - 1)
    if (r, c) == (h // 2, w // 2):
        return "centre"
    if on_row and on_col:
        return "corner"
    return "edge" if on_row or on_col else "interior"


def unit_centre(result: ERFResult) -> tuple[tuple[float, float] | None, str | None]:
    """The unit's centre in input pixels and where it comes from: the centre of the exact
    unclipped TRF box ("TRF"), else the grid-scale estimate ("grid scale")."""
    box = result.meta.get("atlas", {}).get("trf_interval")
    if box is not None:
        (r0, r1), (c0, c1) = box
        return ((r0 + r1) / 2, (c0 + c1) / 2), "TRF"
    estimate = result.meta.get("unit_in_input")
    if estimate is None:
        return None, None
    return (float(estimate[0]), float(estimate[1])), "grid scale"


def shape_stats(m: np.ndarray, centre: tuple[float, float]) -> dict[str, float]:
    """Centroid, shift from ``centre`` and ``moment_sigma`` of one map (NaN without mass)."""
    com = center_of_mass(m)
    s_row, s_col = moment_sigma(m)
    d_row, d_col = com[0] - centre[0], com[1] - centre[1]
    return {
        "centroid_row": com[0],
        "centroid_col": com[1],
        "shift_row": d_row,
        "shift_col": d_col,
        "shift_norm": float(math.hypot(d_row, d_col)),
        "moment_sigma": float(math.sqrt(s_row * s_col)),
    }


def mass_outside(m: np.ndarray, box: Any) -> float:
    """The share of the map's non-negative mass outside the inclusive box ((r0, r1),
    (c0, c1)) (clipped to the map); NaN without mass or box."""
    mass = np.clip(np.nan_to_num(m), 0.0, None)
    total = float(mass.sum())
    if box is None or total <= 0:
        return math.nan
    (r0, r1), (c0, c1) = box
    h, w = m.shape
    inside = mass[max(r0, 0) : min(r1, h - 1) + 1, max(c0, 0) : min(c1, w - 1) + 1].sum()
    return float(max(total - inside, 0.0) / total)


def atlas_row(result: ERFResult, level: float = 0.95) -> dict[str, Any]:
    """The numbers of one unit (module docstring), with their intervals at ``level``."""
    atlas = result.meta.get("atlas", {})
    unit = tuple(int(v) for v in result.position)
    map_hw = tuple(int(v) for v in result.target_shape[1:])
    centre, source = unit_centre(result)
    if centre is None:
        raise ValueError(f"unit {unit}: no place in the input (a prefix token?)")
    box = atlas.get("trf_interval")
    m = result.map
    m_finite = np.nan_to_num(m, nan=-np.inf)
    pixel = tuple(int(v) for v in np.unravel_index(int(np.argmax(m_finite)), m.shape))
    pixels = atlas.get("trf_pixels")
    row: dict[str, Any] = {
        "unit_row": unit[0],
        "unit_col": unit[1],
        "region": region(unit, map_hw),
        "border_distance": min(unit[0], map_hw[0] - 1 - unit[0], unit[1], map_hw[1] - 1 - unit[1]),
        "unit_in_input_row": centre[0],
        "unit_in_input_col": centre[1],
        "unit_in_input_from": source,
        "trf_rows": None if box is None else box[0][1] - box[0][0] + 1,
        "trf_cols": None if box is None else box[1][1] - box[1][0] + 1,
        "trf_pixels": pixels,
        "peak_row": pixel[0],
        "peak_col": pixel[1],
        "n_samples": result.n_samples,
        "degenerate": is_degenerate(m),
        "pass": atlas.get("pass"),
    }
    trf_size = math.sqrt(pixels) if pixels else math.nan
    if row["degenerate"] is None:
        row.update(shape_stats(m, centre), erf_size=luo_size(m, center=pixel))
        row["mass_outside_trf"] = mass_outside(m, box)
    else:
        row.update({k: math.nan for k in (*JACKKNIFED, "erf_size", "mass_outside_trf")})
    row["erf_trf_ratio"] = row["erf_size"] / trf_size
    row.update(_intervals(result, centre, pixel, trf_size, row, level))
    return row


def _intervals(result, centre, pixel, trf_size, row, level) -> dict[str, float]:
    """``<key>_ci_low``/``_ci_high`` of ``INTERVAL_KEYS`` over the result's input groups."""
    found: dict[str, tuple[float, float]] = {}
    if result.groups is not None and row["degenerate"] is None:
        groups, group_n = nonempty(result.groups, result.group_n)
        if len(groups) >= 2:
            clamp = reductions.is_signed(result.reduce)
            found["erf_size"] = luo_size_band(groups, group_n, pixel, level, clamp=clamp)
            low, high = found["erf_size"]
            found["erf_trf_ratio"] = (low / trf_size, high / trf_size)

            def stat(m: np.ndarray) -> dict[str, float]:
                return shape_stats(np.clip(m, 0.0, None) if clamp else m, centre)

            estimate = {k: row[k] for k in JACKKNIFED}
            found.update(jackknife_intervals(groups, group_n, stat, estimate, level=level))
    out = {}
    for key in INTERVAL_KEYS:
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = found.get(key, (math.nan, math.nan))
    return out


def atlas_rows(results: Sequence[ERFResult], level: float = 0.95) -> list[dict[str, Any]]:
    """``atlas_row`` of every unit, in the atlas's order."""
    return [atlas_row(r, level) for r in results]


def atlas_summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per region: the number of units and the mean of ``erf_size``, ``erf_trf_ratio``,
    ``shift_norm`` and ``moment_sigma`` over its units (finite values only)."""
    out: dict[str, dict[str, float]] = {}
    for name in ("centre", "interior", "edge", "corner"):
        members = [r for r in rows if r["region"] == name]
        if not members:
            continue
        entry: dict[str, float] = {"n_units": len(members)}
        for key in ("erf_size", "erf_trf_ratio", "shift_norm", "moment_sigma"):
            values = [float(r[key]) for r in members if np.isfinite(float(r[key]))]
            entry[key] = float(np.mean(values)) if values else math.nan
        out[name] = entry
    return out


__all__ = [
    "COLUMNS",
    "INTERVAL_KEYS",
    "JACKKNIFED",
    "atlas_row",
    "atlas_rows",
    "atlas_summary",
    "mass_outside",
    "region",
    "shape_stats",
    "unit_centre",
]
