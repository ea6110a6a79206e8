"""Matplotlib figures from saved results (maps and metric dicts), never from live models.

Image convention: ``imshow`` with the origin at the top left, x = column, y = row, so a
pixel (row, col) is drawn at data coordinates (col, row). Every figure is drawn in the erf
style (``erf.io.figure_style``): pixel axes, a colour bar naming the quantity and its
normalisation, a caption naming reduction, samples, model and layer, human labels, legends
off the data, and heatmaps zoomed to the region that holds the ERF (the full input beside
or inset). ``save_figure`` writes the formats of ``figure_style.current_output()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from erf.analysis.metrics import loglog_slope  # noqa: E402
from erf.io.figure_style import (  # noqa: E402
    FigureOutput,
    caption,
    colorbar,
    current_output,
    human,
    integer_ticks,
    log_axis,
    model_name,
    natural_key,
    setting,
    style,
    styled,
    wrap,
)
from erf.io.heatmaps import (  # noqa: E402
    cross_arch_figure,
    draw_erf,
    erf_figure,
    erf_grid_figure,
    erf_window,
    legend_handles,
    scaled_map,
    trf_box,
)
from erf.io.store import atomic_write  # noqa: E402

# The heatmap figures live in erf.io.heatmaps; these names stay importable from here.
__all__ = [
    "before_after_figure", "benchmark_figure", "cross_arch_figure", "draw_erf", "erf_epochs_figure",
    "erf_figure", "erf_grid_figure", "growth_figure", "path_rf_figure", "profile_figure",
    "save_figure", "scaled_map", "shape_figure", "training_curves_figure", "trf_box",
    "trf_vs_erf_figure",
]  # fmt: skip

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def _group_label(key: Sequence[Any], group_by: Sequence[str]) -> str:
    return ", ".join(setting(k, v) for k, v in zip(group_by, key)) or "all jobs"


def _interval(rows: Sequence[Mapping[str, Any]], y: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) of ``y`` from the ``<y>_ci_low`` / ``<y>_ci_high`` columns; None when no
    row has them (older sweeps)."""
    lo = np.array([_num(r.get(f"{y}_ci_low")) for r in rows])
    hi = np.array([_num(r.get(f"{y}_ci_high")) for r in rows])
    return (lo, hi) if np.isfinite(lo).any() and np.isfinite(hi).any() else None


def _errorbar(ax: plt.Axes, xs: np.ndarray, ys: np.ndarray, ci, **kwargs: Any) -> None:
    """A line with markers, and vertical error bars from ``ci`` (low, high) when present."""
    if ci is None:
        ax.plot(xs, ys, **kwargs)
        return
    lo, hi = ci
    yerr = np.vstack([np.where(np.isfinite(lo), ys - lo, 0), np.where(np.isfinite(hi), hi - ys, 0)])
    ax.errorbar(xs, ys, yerr=np.clip(yerr, 0, None), capsize=2, elinewidth=0.8, **kwargs)


