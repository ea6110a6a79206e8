"""The growth study (Luo et al. 2016; ``study=growth``): how the ERF grows with
depth, over weight draws, beside the closed-form null models.

Rows are the flat metric dicts of ``metrics.json`` (one per job). A job that measured several
weight draws in one pass carries their per-draw values under ``draws``; ``per_draw_rows``
turns it into one row per draw, so the statistics treat draws and single-draw jobs alike.
Growth slopes come both ways: t-intervals over per-draw slopes (``growth_stats``) and a
jackknife of the pooled curve's slope (``pooled_growth``, the only one that applies to
``probe.protocol=luo``).

Files: ``growth.json`` (``growth_stats`` per group, its ``pooled`` reading, and the null
models of ``erf.analysis.null_models``), ``growth_slopes.csv`` (one row per group and null
model) and ``growth.png`` (``growth_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from erf.analysis.metrics import loglog_slope, luo_size
from erf.analysis.null_models import null_curves
from erf.analysis.repeats import jackknife, t_interval
from erf.io.figure_style import caption, caption_text, styled
from erf.io.plots import loglog_axes, save_figure
from erf.io.store import write_json, write_text
from erf.io.sweep import per_draw_maps
from erf.io.tables import csv_text
from erf.studies.registry import register_study

PER_DRAW_KEYS = ("erf_size", "erf_trf_ratio")

SLOPE_COLUMNS = (
    "group",
    "erf_size_slope",
    "erf_size_slope_low",
    "erf_size_slope_high",
    "erf_trf_ratio_slope",
    "erf_trf_ratio_slope_low",
    "erf_trf_ratio_slope_high",
    "pooled_erf_size_slope",
    "pooled_erf_size_slope_low",
    "pooled_erf_size_slope_high",
    "pooled_erf_trf_ratio_slope",
    "pooled_erf_trf_ratio_slope_low",
    "pooled_erf_trf_ratio_slope_high",
    "n_draws",
)


# --------------------------------------------------------------------------- statistics


def per_draw_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per weight draw: a job with ``draws`` (per-draw ``seeds`` and sizes) becomes
    one row per seed, with that draw's ``erf_size`` and ``erf_trf_ratio``; other jobs stay
    one row, their seed read from ``seed`` or the job config."""
    out = []
    for row in rows:
        draws = row.get("draws")
        if not draws:
            seed = row.get("seed", (row.get("config") or {}).get("seed"))
            out.append({**row, "seed": seed})
            continue
        for i, seed in enumerate(draws["seeds"]):
            out.append(
                {
                    **{k: v for k, v in row.items() if k != "draws"},
                    "seed": seed,
                    **{k: draws[k][i] for k in PER_DRAW_KEYS if k in draws},
                }
            )
    return out


