"""The cross-architecture study (``experiment=cross_arch``, ``study=cross_arch``; ``erf report
DIR --study cross_arch`` rebuilds its files): models x (inputs, size), seed-averaged maps and
95 % Student-t intervals over seeds.

Rows are the flat metric dicts of ``metrics.json`` (one per job, one job per seed). Each seed
is one independent draw (new weights at init, new inputs), so the interval of a metric is
``mean ± t_{(1+level)/2, n-1} · s / √n`` over the n finite per-seed values (s: sample std,
ddof 1); with one value it is NaN-wide.

From the sweep's job rows (one per model x inputs x size x seed) and their ``erf.npz``:

- ``cross_arch.png``: one column per model, one row per (inputs, size), the seed-averaged map
  of each cell as log10(x+1) on one colour scale per row; ``cross_arch_per_map.png``: the same
  with each map scaled to its own max (RepLKNet's display: shapes only).
- ``cross_arch.csv``: per cell, ``n``/``mean``/``lo``/``hi`` (95 % t-interval over seeds) of the
  area ratios (t = 0.2, 0.3, 0.5, 0.99), Luo ERF size, TRF size and ERF/TRF.
- ``cross_arch.md``: the same table in Markdown, ``mean [lo, hi]`` per cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from erf.analysis.repeats import t_interval
from erf.io.figure_style import Window, caption, caption_text, natural_key, styled, wrap
from erf.io.heatmaps import box_visible, erf_window, trf_box
from erf.io.plots import save_figure
from erf.io.store import load_result, write_text
from erf.io.tables import csv_text
from erf.studies.registry import register_study

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
CELL_KEYS = ("label", "name", "inputs", "input_h")  # model label, timm name, inputs, size (px)
HEADINGS = {
    "area_ratio_20": "area t=0.2",
    "area_ratio_30": "area t=0.3",
    "area_ratio_50": "area t=0.5",
    "area_ratio_99": "area t=0.99",
    "erf_size": "ERF size (Luo, px)",
    "trf_size": "TRF (px)",
    "erf_trf_ratio": "ERF/TRF",
}


# --------------------------------------------------------------------------- statistics


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


# --------------------------------------------------------------------------- files


def _model_label(row: Mapping[str, Any]) -> str:
    return str(row.get("label") or row.get("name"))


def _row_label(inputs: Any, size: Any) -> str:
    return f"{inputs}, {size} px"


def job_order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows in sweep order: by the job number that prefixes each folder name (Hydra's
    ``<num>_...`` subdirs; folder names sort 10 before 2), others after, by name."""

    def key(row: Mapping[str, Any]) -> tuple:
        head = str(row.get("job", "")).split("_", 1)[0]
        return (0, int(head), "") if head.isdigit() else (1, 0, str(row.get("job", "")))

    return sorted(rows, key=key)


def cross_arch_table(
    rows: Sequence[Mapping[str, Any]], level: float = 0.95
) -> list[dict[str, Any]]:
    """One dict per (model, inputs, size) cell, in sweep order (``job_order``): the cell
    keys, ``n_seeds``, ``seeds``, ``trf_source``, ``trf_global`` and
    ``<metric>_{n,mean,lo,hi}`` per metric (``cell_stats``)."""
    out = []
    for key, members in group_cells(job_order(rows), CELL_KEYS).items():
        entry: dict[str, Any] = dict(zip(CELL_KEYS, key))
        entry["label"] = _model_label(members[0])
        entry["n_seeds"] = len(members)
        entry["seeds"] = " ".join(str((m.get("config") or {}).get("seed")) for m in members)
        entry["trf_source"] = members[0].get("trf_source") or "graph"
        entry["trf_global"] = all(trf_is_global(m) for m in members)
        for metric, stats in cell_stats(members, CROSS_ARCH_METRICS, level).items():
            for part in ("n", "mean", "lo", "hi"):
                entry[f"{metric}_{part}"] = stats[part]
        out.append(entry)
    return out


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) >= 0.01 else f"{v:.2g}"