@styled
def trf_vs_erf_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    x: str = "depth",
    group_by: Sequence[str] = ("init", "activation"),
    caption_text: str | None = None,
) -> Figure:
    """Log-log ERF size and TRF size against ``x`` (left), and ERF/TRF (right).

    Each group (e.g. one init × activation) is a line with its own marker and dash, nudged a
    little along x so lines that coincide stay visible; the legend (under the plots) holds its
    fitted log-log slope. ``rows`` are metric dicts with ``x``, ``erf_size`` and
    ``trf_size``; ``erf_size_ci_low``/``_high`` (and ``erf_trf_ratio_ci_*``) draw error bars
    when present."""
    fig, (ax_size, ax_ratio) = plt.subplots(1, 2, figsize=(7.2, 3.9), layout="constrained")
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    ordered = sorted(groups.items(), key=lambda kv: natural_key(kv[0]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = len(ordered)
    for i, (key, members) in enumerate(ordered):
        members = sorted(members, key=lambda r: r[x])
        xs = np.array([r[x] for r in members], dtype=float)
        nudge = xs * (1 + 0.025 * (i - (n - 1) / 2))  # a few % apart on the log axis
        erf = np.array([_num(r.get("erf_size")) for r in members])
        ratio = np.array([_num(r.get("erf_trf_ratio")) for r in members])
        label = _group_label(key, group_by)
        style_kw = {
            "color": colors[i % len(colors)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)], "markersize": 4, "linewidth": 1.2,
            "markerfacecolor": "none" if i % 2 else colors[i % len(colors)],
        }  # fmt: skip
        slope, _, _ = loglog_slope(xs, erf)
        _errorbar(ax_size, nudge, erf, _interval(members, "erf_size"),
                  label=f"ERF, {label} (slope {slope:.2f})", **style_kw)  # fmt: skip
        r_slope, _, _ = loglog_slope(xs, ratio)
        _errorbar(ax_ratio, nudge, ratio, _interval(members, "erf_trf_ratio"),
                  label=f"_{label}", **style_kw)  # fmt: skip
    trf = {r[x]: _num(r.get("trf_size")) for r in rows}
    xs = np.array(sorted(trf), dtype=float)
    ts = np.array([trf[v] for v in sorted(trf)])
    t_slope, _, _ = loglog_slope(xs, ts)
    ax_size.plot(xs, ts, "k--", linewidth=1.0, label=f"TRF (slope {t_slope:.2f})")
    for ax, ylabel in ((ax_size, "size (px)"), (ax_ratio, "ERF size / TRF size")):
        _loglog_axes(ax, xs, x, ylabel, legend=False)
    ax_size.set_title("ERF and TRF size (log-log)")
    ax_ratio.set_title("ERF / TRF (log-log; slopes in the legend)")
    handles, _ = ax_size.get_legend_handles_labels()
    caption(fig, caption_text or "", handles=handles, ncol=2 if n > 1 else 1)
    return fig


def _loglog_axes(
    ax: plt.Axes, xs: np.ndarray, x: str, ylabel: str, legend: bool = True, loc: str = "best"
) -> None:
    """Log-log axes with plain-number ticks at ``xs`` (1-2-5 ticks on y), a grid and, with
    ``legend``, a legend where it covers the least data."""
    ax.set_xscale("log")
    log_axis(ax, "y")
    ticks = xs[np.isfinite(xs) & (xs > 0)]
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(human(x))
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if legend:  # labels wrapped to the axes, so the legend stays inside them
        handles, labels = ax.get_legend_handles_labels()
        width_in = ax.get_position().width * ax.figure.get_figwidth()
        ax.legend(handles, [wrap(t, 0.75 * width_in, 6.5) for t in labels], fontsize=6.5,
                  loc=loc)  # fmt: skip


@styled
def growth_figure(
    groups: Sequence[Mapping[str, Any]],
    level: float = 0.95,
    null_models: Sequence[Mapping[str, Any]] = (),
) -> Figure:
    """ERF size (left, with the TRF) and ERF/TRF (right) against depth, log-log: mean over
    weight draws with a ``level`` t-interval band per group; the legend gives the slope of the
    mean curve and the t-interval of the per-draw slopes. ``groups`` are
    ``erf.analysis.studies.growth_stats`` entries; ``null_models`` are
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
        _loglog_axes(ax, xs, "depth", ylabel, loc=where)
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


@styled
def path_rf_figure(
    path_sizes: Sequence[tuple[int, int]],
    *,
    erf_size: float | None = None,
    trf_size: float | None = None,
    title: str = "",
    caption_text: str | None = None,
) -> Figure:
    """Distribution of path RF sizes (pixels) over all input-to-target paths, as fractions of
    the paths, with the TRF (the largest path) and the measured ERF size marked.
    ``path_sizes`` are (span in pixels, number of paths) pairs."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    spans = np.array([s for s, _ in path_sizes], dtype=float)
    counts = np.array([n for _, n in path_sizes], dtype=float)
    width = 0.8 * (np.diff(np.sort(spans)).min() if spans.size > 1 else 1.0)
    ax.bar(spans, counts / counts.sum(), width=width, color="C0", label="paths")
    if trf_size is not None:
        ax.axvline(trf_size, color="k", ls="--", label=f"TRF = longest path ({trf_size:g} px)")
    if erf_size is not None and math.isfinite(erf_size):
        ax.axvline(erf_size, color="C3", label=f"measured ERF size ({erf_size:.1f} px)")
    ax.set_xlabel("path RF (px)")
    ax.set_ylabel("fraction of paths")
    ax.set_title(wrap(title or "RF of the input-to-target paths", 5.0, 8))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    caption(fig, caption_text or "")
    return fig


@styled
def shape_figure(
    profiles: Sequence[tuple[str, np.ndarray, float | None]], *, caption_text: str | None = None
) -> Figure:
    """Centre-row profiles of several ERFs, scaled to 1 at the centre, on a log y axis, each
    with its fitted Gaussian (dotted; a Gaussian is a parabola here), one small panel per
    profile so curves that coincide stay readable, and a last panel overlaying every
    profile / its Gaussian (1 = exactly Gaussian). Items are (label, profile, fitted sigma in
    pixels or None). x is the offset from the centre, limited to where a profile is above
    1e-4 of its centre."""
    n = max(len(profiles), 1)
    ncols = min(n + 1, 3)
    nrows = math.ceil((n + 1) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.5 * ncols + 0.6, 2.2 * nrows + 1.0), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    reach = 1
    for _label, profile, _ in profiles:
        p = np.asarray(profile, dtype=float)
        offsets = np.arange(p.size) - p.size // 2
        centre = p[p.size // 2] if p.size else 0.0
        above = np.abs(offsets[(p > 1e-4 * centre) & np.isfinite(p)]) if centre > 0 else []
        reach = max(reach, int(np.max(above)) if len(above) else 1)
    lim = math.ceil(reach * 1.1) + 1
    ratio_ax = axes.flat[n]
    for i, (label, profile, sigma) in enumerate(profiles):
        ax = axes.flat[i]
        p = np.asarray(profile, dtype=float)
        offsets = np.arange(p.size) - p.size // 2
        centre = p[p.size // 2] if p.size else 0.0
        shown = np.where(p > 0, p / centre, np.nan) if centre > 0 else np.full(p.shape, np.nan)
        color = colors[i % len(colors)]
        ax.plot(offsets, shown, "-", color=color, marker=".", markersize=2, label="ERF")
        if sigma is not None and math.isfinite(sigma) and sigma > 0:
            gauss = np.exp(-0.5 * (offsets / sigma) ** 2)
            ax.plot(offsets, gauss, ":", color="k", label=f"Gaussian σ={sigma:.1f} px")
            ratio_ax.plot(offsets, np.clip(shown / gauss, 0.1, 10), LINESTYLES[i % 4], color=color,
                          label=wrap(label, 2.0, 6))  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.5)
        ax.set_xlim(-lim, lim)
        ax.set_title(wrap(label, 2.3, 8))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower center", fontsize=6)
        if i % ncols == 0:
            ax.set_ylabel("ERF / centre value")
        ax.set_xlabel("offset from centre (columns, px)")
    ratio_ax.axhline(1, color="k", linewidth=0.6)
    ratio_ax.set_ylim(0.1, 10)
    log_axis(ratio_ax, "y")
    ratio_ax.set_xlim(-lim, lim)
    ratio_ax.set_title("ERF / fitted Gaussian (1 = Gaussian)")
    ratio_ax.set_xlabel("offset from centre (columns, px)")
    ratio_ax.grid(True, which="both", alpha=0.3)
    if ratio_ax.lines[1:]:
        ratio_ax.legend(loc="best", fontsize=6)
    for ax in axes.flat[n + 1 :]:
        ax.set_visible(False)
    fig.suptitle("ERF centre-row profiles against their fitted Gaussians")
    caption(fig, caption_text or "")
    return fig


@styled
def profile_figure(
    rows: Sequence[Mapping[str, Any]], *, title: str | None = None, caption_text: str | None = None
) -> Figure:
    """ERF size and TRF size of each profiled layer in forward order (top, log y axis) and
    ERF/TRF (bottom); layers whose TRF exceeds the input are shaded (their ERF is cut off).
    ``title`` defaults to the model and input size of the rows."""
    n = max(len(rows), 1)
    longest = max((len(str(r.get("target"))) for r in rows), default=1)
    fig, (ax, ax_r) = plt.subplots(
        2, 1, figsize=(max(4.5, 0.32 * n + 2.2), 4.6 + 0.055 * longest), sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [2, 1]},
    )  # fmt: skip
    xs = np.arange(len(rows))
    erf = np.array([_num(r.get("erf_size")) for r in rows])
    trf = np.array([_num(r.get("trf_size")) for r in rows])
    side = np.array([max(_num(r.get("input_h")), _num(r.get("input_w"))) for r in rows])
    clipped = np.array([bool(r.get("trf_clipped")) or t > s for r, t, s in zip(rows, trf, side)])
    for a in (ax, ax_r):
        for x in xs[clipped]:
            a.axvspan(x - 0.5, x + 0.5, color="0.88", linewidth=0, zorder=0)
    ax.plot(xs, trf, "k--o", markersize=4, label="TRF size √(rows·cols)")
    _errorbar(ax, xs, erf, _interval(rows, "erf_size"), color="C0", marker="s", markersize=4,
              label="ERF size (Luo)")  # fmt: skip
    if np.isfinite(side).any():
        ax.axhline(np.nanmax(side), color="C3", linewidth=0.8, label="input side")
    if clipped.any():
        ax.add_patch(Rectangle((0, 0), 0, 0, color="0.88", label="TRF > input: ERF cut off"))
    ratio = np.where(trf > 0, erf / np.where(trf > 0, trf, 1), np.nan)
    _errorbar(ax_r, xs, ratio, _interval(rows, "erf_trf_ratio"), color="C0", marker="s",
              markersize=4)  # fmt: skip
    if np.any(np.isfinite(erf) & (erf > 0)) or np.any(np.isfinite(trf) & (trf > 0)):
        log_axis(ax, "y")
    ax.set_ylabel("size (input px)")
    ax_r.set_ylabel("ERF / TRF")
    ax_r.set_ylim(bottom=0)
    ax_r.set_xticks(xs, [str(r.get("target") or "output") for r in rows], rotation=90, fontsize=6.5)
    ax_r.set_xlabel(human("target"))
    for a in (ax, ax_r):
        a.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=6.5)
    if title is None:
        models = sorted({model_name(r) for r in rows}, key=natural_key)
        sizes = sorted({f"{r.get('input_h')}×{r.get('input_w')}" for r in rows})
        title = f"{', '.join(models)} at {', '.join(sizes)} px: ERF and TRF through the network"
    fig.suptitle(wrap(title, fig.get_figwidth() - 0.3, 9))
    caption(fig, caption_text or "")
    return fig