def growth_stats(
    rows: Sequence[Mapping[str, Any]],
    x: str = "depth",
    group_by: Sequence[str] = ("init", "activation"),
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Per group: ERF size and ERF/TRF against ``x`` over weight draws, and their log-log
    slopes with confidence intervals.

    The slope CI is a t-interval over draws: draw ``seed`` at every ``x`` is one curve (the
    same seed at every depth), whose own least-squares log-log slope is one sample. The
    point estimate reported beside it is the slope of the mean size curve. ``rows`` are
    per-draw rows (``per_draw_rows``).
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        xs = sorted({m[x] for m in members})
        entry: dict[str, Any] = {**dict(zip(group_by, key)), "x": x, "xs": xs}
        trf = {m[x]: m.get("trf_size") for m in members}
        entry["trf_size"] = [trf[v] for v in xs]
        for y in PER_DRAW_KEYS:
            at = {v: [m.get(y) for m in members if m[x] == v] for v in xs}
            per_x = [t_interval(_floats(at[v]), level) for v in xs]
            entry[y] = [p["mean"] for p in per_x]
            entry[f"{y}_low"] = [p["low"] for p in per_x]
            entry[f"{y}_high"] = [p["high"] for p in per_x]
            entry["n_draws"] = [p["n"] for p in per_x]
            curves: dict[Any, dict[Any, float]] = {}
            for m in members:
                curves.setdefault(m.get("seed"), {})[m[x]] = _float(m.get(y))
            draw_slopes = [
                loglog_slope(xs, [c[v] for v in xs])[0]
                for c in curves.values()
                if all(v in c for v in xs)
            ]
            ci = t_interval(draw_slopes, level)
            entry[f"{y}_slope"] = loglog_slope(xs, entry[y])[0]
            entry[f"{y}_slope_low"], entry[f"{y}_slope_high"] = ci["low"], ci["high"]
            entry[f"{y}_slope_draws"] = ci["n"]
        out.append(entry)
    return out


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _floats(values: Sequence[Any]) -> list[float]:
    return [_float(v) for v in values]


def pooled_growth(
    stacks: Sequence[np.ndarray], xs: Sequence[float], trf: Sequence[float], groups: int = 16
) -> dict[str, Any]:
    """Luo's reading of a growth curve: the ERF size of the map averaged over all draws (and
    inputs) at each ``xs`` (one [M, H, W] stack of per-draw maps per x, the same draws at
    every x), its log-log slope, and the same for ERF/TRF, each with a jackknife interval over
    draws (``jackknife``). Unlike ``growth_stats``, no per-draw size is taken, so it also
    applies when each draw holds one input (``probe.protocol=luo``), whose single-gradient
    maps have no meaningful size of their own."""
    _size = luo_size
    xs = [float(x) for x in xs]
    trf = [float(t) for t in trf]
    out: dict[str, Any] = {"xs": xs}
    out["erf_size"] = [_size(np.asarray(s, dtype=np.float64).mean(axis=0)) for s in stacks]
    for name, fn in (
        ("erf_size", lambda ms: loglog_slope(xs, [_size(m) for m in ms])[0]),
        ("erf_trf_ratio", lambda ms: loglog_slope(xs, [_size(m) / t for m, t in zip(ms, trf)])[0]),
    ):
        j = jackknife(fn, stacks, groups)
        out[f"{name}_slope"] = j["estimate"]
        out[f"{name}_slope_low"], out[f"{name}_slope_high"] = j["low"], j["high"]
        out[f"{name}_slope_groups"] = j["groups"]
    return out


# --------------------------------------------------------------------------- files


def write_growth_study(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """growth.json (``growth_stats`` per group plus ``null_models``: the closed-form box and
    √box curves at the same depths, ``erf.analysis.null_models``), growth_slopes.csv (one row
    per group and null model) and growth.png (``growth_figure`` with the null
    models as reference lines). Returns the groups."""
    groups = growth_stats(per_draw_rows(rows), x=x, group_by=group_by)
    for g in groups:  # Luo's reading: sizes of the maps pooled over draws, jackknife intervals
        members = sorted(
            (r for r in rows if all(r.get(k) == g[k] for k in group_by)), key=lambda r: r[x]
        )
        if len(members) == len(g["xs"]):
            stacks = [per_draw_maps(r) for r in members]
            if len({s.shape[0] for s in stacks}) == 1:
                g["pooled"] = pooled_growth(stacks, g["xs"], g["trf_size"])
    kernels = {r.get("kernel_size") for r in rows}
    nulls: list[dict[str, Any]] = []
    if x == "depth" and len(kernels) == 1 and isinstance(next(iter(kernels)), int):
        depths = sorted({int(r[x]) for r in rows})
        nulls = null_curves(depths, next(iter(kernels)))
    write_json(
        {"x": x, "group_by": list(group_by), "groups": groups, "null_models": nulls},
        sweep_dir / "growth.json",
    )
    table = [
        {
            "group": "/".join(str(g[k]) for k in group_by),
            **g,
            **{f"pooled_{k}": v for k, v in (g.get("pooled") or {}).items() if "slope" in k},
            "n_draws": g["n_draws"][0],
        }
        for g in groups
    ] + [{"group": f"null model: {n['model']}", **n, "n_draws": None} for n in nulls]
    write_text(csv_text(table, SLOPE_COLUMNS), sweep_dir / "growth_slopes.csv")
    fig = growth_figure(groups, null_models=nulls)
    caption(fig, caption_text(rows))
    save_figure(fig, str(sweep_dir / "growth.png"))
    return groups


@register_study(
    "growth",
    help="ERF size and ERF/TRF against x per group over weight draws: log-log slopes with "
    "intervals, beside the closed-form null models",
    files=("growth.json", "growth_slopes.csv", "growth.png"),
    prints_slopes=True,
)
def write(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str], scale: str
) -> str:
    """growth.json, growth_slopes.csv and growth.png (``write_growth_study``); returns the
    slope table (``format_growth``). ``scale`` is not used."""
    return format_growth(write_growth_study(sweep_dir, rows, x, group_by), group_by)


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


# --------------------------------------------------------------------------- figure


@styled
def growth_figure(
    groups: Sequence[Mapping[str, Any]],
    level: float = 0.95,
    null_models: Sequence[Mapping[str, Any]] = (),
) -> Figure:
    """ERF size (left, with the TRF) and ERF/TRF (right) against depth, log-log: mean over
    weight draws with a ``level`` t-interval band per group; the legend gives the slope of the
    mean curve and the t-interval of the per-draw slopes. ``groups`` are
    ``growth_stats`` entries; ``null_models`` are
    ``erf.analysis.null_models.null_curves`` entries, drawn as grey reference lines with
    their slopes (box: uniform weights, no activation; √box: random signed weights)."""
    fig, (ax_size, ax_ratio) = plt.subplots(1, 2, figsize=(10.5, 4.4), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    pct = f"{level:.0%}"
    xs = np.array([], dtype=float)
    for i, g in enumerate(groups):
        xs = np.array(g["xs"], dtype=float)
        label = "/".join(str(g[k]) for k in g if k not in _GROWTH_FIELDS)
        color = colors[i % len(colors)]
        for ax, y in ((ax_size, "erf_size"), (ax_ratio, "erf_trf_ratio")):
            mean = np.array([_num(v) for v in g[y]])
            low = np.array([_num(v) for v in g[f"{y}_low"]])
            high = np.array([_num(v) for v in g[f"{y}_high"]])
            ci = f"[{_num(g[f'{y}_slope_low']):.2f}, {_num(g[f'{y}_slope_high']):.2f}]"
            ax.plot(xs, mean, "o-", color=color, label=f"{label}: {g[f'{y}_slope']:.2f} {ci}")
            if np.isfinite(low).any():
                ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
    styles = {
        "box": ("--", "null: box (uniform, linear)"),
        "sqrt_box": (":", "null: √box (random)"),
    }
    for n in null_models:
        ls, name = styles.get(str(n["model"]), ("-.", f"null: {n['model']}"))
        nx = np.array(n["depths"], dtype=float)
        for ax, y in ((ax_size, "erf_size"), (ax_ratio, "erf_trf_ratio")):
            ax.plot(nx, [_num(v) for v in n[y]], ls, color="grey", lw=1.5,
                    label=f"{name}: {_num(n[f'{y}_slope']):.2f}")  # fmt: skip
        xs = nx if not xs.size else xs
    if groups:
        trf = np.array([_num(v) for v in groups[0]["trf_size"]])
        ax_size.plot(xs, trf, "k-", lw=0.8, label="TRF")
    for ax, ylabel, where in (
        (ax_size, "size (pixels)", "upper left"),
        (ax_ratio, "ERF size / TRF size", "lower left"),
    ):
        loglog_axes(ax, xs, "depth", ylabel, loc=where)
    ax_size.set_title(f"ERF size vs depth: slope, {pct} CI over draws", fontsize=10)
    ax_ratio.set_title(f"ERF / TRF vs depth: slope, {pct} CI over draws", fontsize=10)
    return fig


_GROWTH_FIELDS = {
    "x",
    "xs",
    "pooled",
    "trf_size",
    "n_draws",
    *(
        f"{y}{suffix}"
        for y in ("erf_size", "erf_trf_ratio")
        for suffix in ("", "_low", "_high", "_slope", "_slope_low", "_slope_high", "_slope_draws")
    ),
}


def _num(v: Any) -> float:
    try:
        return float("nan") if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return float("nan")
