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
    "before_after_figure", "benchmark_figure", "draw_erf", "erf_epochs_figure", "erf_figure",
    "erf_grid_figure", "loglog_axes", "profile_figure", "save_figure", "scaled_map",
    "training_curves_figure", "trf_box", "trf_vs_erf_figure",
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
        loglog_axes(ax, xs, x, ylabel, legend=False)
    ax_size.set_title("ERF and TRF size (log-log)")
    ax_ratio.set_title("ERF / TRF (log-log; slopes in the legend)")
    handles, _ = ax_size.get_legend_handles_labels()
    caption(fig, caption_text or "", handles=handles, ncol=2 if n > 1 else 1)
    return fig


def loglog_axes(
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


# --------------------------------------------------------------------------- training jobs


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
