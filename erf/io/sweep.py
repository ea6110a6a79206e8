"""Sweep summaries from the job folders' files (``python -m erf.report SWEEP_DIR``, and the
``SweepSummary`` Hydra callback at the end of a sweep).

Reads every job's ``metrics.json`` and ``erf.npz`` under SWEEP_DIR and writes
``summary.csv`` (one row per job; its key columns also as ``summary.md`` and ``summary.tex``),
``slopes.json`` (log-log slopes per group),
``erf_grid.png`` (all heatmaps) and ``trf_vs_erf.png`` (sizes against depth, log-log).

The job rows (``collect``) and the per-draw maps and labels of a job (``per_draw_maps``,
``job_label``) are what the studies (``erf.studies``) read too; a study's own files are
written by its module there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from erf.analysis.metrics import loglog_slope
from erf.analysis.row import summary_columns
from erf.io.figure_style import caption_text, natural_key, setting
from erf.io.nd_figures import nd_grid_figure
from erf.io.plots import erf_grid_figure, profile_figure, save_figure, trf_vs_erf_figure
from erf.io.store import load_result, load_results, read_job_metrics, write_json, write_text
from erf.io.tables import csv_text, fixed_text, is_number, write_paper_tables

COLUMNS = summary_columns()  # summary.csv: the typed row (erf.analysis.row)


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Metrics of every job under ``sweep_dir`` (its subfolders holding metrics.json)."""
    rows = []
    paths = Path(sweep_dir).glob("*/metrics.json")
    for path in sorted(paths, key=lambda p: natural_key(p.parent.name)):  # 2_... before 10_...
        row = read_job_metrics(path)
        row["job"] = path.parent.name
        row["_dir"] = path.parent
        rows.append(row)
    return rows