@styled
def benchmark_figure(
    rows: Sequence[Mapping[str, Any]], title: str, *, caption_text: str | None = None
) -> Figure:
    """Images per second of each benchmark method as a dot (best run) on a log axis, with a
    line to the median run's speed when it is recorded (``best_s``/``median_s``), and the
    speed relative to the per-image method where it ran. Dots, not bars: a bar's length on a
    log axis depends on where the axis starts."""
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(rows) + 1.9), layout="constrained")
    names = [str(r["method"]) for r in rows]
    speed = np.array([_num(r.get("images_per_s")) for r in rows])
    speeds = {r["method"]: r["images_per_s"] for r in rows}
    ref = speeds.get("per_image")
    colors = ["C3" if n == "per_image" else "0.4" if n == "floor" else "C0" for n in names]
    ys = np.arange(len(rows))[::-1]
    for y, v, r, c in zip(ys, speed, rows, colors):
        best, median = _num(r.get("best_s")), _num(r.get("median_s"))
        if math.isfinite(best) and math.isfinite(median) and median > 0 and math.isfinite(v):
            ax.plot([v * best / median, v], [y, y], "-", color=c, linewidth=2, alpha=0.5)
        ax.plot([v], [y], "o", color=c, markersize=6)
    for y, v, name in zip(ys, speed, names):
        if not math.isfinite(v):
            continue
        if name == "multi" and speeds.get("separate"):
            label = f"{v:.3g}  ({v / speeds['separate']:.2f}× separate)"
        elif name in ("multi", "separate") or not ref:
            label = f"{v:.3g}"
        else:
            label = f"{v:.3g}  ({v / ref:.2f}× per-image)"
        ax.annotate(label, (v, y), xytext=(6, 0), textcoords="offset points", va="center",
                    fontsize=6.5)  # fmt: skip
    ax.set_yticks(ys, [wrap(name, 1.3, 7) for name in names], fontsize=7)
    finite = speed[np.isfinite(speed) & (speed > 0)]
    if finite.size:
        ax.set_xlim(finite.min() / 2, finite.max() * 12)
        log_axis(ax, "x")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("images per second")
    ax.set_title(wrap(title, 6.0, 8))
    ax.grid(True, axis="x", which="both", alpha=0.3)
    note = "dot: best run; line: to the median run; multi / separate: target maps per second"
    caption(fig, f"{note}; {caption_text}" if caption_text else note)
    return fig


