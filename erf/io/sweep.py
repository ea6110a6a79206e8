"""Sweep summaries from the job folders' files (``python -m erf.report SWEEP_DIR``, and the
``SweepSummary`` Hydra callback at the end of a sweep).

Reads every job's ``metrics.json`` and ``erf.npz`` under SWEEP_DIR and writes
``summary.csv`` (one row per job; its key columns also as ``summary.md`` and ``summary.tex``),
``slopes.json`` (log-log slopes per group),
``erf_grid.png`` (all heatmaps) and ``trf_vs_erf.png`` (sizes against depth, log-log).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erf.analysis.metrics import loglog_slope
from erf.analysis.row import summary_columns
from erf.io.cross_arch import write_cross_arch
from erf.io.figure_style import caption_text, natural_key, setting
from erf.io.plots import (
    erf_grid_figure,
    path_rf_figure,
    profile_figure,
    save_figure,
    trf_vs_erf_figure,
)
from erf.io.store import load_result, read_job_metrics, write_json, write_text
from erf.io.studies import write_growth_study, write_shape_study, write_skip_study
from erf.io.tables import csv_text, fixed_text, format_rows, is_number, write_paper_tables

STUDIES = ("growth", "shape", "paths", "cross_arch", "skip_scale")

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


def _collect_or_fail(folder: Path) -> list[dict[str, Any]]:
    rows = collect(folder)
    if not rows:
        raise FileNotFoundError(f"no job results (*/metrics.json) under {folder}")
    return rows


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
    if cells is not None:
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
    rows = _collect_or_fail(sweep_dir)
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


def write_study(sweep_dir: str | Path, study: str, x: str, group_by: Sequence[str]) -> str:
    """The extra outputs of one Luo et al. 2016 study; returns a text summary to print.

    - "growth": ``growth.json``, ``growth_slopes.csv`` and ``growth.png``: ERF size and ERF/TRF
      vs ``x`` per group, averaged over weight draws, with t-intervals of the per-draw log-log
      slopes, beside the closed-form null models (``erf.io.studies.write_growth_study``).
    - "shape": ``shape.json``/``.csv`` (fit R² with a jackknife interval over draws),
      ``fit_r2.png``, ``shape_panels.png`` and ``shape.png`` (``erf.io.studies``).
    - "skip_scale": ``skip_scale.json``/``.csv``/``.png``: ERF size against the residual
      branch scale, with and without batch-norm.
    - "paths": ``path_rf_<job>.png`` for every job whose graph has several paths: the
      distribution of path RFs (binomial for residual stacks) with TRF and ERF marked.
    - "cross_arch": ``cross_arch.png``, ``cross_arch_per_map.png``, ``cross_arch.csv`` and
      ``cross_arch.md`` (``erf.io.cross_arch``): models x (inputs, size), seed-averaged maps,
      t-intervals over seeds; ``x`` and ``group_by`` are not used.
    """
    sweep_dir = Path(sweep_dir)
    rows = _collect_or_fail(sweep_dir)
    if study == "growth":  # with the closed-form null models (erf.io.studies)
        return format_growth(write_growth_study(sweep_dir, rows, x, group_by), group_by)
    if study == "skip_scale":
        return write_skip_study(sweep_dir, rows)
    if study == "cross_arch":
        return write_cross_arch(sweep_dir, rows, scale="log")
    if study == "shape":  # R² with jackknife intervals over draws (erf.io.studies)
        entries = write_shape_study(sweep_dir, rows, group_by)
        return format_rows(entries, [*group_by, "erf_size", "fit_r2", "fit_r2_low", "fit_r2_high"])
    if study == "paths":
        lines = []
        for r in rows:
            sizes = r.get("trf_path_sizes") or []
            if len(sizes) < 2:
                continue
            spans = [(int(math.sqrt(a * b)), n) for a, b, n in sizes]
            fig = path_rf_figure(
                spans,
                erf_size=r.get("erf_size"),
                trf_size=r.get("trf_size"),
                title=f"path RFs: {_label(r, group_by)} ({sum(n for _, n in spans)} paths)",
                caption_text=caption_text([r]),
            )
            save_figure(fig, sweep_dir / f"path_rf_{r['job']}.png")
            mean = sum(s * n for s, n in spans) / sum(n for _, n in spans)
            lines.append(f"{r['job']}: mean path RF {mean:.1f} px, TRF {r.get('trf_size'):g} px")
        return "\n".join(lines)
    raise ValueError(f"unknown study {study!r}; allowed: {list(STUDIES)}")


def _label(row: dict[str, Any], keys: Sequence[str]) -> str:
    return row.get("label") or "/".join(str(row.get(k)) for k in keys)


def format_growth(groups: Sequence[dict[str, Any]], group_by: Sequence[str]) -> str:
    """Slope of the mean curve and the 95 % t-interval over draws, per group."""
    lines = [
        f"{'/'.join(group_by):<22} {'ERF size slope [95% CI]':>28} {'ERF/TRF slope [95% CI]':>28}"
    ]
    for g in groups:
        name = "/".join(str(g[k]) for k in group_by)
        cells = [
            f"{g[f'{y}_slope']:>8.3f} [{g[f'{y}_slope_low']:.3f}, {g[f'{y}_slope_high']:.3f}]"
            for y in ("erf_size", "erf_trf_ratio")
        ]
        lines.append(f"{name:<22} {cells[0]:>28} {cells[1]:>28}  ({g['n_draws'][0]} draws)")
    return "\n".join(lines)


def write_profile(profile_dir: str | Path, scale: str = "linear") -> list[dict[str, Any]]:
    """A layer profile's summary.csv, erf_grid.png and profile.png (sizes through the net)."""
    profile_dir = Path(profile_dir)
    rows = sorted(_collect_or_fail(profile_dir), key=lambda r: r.get("layer_index", 0))
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