def group_slopes(
    rows: Sequence[dict[str, Any]], x: str, group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """Per group, log-log slopes (with standard errors) of erf_size, trf_size and ratio vs x."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        xs = [m[x] for m in members]
        entry: dict[str, Any] = dict(zip(group_by, key))
        entry["n_points"] = len(members)
        for y in ("erf_size", "trf_size", "erf_trf_ratio"):
            ys = [float("nan") if m.get(y) is None else m[y] for m in members]
            slope, _, se = loglog_slope(xs, ys)
            entry[f"{y}_slope"], entry[f"{y}_slope_se"] = slope, se
        out.append(entry)
    return out


def collect_or_fail(folder: Path) -> list[dict[str, Any]]:
    """``collect``, or a FileNotFoundError naming ``folder`` when it holds no job results."""
    rows = collect(folder)
    if not rows:
        raise FileNotFoundError(f"no job results (*/metrics.json) under {folder}")
    return rows


def per_draw_maps(row: Mapping[str, Any]) -> np.ndarray:
    """[M, H, W]: a job row's per-draw maps (its draws.npz), or its one map as a single draw
    (``row["_dir"]`` is the job folder, as ``collect`` gives it)."""
    folder = Path(row["_dir"])
    if (folder / "draws.npz").exists():
        return np.stack([r.map for r in load_results(folder / "draws.npz")])
    return load_result(folder / "erf.npz").map[None]


def job_label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    """A job's name in a study's figures: its ``label``, else its values of ``keys`` joined
    by "/"."""
    return row.get("label") or "/".join(str(row.get(k)) for k in keys)


def _panel(row: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """One grid panel of a job row: its map, TRF box, fit, flags and sizes."""
    return {
        "map": load_result(row["_dir"] / "erf.npz").map,
        "trf_interval": row.get("trf_interval"),
        "fit": row.get("fit"),
        "warning": _flags(row),
        "title": title,
        "note": (
            f"ERF {fixed_text(row.get('erf_size'))} / TRF {fixed_text(row.get('trf_size'), 0)} px"
        ),
        "unit": row.get("unit_in_input"),
    }


def _write_table_and_grid(
    folder: Path,
    rows: Sequence[dict[str, Any]],
    labels: Sequence[str],
    ncols: int,
    scale: str,
    matrix: tuple[str, Sequence[str]] | None = None,
) -> None:
    """summary.csv (one row per job) and erf_grid.png (one heatmap per job). With ``matrix``
    (x, group_by) and one job per (group, x), the grid has one row per group and one column
    per value of x, with row and column headers; else one titled panel per job. The key
    columns also go to summary.md and summary.tex (``erf.io.tables.write_paper_tables``)."""
    write_text(csv_text(rows, COLUMNS), folder / "summary.csv")
    write_paper_tables(folder, rows, COLUMNS)
    cells = None
    if matrix is not None:
        x, group_by = matrix
        keys = [tuple(r.get(k) for k in group_by) for r in rows]
        xs = sorted({r[x] for r in rows}, key=natural_key)
        groups = sorted(set(keys), key=natural_key)
        if len(set(zip(keys, (r[x] for r in rows)))) == len(rows) and len(groups) > 1:
            cells = {(k, r[x]): r for k, r in zip(keys, rows)}
    if any(r.get("ndim") in (1, 3) for r in rows):  # sequences, volumes (erf.io.nd_figures)
        panels = [{**_panel(r, label), "center": r.get("center")} for r, label in zip(rows, labels)]
        fig = nd_grid_figure(panels, ncols=ncols, scale=scale, caption_text=caption_text(rows))
    elif cells is not None:
        fig = erf_grid_figure(
            [_panel(cells[(g, v)]) if (g, v) in cells else None for g in groups for v in xs],
            scale=scale,
            row_labels=[", ".join(setting(k, v) for k, v in zip(group_by, g)) for g in groups],
            col_labels=[setting(x, v) for v in xs],
            caption_text=caption_text(rows),
        )
    else:
        fig = erf_grid_figure(
            [_panel(r, label) for r, label in zip(rows, labels)],
            ncols=ncols,
            scale=scale,
            caption_text=caption_text(rows),
        )
    save_figure(fig, folder / "erf_grid.png")


def write_summary(
    sweep_dir: str | Path,
    x: str = "depth",
    group_by: Sequence[str] = ("init", "activation"),
    scale: str = "linear",
) -> list[dict[str, Any]]:
    """Write summary.csv and erf_grid.png; with two or more numeric values of ``x`` also
    slopes.json and trf_vs_erf.png. Return the slope table (empty without slopes)."""
    sweep_dir = Path(sweep_dir)
    rows = collect_or_fail(sweep_dir)
    numeric_x = all(is_number(r.get(x)) for r in rows)
    if numeric_x:  # else (e.g. x = label) keep the job order; resnet18 < resnet50 < resnet101
        rows.sort(key=lambda r: (natural_key(tuple(r.get(k) for k in group_by)), r[x]))
    n_x = len({str(r.get(x)) for r in rows})
    slopes = group_slopes(rows, x, group_by) if numeric_x and n_x > 1 else []
    if slopes:
        write_json(
            {"x": x, "group_by": list(group_by), "groups": slopes}, sweep_dir / "slopes.json"
        )
    labels = [
        r.get("label")
        or ", ".join([setting(x, r.get(x)), *(setting(k, r[k]) for k in group_by if k in r)])
        for r in rows
    ]
    ncols = n_x if n_x > 1 else min(4, len(rows))
    matrix = (x, group_by) if numeric_x and group_by else None
    _write_table_and_grid(sweep_dir, rows, labels, min(ncols, 6), scale, matrix)
    if slopes:
        fig = trf_vs_erf_figure(rows, x=x, group_by=group_by, caption_text=caption_text(rows))
        save_figure(fig, sweep_dir / "trf_vs_erf.png")
    return slopes


def write_profile(profile_dir: str | Path, scale: str = "linear") -> list[dict[str, Any]]:
    """A layer profile's summary.csv, erf_grid.png and profile.png (sizes through the net)."""
    profile_dir = Path(profile_dir)
    rows = sorted(collect_or_fail(profile_dir), key=lambda r: r.get("layer_index", 0))
    labels = [str(r.get("target")) for r in rows]
    _write_table_and_grid(profile_dir, rows, labels, min(4, len(rows)), scale)
    fig = profile_figure(rows, caption_text=caption_text(rows))
    save_figure(fig, profile_dir / "profile.png")
    return rows


def _flags(row: dict[str, Any]) -> str | None:
    """Short per-job flags for the grid: degenerate map, poor fit, clipped TRF."""
    flags = [
        name
        for name, on in (
            ("degenerate", row.get("degenerate")),
            ("poor fit", row.get("fit_problem") and not row.get("degenerate")),
            ("TRF clipped", row.get("trf_clipped")),
            ("NaN/Inf skipped", row.get("n_nonfinite")),
        )
        if on
    ]
    return ", ".join(flags) or None


def format_slopes(slopes: Sequence[dict[str, Any]], group_by: Sequence[str]) -> str:
    """A small text table of the log-log slopes (± standard error)."""
    lines = [f"{'/'.join(group_by):<22} {'ERF size slope':>18} {'ERF/TRF slope':>18}"]
    for s in slopes:
        name = "/".join(str(s[k]) for k in group_by)
        lines.append(
            f"{name:<22} {s['erf_size_slope']:>9.3f} ± {s['erf_size_slope_se']:<6.3f}"
            f" {s['erf_trf_ratio_slope']:>9.3f} ± {s['erf_trf_ratio_slope_se']:<6.3f}"
        )
    return "\n".join(lines)