def _num(v: Any) -> float:
    try:
        return float("nan") if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return float("nan")


PREVIEW_DPI = 100  # the PNG beside a PDF-only figure, for the report page


def save_figure(fig: Figure, path: str | Path, output: FigureOutput | None = None) -> list[Path]:
    """Save ``fig`` once per format of ``output`` (default ``current_output()``: PNG at 200
    dpi unless ``figure_output`` says otherwise) beside ``path`` with that format's suffix
    (``heatmap.png`` -> ``heatmap.pdf``), each atomically (``erf.io.store.atomic_write``: a
    kill or a full disk mid-write leaves the old file or none, never a truncated one); close
    the figure. PDF and SVG keep text as text. Formats that no web page shows (PDF only) get
    a PNG preview at ``PREVIEW_DPI`` beside them, for the report page. Returns the paths
    written."""
    output = output or current_output()
    path = Path(path)
    formats = [(fmt, output.dpi) for fmt in output.formats]
    if not {"png", "svg"} & set(output.formats):
        formats.append(("png", PREVIEW_DPI))
    written = []
    try:
        with style():
            for fmt, dpi in formats:
                target = path.with_suffix(f".{fmt}")
                meta = _metadata(fmt)
                atomic_write(target, lambda f, fmt=fmt, dpi=dpi, meta=meta: fig.savefig(f, dpi=dpi, format=fmt, metadata=meta))  # noqa: E501  # fmt: skip
                written.append(target)
    finally:
        plt.close(fig)
    return written