def _cell_text(entry: Mapping[str, Any], metric: str) -> str:
    if metric in ("trf_size", "erf_trf_ratio") and entry["trf_global"]:
        return "global" if metric == "trf_size" else "n/a (global)"
    mean, lo, hi = (entry[f"{metric}_{p}"] for p in ("mean", "lo", "hi"))
    if not entry[f"{metric}_n"]:
        return "n/a"
    if lo is None or not math.isfinite(lo) or hi - lo <= 1e-9 * max(1.0, abs(mean)):
        return _num(mean)  # one seed, or no spread over seeds (e.g. a graph TRF)
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def cross_arch_markdown(table: Sequence[Mapping[str, Any]], level: float = 0.95) -> str:
    """The table in Markdown: ``mean [lo, hi]`` (a {level} t-interval over seeds) per metric."""
    head = ["model", "inputs", "size", "n", *(HEADINGS[m] for m in CROSS_ARCH_METRICS)]
    lines = [
        f"Mean [{level:.0%} t-interval] over n seeds; area t: RepLKNet's high-contribution "
        "area ratio at threshold t; TRF from the graph, or the measured support (a lower "
        "bound) where marked *, or global; a value without brackets is the same for every "
        "seed, or from one seed (n = 1); n/a: no value (area t: no centred square up to "
        "RepLKNet's bound reaches t).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for e in table:
        mark = "*" if e["trf_source"] == "measured_support" and not e["trf_global"] else ""
        cells = [_cell_text(e, m) for m in CROSS_ARCH_METRICS]
        cells[CROSS_ARCH_METRICS.index("trf_size")] += mark
        lines.append(
            "| "
            + " | ".join([e["label"], str(e["inputs"]), str(e["input_h"]), str(e["n_seeds"])])
            + " | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _panel(members: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A figure panel: the seed-averaged map, the TRF box or note, the mean Luo size."""
    maps = [load_result(Path(m["_dir"]) / "erf.npz").map for m in members]
    first = members[0]
    note = None
    if all(trf_is_global(m) for m in members):
        note = "TRF global"
    elif first.get("trf_source") == "measured_support":
        note = "box: measured support"
    if note != "TRF global" and first.get("trf_clipped") and first.get("trf_size"):
        note = f"{note + '; ' if note else ''}TRF {first['trf_size']:.0f} px > input"
    sizes = [m.get("erf_size") for m in members]
    finite = [s for s in sizes if s is not None and math.isfinite(s)]
    mean_size = sum(finite) / len(finite) if finite else math.nan
    return {
        "map": mean_map(maps),
        "trf_interval": None if note == "TRF global" else first.get("trf_interval"),
        "trf_note": note,
        "caption": f"ERF {_num(mean_size)} px (n={len(members)})",
    }


def cross_arch_panels(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[list[dict[str, Any] | None]], list[str], list[str]]:
    """(panels, row labels, column labels) for ``cross_arch_figure``: columns are models in
    job order, rows (inputs, size) sorted by size then inputs."""
    cells = group_cells(job_order(rows), ("label", "inputs", "input_h"))
    models = list(dict.fromkeys(_model_label(m[0]) for m in cells.values()))
    row_keys = sorted({(k[1], k[2]) for k in cells}, key=lambda k: (k[1], str(k[0])))
    by_model = {(_model_label(m[0]), k[1], k[2]): m for k, m in cells.items()}
    panels = [
        [
            _panel(by_model[(model, inputs, size)]) if (model, inputs, size) in by_model else None
            for model in models
        ]
        for inputs, size in row_keys
    ]
    return panels, [_row_label(*k) for k in row_keys], models


def _probed(row: Mapping[str, Any]) -> str:
    """The probed layer of a job: its target ("output": the model's), with the entry of a
    container output it chose (``probe.output``: "output[hidden_states.12]")."""
    chosen = ((row.get("config") or {}).get("probe") or {}).get("output")
    layer = str(row.get("target") or "output")
    return f"{layer}[{chosen}]" if chosen is not None else layer


def _layers(rows: Sequence[Mapping[str, Any]]) -> str:
    """The probed layer of each model, "model: layer; ..." (one entry when all share it)."""
    by_model = {_model_label(r): _probed(r) for r in job_order(rows)}
    if len(set(by_model.values())) == 1:
        return next(iter(by_model.values()))
    return "; ".join(
        f"{m}: {t}" for m, t in sorted(by_model.items(), key=lambda kv: natural_key(kv[0]))
    )


def write_cross_arch(
    sweep_dir: str | Path, rows: Sequence[Mapping[str, Any]], scale: str = "log"
) -> str:
    """Write cross_arch.png, cross_arch_per_map.png, cross_arch.csv and cross_arch.md into
    ``sweep_dir`` from its job ``rows`` (``erf.io.sweep.collect``); return the Markdown."""
    sweep_dir = Path(sweep_dir)
    if not rows:
        raise ValueError(f"no job results under {sweep_dir}")
    table = cross_arch_table(rows)
    columns = [*CELL_KEYS, "n_seeds", "seeds", "trf_source", "trf_global"] + [
        f"{m}_{p}" for m in CROSS_ARCH_METRICS for p in ("n", "mean", "lo", "hi")
    ]
    write_text(csv_text(table, columns), sweep_dir / "cross_arch.csv")
    markdown = cross_arch_markdown(table)
    write_text(markdown, sweep_dir / "cross_arch.md")
    panels, row_labels, col_labels = cross_arch_panels(rows)
    text = caption_text(rows, model="per column", layer=_layers(rows))
    for norm, name in (("row", "cross_arch.png"), ("cell", "cross_arch_per_map.png")):
        fig = cross_arch_figure(
            panels, row_labels, col_labels, scale=scale, norm=norm, caption_text=text
        )
        save_figure(fig, sweep_dir / name)
    return markdown


@register_study(
    "cross_arch",
    help="models x (inputs, size): seed-averaged maps and t-intervals over seeds of the area "
    "ratios, ERF and TRF sizes",
    files=("cross_arch.png", "cross_arch_per_map.png", "cross_arch.csv", "cross_arch.md"),
)
def write(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str], scale: str
) -> str:
    """``write_cross_arch`` with the maps as log10(x+1) (RepLKNet's display, whatever
    ``scale`` the sweep's grid uses); returns the Markdown table. ``x`` and ``group_by`` are
    not used: the cells are models x (inputs, size)."""
    return write_cross_arch(sweep_dir, rows, scale="log")


# --------------------------------------------------------------------------- figure


@styled
def cross_arch_figure(
    panels: Sequence[Sequence[Mapping[str, Any] | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    scale: str = "log",
    norm: str = "row",
    title: str | None = None,
    caption_text: str | None = None,
) -> Figure:
    """The large-kernel papers' cross-architecture figure: ``panels[i][j]`` is the map of model
    ``col_labels[j]`` under inputs ``row_labels[i]`` (None: no such job, an empty panel).

    A panel is a dict with ``map`` ([H, W], e.g. seed-averaged), optional ``trf_interval``
    (((r0, r1), (c0, c1)), inclusive input pixels: drawn as a dashed box), ``trf_note`` (e.g.
    "TRF global", written in the panel) and ``caption`` (under the panel).

    ``scale`` "log" shows log10(map + 1) (RepLKNet), "linear" the map. ``norm`` "row" divides
    every panel of a row by the row's largest value: one colour scale per row, shared by its
    panels, so magnitudes compare within a row; "cell" divides each panel by its own maximum
    (RepLKNet's per-map display), so only shapes compare. One colour bar per row. Each panel
    is zoomed to its own ERF (``erf_window``; its pixel axes give the scale, the inset shows
    the full input).
    """
    if scale not in ("linear", "log"):
        raise ValueError(f"plot scale {scale!r}; allowed: linear, log")
    if norm not in ("row", "cell"):
        raise ValueError(f"norm {norm!r}; allowed: row, cell")
    nrows, ncols = len(row_labels), len(col_labels)
    if nrows == 0 or ncols == 0 or len(panels) != nrows:
        raise ValueError(f"panels must be {nrows} rows of {ncols} panels, one per label")
    if any(len(r) != ncols for r in panels):
        raise ValueError(f"panels must be {nrows} rows of {ncols} panels, one per label")
    width = 1.75 * ncols + 1.6
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, 1.95 * nrows + 1.3), squeeze=False, layout="constrained"
    )
    for i, row in enumerate(panels):
        shown = [None if p is None else _display(p["map"], scale) for p in row]
        row_peak = max((float(np.nanmax(d)) for d in shown if d is not None and d.size), default=0)
        image = None
        for j, (ax, panel, data) in enumerate(zip(axes[i], row, shown)):
            ax.tick_params(labelsize=6, length=2, pad=1)
            if i == 0:
                ax.set_title(wrap(col_labels[j], 1.6, 8), fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{wrap(row_labels[i], 1.6, 7)}\nrow (px)", fontsize=7)
            if panel is None or data is None:
                ax.text(0.5, 0.5, "no job", ha="center", va="center", fontsize=7,
                        transform=ax.transAxes)  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_facecolor("0.9")
                continue
            peak = row_peak if norm == "row" else float(np.nanmax(data)) if data.size else 0.0
            image = ax.imshow(
                data / peak if peak > 0 else np.zeros_like(data),
                cmap="viridis",
                vmin=0,
                vmax=1,
                interpolation="nearest",
            )
            _mark_trf(ax, panel, data.shape, erf_window([panel["map"]], panel.get("trf_interval")))
            if panel.get("caption"):
                ax.set_xlabel(panel["caption"], fontsize=6.5)
        if image is not None:
            quantity = "|∂y/∂x|" if scale == "linear" else "log10(|∂y/∂x|+1)"
            per = "row max" if norm == "row" else "map max"
            bar = fig.colorbar(image, ax=list(axes[i]), shrink=0.85, pad=0.01)
            bar.set_label(f"{quantity} / {per}", fontsize=6.5)
            bar.ax.tick_params(labelsize=6)
    shown_as = "log10(x+1)" if scale == "log" else "x"
    scaled = "/ row max (one colour scale per row)" if norm == "row" else "/ each map's max"
    head = title or (
        f"ERF: {shown_as} {scaled}; dashed: TRF or measured support; "
        "axes: input pixels, each panel zoomed to its ERF (inset: full input)"
    )
    fig.suptitle(wrap(head, width - 0.3, 8), fontsize=8)
    caption(fig, caption_text or "")
    return fig


def _display(erf_map: np.ndarray, scale: str) -> np.ndarray:
    """The map as shown before normalisation: log10(max(x, 0) + 1) or the map itself."""
    m = np.asarray(erf_map, dtype=np.float64)
    return np.log10(np.clip(m, 0, None) + 1.0) if scale == "log" else m


def _mark_trf(
    ax: plt.Axes, panel: Mapping[str, Any], shape: tuple[int, int], window: Window | None = None
) -> None:
    """The TRF box (dashed white), the TRF note and the view (``window``, with the full input
    as an inset; else the whole map) of one panel."""
    h, w = shape
    if box_visible(panel.get("trf_interval"), shape):
        ax.add_patch(trf_box(panel["trf_interval"], linewidth=0.9))
    if panel.get("trf_note"):
        ax.text(
            0.03,
            0.97,
            wrap(panel["trf_note"], 1.1, 6),
            transform=ax.transAxes,
            fontsize=5.5,
            color="white",
            va="top",
            ha="left",
            bbox={"facecolor": "black", "alpha": 0.5, "edgecolor": "none", "pad": 1},
        )
    (r0, r1), (c0, c1) = window if window is not None else ((0, h - 1), (0, w - 1))
    ax.set_xlim(c0 - 0.5, c1 + 0.5)
    ax.set_ylim(r1 + 0.5, r0 - 0.5)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=3, integer=True, min_n_ticks=2))
    if window is not None:
        full = ax.inset_axes([0.70, 0.70, 0.28, 0.28])
        full.imshow(ax.images[0].get_array(), cmap="viridis", vmin=0, vmax=1,
                    interpolation="nearest")  # fmt: skip
        full.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                                 edgecolor="white", linewidth=0.8))  # fmt: skip
        full.set_xticks([])
        full.set_yticks([])
