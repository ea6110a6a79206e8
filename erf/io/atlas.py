"""An atlas's files and figure, from plain data: the per-unit rows (``erf.analysis.atlas``),
the maps ``[K, H, W]`` and the job's record.

``write_atlas`` writes ``atlas.csv`` (one row per unit, ``erf.analysis.atlas.COLUMNS`` and
their intervals), ``atlas_maps.npz`` (``maps`` float64 ``[K, H, W]`` in input pixels,
``units`` ``[K, 2]`` (row, col), ``trf_interval`` ``[K, 2, 2]`` unclipped boxes, -1 without
one), ``atlas.png`` (``atlas_figure``), ``atlas.html`` (the interactive page,
``erf.io.atlas_page``) and, last, ``atlas.json`` (the record, the rows and the size and sha256
of the other files: the completion marker).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from erf.analysis.atlas import COLUMNS, INTERVAL_KEYS
from erf.io.atlas_page import atlas_html
from erf.io.figure_style import caption, styled, wrap
from erf.io.plots import save_figure
from erf.io.store import atomic_write, file_record, write_json, write_text
from erf.io.tables import csv_text

CSV_COLUMNS = (
    *COLUMNS,
    *(f"{k}_ci_{end}" for k in INTERVAL_KEYS for end in ("low", "high")),
)


def unit_grid(rows: Sequence[dict[str, Any]], key: str, map_hw: Sequence[int]) -> np.ndarray:
    """``key`` of every row placed on the h x w map at (unit_row, unit_col); NaN elsewhere."""
    grid = np.full(tuple(int(v) for v in map_hw), np.nan)
    for r in rows:
        value = r.get(key)
        grid[r["unit_row"], r["unit_col"]] = np.nan if value is None else float(value)
    return grid


def _map_panel(fig, ax, rows, key: str, map_hw, label: str, cmap: str) -> None:
    grid = unit_grid(rows, key, map_hw)
    image = ax.imshow(grid, cmap=cmap, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, shrink=0.85, pad=0.02, fraction=0.05)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    ax.set_xlabel("output unit column")
    ax.set_ylabel("output unit row")


def _shift_panel(fig, ax, rows, map_hw) -> None:
    """Shift arrows (centroid minus unit centre, in input pixels) on the map of |shift|."""
    _map_panel(fig, ax, rows, "shift_norm", map_hw, "|ERF centroid − unit centre| (px)", "magma")
    step = max(1, -(-max(int(v) for v in map_hw) // 16))  # at most about 16 arrows a side
    ok = [
        r
        for r in rows
        if math.isfinite(float(r["shift_norm"]))
        and (r["unit_row"] % step == 0 or r["unit_row"] == int(map_hw[0]) - 1)
        and (r["unit_col"] % step == 0 or r["unit_col"] == int(map_hw[1]) - 1)
    ]
    if ok:
        cols = np.array([r["unit_col"] for r in ok], dtype=float)
        rws = np.array([r["unit_row"] for r in ok], dtype=float)
        d_col = np.array([r["shift_col"] for r in ok], dtype=float)
        d_row = np.array([r["shift_row"] for r in ok], dtype=float)
        ax.quiver(cols, rws, d_col, -d_row, color="white", angles="xy", width=0.006)
    ax.set_title("centre shift: the arrow points to the ERF centroid")


def _profile_panel(ax, rows, key: str, label: str) -> None:
    """``key`` of every unit against its distance to the map's border, with its interval."""
    x = np.array([r["border_distance"] for r in rows], dtype=float)
    y = np.array([float(r[key]) for r in rows])
    low = np.array([float(r[f"{key}_ci_low"]) for r in rows])
    high = np.array([float(r[f"{key}_ci_high"]) for r in rows])
    err = np.vstack([np.clip(y - low, 0, None), np.clip(high - y, 0, None)])
    err = np.nan_to_num(err)
    ax.errorbar(x, y, yerr=err, fmt="o", ms=3, alpha=0.6, elinewidth=0.8, capsize=0)
    ax.set_xlabel("distance of the unit to the map border (units)")
    ax.set_ylabel(label)