def _metadata(fmt: str) -> dict[str, Any] | None:
    """No creation date in vector files, so re-rendering the same results gives the same file."""
    if fmt == "pdf":
        return {"CreationDate": None}
    if fmt == "svg":
        return {"Date": None}
    return None


# --------------------------------------------------------------------------- training study


@styled
def before_after_figure(
    rows: Sequence[Mapping[str, Any]],
    scale: str = "linear",
    suptitle: str | None = None,
    *,
    caption_text: str | None = None,
) -> Figure:
    """ERF before and after training, one row per network: the two heatmaps on one shared
    colour scale (each map / its own peak, so sizes compare; ``scale`` as in ``scaled_map``,
    one colour bar), zoomed to one window that holds both ERFs, and, on the right, the
    centre-row profiles of both with Luo's threshold.

    Each row holds ``map_init`` and ``map_trained`` ([H, W]), ``title``, and optionally
    ``trf_interval``, ``fit_init``/``fit_trained`` (``draw_erf``'s ``fit``), ``center``
    ((row, col) input pixel under the probed unit; default the map centre), ``label_init``
    and ``label_trained`` (panel titles) and ``warning``.
    """
    n = max(len(rows), 1)
    fig, axes = plt.subplots(
        n, 3, figsize=(9.0, 2.9 * n + 1.2), squeeze=False, layout="constrained",
        gridspec_kw={"width_ratios": [1, 1, 1.3]},
    )  # fmt: skip
    image = None
    for (ax_a, ax_b, ax_p), row in zip(axes, rows):
        window = erf_window([row["map_init"], row["map_trained"]], row.get("trf_interval"))
        for ax, key, fit_key, default in (
            (ax_a, "map_init", "fit_init", "at initialisation"),
            (ax_b, "map_trained", "fit_trained", "after training"),
        ):
            image = draw_erf(
                ax,
                row[key],
                trf_interval=row.get("trf_interval"),
                fit=row.get(fit_key),
                title=row.get(f"label_{key[4:]}", default),
                scale=scale,
                window=window,
            )
            ax.set_xlabel("input column (px)", fontsize=7)
        ax_a.set_ylabel("input row (px)", fontsize=7)
        h, w = row["map_init"].shape
        r, _ = row.get("center") or (h // 2, w // 2)
        cols = np.arange(w)
        for key, style_, name in (("map_init", "--", "init"), ("map_trained", "-", "trained")):
            m = np.asarray(row[key], dtype=np.float64)
            peak = m[tuple(row.get("center") or (h // 2, w // 2))]
            profile = m[r] / peak if peak > 0 else np.full(w, np.nan)
            ax_p.plot(cols, np.where(profile > 0, profile, np.nan), style_, label=name)
        ax_p.axhline(1 - 0.9545, color="grey", linewidth=0.8, label="Luo threshold")
        ax_p.set_yscale("log")
        ax_p.set_ylim(1e-4, 2)
        if window is not None:
            ax_p.set_xlim(window[1][0] - 0.5, window[1][1] + 0.5)
        ax_p.set_xlabel("input column (centre row, px)")
        ax_p.set_ylabel("ERF / centre value")
        ax_p.grid(True, which="both", alpha=0.3)
        ax_p.legend(fontsize=6.5, loc="best")
        ax_p.set_title(wrap(row.get("title", ""), 3.2, 7), fontsize=7)
        if row.get("warning"):
            ax_p.text(0.02, 0.02, wrap(row["warning"], 2.6, 6), transform=ax_p.transAxes,
                      fontsize=6, color="red", va="bottom")  # fmt: skip
    if image is not None:
        colorbar(fig, image, axes[:, :2].ravel().tolist(), scale)
    if suptitle:
        fig.suptitle(wrap(suptitle, fig.get_figwidth() - 0.3, 9), fontsize=9)
    caption(fig, caption_text or "", handles=legend_handles(list(axes[:, 0]) + list(axes[:, 1])))
    return fig


@styled
def erf_epochs_figure(
    history: Sequence[Mapping[str, Any]],
    metric: str = "val_accuracy",
    *,
    title: str | None = None,
    caption_text: str | None = None,
) -> Figure:
    """ERF size (Luo) per epoch (epoch 0 = initialisation; top, y from 0 so a 1-px change
    looks like one) and ``metric`` (bottom), on integer epoch ticks.

    ``history`` rows hold ``epoch``, ``erf_size`` and optionally ``metric``; with
    ``erf_size_ci_low``/``_high`` error bars are drawn."""
    values = [_num(r.get(metric)) for r in history]
    has_metric = any(math.isfinite(v) for v in values)
    fig, axes = plt.subplots(
        2 if has_metric else 1, 1, figsize=(5.2, 4.6 if has_metric else 3.2), sharex=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    ax = axes[0, 0]
    epochs = np.array([r["epoch"] for r in history], dtype=float)
    sizes = np.array([_num(r.get("erf_size")) for r in history])
    _errorbar(ax, epochs, sizes, _interval(history, "erf_size"), color="C0", marker="o",
              markersize=4)  # fmt: skip
    top = np.nanmax(sizes) if np.isfinite(sizes).any() else 1.0
    ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
    ax.set_ylabel("ERF size (Luo, px)")
    ax.grid(True, alpha=0.3)
    if has_metric:
        ax_m = axes[1, 0]
        ax_m.plot(epochs, values, "s-", color="C1", markersize=4)
        ax_m.set_ylabel(human(metric))
        ax_m.grid(True, alpha=0.3)
    bottom = axes[-1, 0]
    bottom.set_xlabel("epoch (0 = initialisation)")
    integer_ticks(bottom, "x")
    fig.suptitle(wrap(title or "ERF size during training", 5.0, 9))
    caption(fig, caption_text or "")
    return fig


@styled
def training_curves_figure(
    history: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    caption_text: str | None = None,
) -> Figure:
    """Train/val loss (left) and accuracy, plus mean IoU when present (right), per epoch, on
    integer epoch ticks."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(7.2, 3.4), layout="constrained")
    epochs = [r["epoch"] for r in history]
    for split, style_ in (("train", "--"), ("val", "-")):
        ax_l.plot(epochs, [_num(r.get(f"{split}_loss")) for r in history], style_, marker=".",
                  label=human(f"{split}_loss"))  # fmt: skip
        for metric, color in (("accuracy", "C0"), ("mean_iou", "C1")):
            values = [_num(r.get(f"{split}_{metric}")) for r in history]
            if any(math.isfinite(v) for v in values):
                ax_a.plot(epochs, values, style_, color=color, marker=".",
                          label=human(f"{split}_{metric}"))  # fmt: skip
    ax_l.set_ylabel("cross-entropy loss")
    ax_a.set_ylabel("score")
    for ax in (ax_l, ax_a):
        ax.set_xlabel("epoch")
        integer_ticks(ax, "x")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=6.5, loc="best")
    fig.suptitle(wrap(title or "training curves", 6.8, 9))
    caption(fig, caption_text or "")
    return fig


# --------------------------------------------------------------------------- shift vs growth

_GROWTH_LABELS = {
    "shift_norm": "shift |COM − unit|",
    "luo_size_own": "Luo size\n(own centre)",
    "moment_sigma_own": "moment σ\n(own centre)",
    "mass_radius_50_own": "mass r50\n(own centre)",
    "luo_size_unit": "Luo size\n(unit)",
    "moment_sigma_unit": "moment σ\n(unit)",
    "mass_radius_50_unit": "mass r50\n(unit)",
}


@styled
def shift_growth_figure(
    groups: Sequence[Mapping[str, Any]], group_by: str = "setting", level: float = 0.95
) -> Figure:
    """Off-centre shift vs growth of the ERF through training, one row per group (setting).

    Left: the map's centre of mass relative to the probed unit (at 0, 0), in input pixels,
    before (open circle) and after training (filled), one arrow per seed. Right: the change
    after − before (px) of the shift and of each size about the map's own centre and about
    the unit, one dot per seed, with the mean and its ``level`` t-interval.
    ``groups`` are ``erf.analysis.shift.shift_growth_stats`` entries.
    """
    n = max(len(groups), 1)
    fig, axes = plt.subplots(
        n, 2, figsize=(11, 3.6 * n), squeeze=False, constrained_layout=True,
        gridspec_kw={"width_ratios": [1, 2.2]},
    )  # fmt: skip
    for (ax_s, ax_g), group in zip(axes, groups):
        seeds = group["seeds"]
        colours = plt.cm.tab10(np.arange(len(seeds)) % 10)
        for i, (seed, colour) in enumerate(zip(seeds, colours)):
            r0, r1 = (group["shift_row"][p]["values"][i] for p in ("before", "after"))
            c0, c1 = (group["shift_col"][p]["values"][i] for p in ("before", "after"))
            ax_s.plot([c0], [r0], "o", mfc="none", color=colour)
            if not all(math.isfinite(v) for v in (r1, c1)):  # left out: a vanished map
                ax_s.plot([], [], "o", mfc="none", color=colour, label=f"seed {seed} (left out)")
                continue
            ax_s.annotate("", (c1, r1), (c0, r0), arrowprops={"arrowstyle": "->", "color": colour})
            ax_s.plot([c1], [r1], "o", color=colour, label=f"seed {seed}")
        ax_s.plot([0], [0], "k+", markersize=10, label="probed unit")
        ax_s.set_aspect("equal", adjustable="datalim")
        ax_s.invert_yaxis()
        ax_s.set_xlabel("COM − unit, columns (px)")
        ax_s.set_ylabel("COM − unit, rows (px)")
        ax_s.grid(True, alpha=0.3)
        ax_s.legend(fontsize=6)
        ax_s.set_title(
            wrap(f"{group[group_by]}: centre of mass, init (open) → trained", 2.6, 8), fontsize=8
        )
        keys = list(_GROWTH_LABELS)
        for x, key in enumerate(keys):
            change = group[key]["change"]
            ax_g.scatter(
                x + np.linspace(-0.12, 0.12, len(seeds)), change["values"], c=colours, s=14
            )
            if math.isfinite(change["low"]):
                err = [[change["mean"] - change["low"]], [change["high"] - change["mean"]]]
                ax_g.errorbar([x + 0.25], [change["mean"]], yerr=err, fmt="ks", ms=4, capsize=3)
            else:
                ax_g.plot([x + 0.25], [change["mean"]], "ks", ms=4)
        ax_g.axhline(0.0, color="grey", linewidth=0.8)
        ax_g.axvline(0.5, color="grey", linewidth=0.5, linestyle=":")
        ax_g.axvline(3.5, color="grey", linewidth=0.5, linestyle=":")
        ax_g.set_xticks(range(len(keys)), [_GROWTH_LABELS[k] for k in keys], fontsize=7)
        ax_g.set_ylabel("after − before (px)")
        ax_g.grid(True, axis="y", alpha=0.3)
        ax_g.set_title(
            wrap(
                f"{group[group_by]}: change per seed (dots), mean with {level:.0%} t-interval "
                f"over the seeds (black; n = {group['shift_norm']['change']['n']})",
                5.6,
                8,
            ),
            fontsize=8,
        )
    return fig
