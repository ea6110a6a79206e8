"""Off-centre shift versus growth of an ERF map (the trained-vs-untrained study). Pure numpy.

Training can make a map larger (growth) or move its mass away from the probed unit (shift);
a size referenced to the unit, such as Luo's size (threshold relative to the value at the
unit's pixel), mixes the two. This module separates them:

- **shift**: the map's centre of mass minus the probed unit's position, in input pixels:
  ``shift_row``, ``shift_col`` and their Euclidean ``shift_norm``;
- **growth about its own centre** (``*_own``): sizes about the map's centre of mass, which a
  pure translation leaves unchanged;
- **growth about the probed unit** (``*_unit``): the same sizes about the unit, which a shift
  inflates.

Each size comes in three definitions (``erf.analysis.metrics``), all in pixels:
``luo_size`` (√ of the number of pixels above (1 − 0.9545) × the value at the reference
pixel), ``moment_sigma`` (geometric mean √(σ_row σ_col) of the second moments about the
reference point) and ``mass_radius_50`` (radius of the smallest disk about the reference
point holding half the non-negative mass). Luo's size needs a pixel: about the unit it is
the pixel ``floor(unit)`` (as ``erf.analysis.summary`` does for ``erf_size``), about the
centre of mass the nearest pixel to it.

By the parallel-axis theorem the second moment about the unit is σ_own² + shift² per axis,
so ``moment_sigma_unit`` ≥ ``moment_sigma_own``, with equality exactly when nothing moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from erf.analysis.metrics import as_map, center_of_mass, luo_size, mass_radius, moment_sigma
from erf.analysis.repeats import t_interval

SIZE_KEYS = ("luo_size", "moment_sigma", "mass_radius_50")
SHIFT_KEYS = ("shift_row", "shift_col", "shift_norm")
KEYS = SHIFT_KEYS + tuple(f"{k}_{ref}" for ref in ("own", "unit") for k in SIZE_KEYS)
PHASES = ("before", "after", "change")
VANISHED_RATIO = 1e-4  # a map whose peak fell below this fraction of the other's peak


def _pixel(m: np.ndarray, point: tuple[float, float], how: str) -> tuple[int, int]:
    """The pixel of ``point`` (``how`` "floor" or "nearest"), clipped into the map."""
    h, w = m.shape
    to_int = math.floor if how == "floor" else lambda v: int(np.rint(v))
    r, c = to_int(point[0]), to_int(point[1])
    return min(max(r, 0), h - 1), min(max(c, 0), w - 1)


def _sizes(m: np.ndarray, point: tuple[float, float], pixel: tuple[int, int]) -> dict[str, float]:
    s_row, s_col = moment_sigma(m, center=point)
    return {
        "luo_size": luo_size(m, center=pixel),
        "moment_sigma": float(math.sqrt(s_row * s_col)),
        "mass_radius_50": mass_radius(m, 0.5, center=point),
    }


def shift_growth(erf_map: np.ndarray, unit: Sequence[float]) -> dict[str, float]:
    """Shift and sizes of one map, in pixels (keys ``KEYS``; see the module docstring).

    ``unit`` is the probed unit's (row, col) in the map's input pixels (a half-pixel value,
    such as the centre of an even TRF, is allowed). Every value is NaN for a map without
    positive mass.
    """
    if len(unit) != 2 or not all(math.isfinite(float(v)) for v in unit):
        raise ValueError(f"unit must be a finite (row, col) in input pixels, got {unit!r}")
    m = as_map(erf_map)
    u = (float(unit[0]), float(unit[1]))
    com = center_of_mass(m)
    if not all(math.isfinite(v) for v in com):
        return {k: float("nan") for k in KEYS}
    d_row, d_col = com[0] - u[0], com[1] - u[1]
    out = {"shift_row": d_row, "shift_col": d_col, "shift_norm": float(math.hypot(d_row, d_col))}
    own = _sizes(m, com, _pixel(m, com, "nearest"))
    at_unit = _sizes(m, u, _pixel(m, u, "floor"))
    out.update({f"{k}_own": v for k, v in own.items()})
    out.update({f"{k}_unit": v for k, v in at_unit.items()})
    return out


def vanished(before: np.ndarray, after: np.ndarray, ratio: float = VANISHED_RATIO) -> str | None:
    """Why ``after`` cannot be compared with ``before`` (None if it can): no positive mass, or
    a peak below ``ratio`` times ``before``'s, i.e. the probed unit went (almost) dead on the
    probe inputs; its centre of mass would then be that of numerical dust."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    peak_before = float(np.max(np.clip(as_map(before), 0.0, None)))
    peak_after = float(np.max(np.clip(as_map(after), 0.0, None)))
    if not (math.isfinite(peak_after) and peak_after > 0):
        return "the map has no positive mass"
    if peak_after < ratio * peak_before:
        return (
            f"the map's peak fell to {peak_after / peak_before:.1e} of its value before: the "
            "probed unit is (almost) dead on the probe inputs"
        )
    return None


def shift_growth_change(
    before: Mapping[str, float], after: Mapping[str, float]
) -> dict[str, float]:
    """``after - before`` for every key of ``KEYS`` (pixels; growth > 0 means larger)."""
    return {k: float(after[k]) - float(before[k]) for k in KEYS}


def shift_growth_stats(
    rows: Sequence[Mapping[str, Any]], group_by: str = "task", level: float = 0.95
) -> list[dict[str, Any]]:
    """Per group (``group_by``, e.g. the task) and per key of ``KEYS``: the per-seed values
    before and after training and their change, each with its mean and two-sided Student-t
    interval over seeds (``erf.analysis.repeats.t_interval``).

    ``rows`` have ``group_by``, ``seed``, ``before`` and ``after`` (dicts from
    ``shift_growth``). Returns one entry per group: ``{group_by: name, "seeds": [...],
    key: {"before"|"after"|"change": {"values", "mean", "low", "high", "n"}}}``, seeds in
    ascending order; a seed that occurs twice in one group is refused.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[group_by], []).append(row)
    out = []
    for name, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed")))
        seeds = [r.get("seed") for r in members]
        if len(set(seeds)) != len(seeds):
            raise ValueError(
                f"{group_by}={name!r} has seeds {seeds}: one job per seed; use another "
                "sweep folder per setting"
            )
        entry: dict[str, Any] = {group_by: name, "seeds": seeds}
        for key in KEYS:
            values = {
                "before": [float(r["before"][key]) for r in members],
                "after": [float(r["after"][key]) for r in members],
            }
            values["change"] = [b - a for a, b in zip(values["before"], values["after"])]
            entry[key] = {
                phase: {"values": values[phase], **t_interval(values[phase], level)}
                for phase in PHASES
            }
        out.append(entry)
    return out