@styled
def atlas_figure(
    rows: Sequence[dict[str, Any]], map_hw: Sequence[int], title: str, note: str = ""
) -> Figure:
    """Size and shift over position: ERF size (Luo, px) and ERF/TRF on the output map, the
    shift arrows, and size and |shift| against the distance to the border with 95 %
    intervals (one point per unit)."""
    fig, axes = _atlas_axes()
    _map_panel(fig, axes[0, 0], rows, "erf_size", map_hw, "ERF size, Luo (px)", "viridis")
    axes[0, 0].set_title("ERF size of each output unit")
    _map_panel(fig, axes[0, 1], rows, "erf_trf_ratio", map_hw, "ERF size / √TRF pixels", "cividis")
    axes[0, 1].set_title("ERF / TRF (the pixels the unit can read)")
    _shift_panel(fig, axes[0, 2], rows, map_hw)
    _profile_panel(axes[1, 0], rows, "erf_size", "ERF size, Luo (px)")
    _profile_panel(axes[1, 1], rows, "erf_trf_ratio", "ERF size / √TRF pixels")
    _profile_panel(axes[1, 2], rows, "shift_norm", "|centre shift| (px)")
    fig.suptitle(wrap(title, fig.get_figwidth() - 0.5, 11))
    text = "Bottom: one point per unit, bars = 95 % intervals over input groups. " + note
    caption(fig, text.strip())
    return fig


def _atlas_axes() -> tuple[Figure, np.ndarray]:
    """The atlas figure's 2 x 3 axes (constrained layout)."""
    fig = Figure(figsize=(13.5, 8.2), layout="constrained")
    return fig, fig.subplots(2, 3, squeeze=False)


def _maps_arrays(
    maps: np.ndarray, rows: Sequence[dict[str, Any]], boxes: Sequence
) -> dict[str, np.ndarray]:
    """The arrays of ``atlas_maps.npz``: the maps, each unit's (row, col) and its TRF box
    ([[row0, row1], [col0, col1]], -1 where there is none)."""
    units = np.array([[r["unit_row"], r["unit_col"]] for r in rows], dtype=np.int64)
    trf = np.array(
        [b if b is not None else [[-1, -1], [-1, -1]] for b in boxes], dtype=np.int64
    ).reshape(len(rows), 2, 2)
    return {"maps": np.asarray(maps, dtype=np.float64), "units": units, "trf_interval": trf}


def write_atlas(
    out_dir: Path,
    rows: Sequence[dict[str, Any]],
    maps: np.ndarray,
    boxes: Sequence,
    record: dict[str, Any],
    title: str,
    note: str = "",
) -> list[str]:
    """Every atlas file (module docstring) into ``out_dir``, ``atlas.json`` last; returns the
    names written. ``boxes``: each unit's unclipped TRF box or None; ``record``: the job's
    settings, plan and provenance (plain data)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    map_hw = record["map_shape"]
    write_text(csv_text(rows, CSV_COLUMNS), out_dir / "atlas.csv")
    arrays = _maps_arrays(maps, rows, boxes)
    atomic_write(out_dir / "atlas_maps.npz", lambda f: np.savez_compressed(f, **arrays))
    fig = atlas_figure(rows, map_hw, title, note)
    figures = [p.name for p in save_figure(fig, out_dir / "atlas.png")]
    write_text(atlas_html(rows, maps, boxes, record, title), out_dir / "atlas.html")
    names = ["atlas.csv", "atlas_maps.npz", *figures, "atlas.html"]
    write_json(
        {**record, "rows": list(rows), "files": file_record(out_dir, names)}, out_dir / "atlas.json"
    )
    return [*names, "atlas.json"]


__all__ = ["CSV_COLUMNS", "atlas_figure", "unit_grid", "write_atlas"]
