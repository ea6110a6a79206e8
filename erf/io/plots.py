"""Matplotlib figures from saved results (maps and metric dicts), never from live models.

Image convention: ``imshow`` with the origin at the top left, x = column, y = row, so a
pixel (row, col) is drawn at data coordinates (col, row).
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
from matplotlib.patches import Ellipse, Rectangle  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter  # noqa: E402

from erf.analysis.metrics import loglog_slope  # noqa: E402
from erf.io.store import atomic_write  # noqa: E402

Interval = tuple[tuple[float, float], tuple[float, float]]


def trf_box(interval: Interval, linewidth: float = 1.0, label: str | None = None) -> Rectangle:
    """The dashed white square of a TRF (or measured support) ``interval``: inclusive
    ((row_start, row_end), (col_start, col_end)) input pixels, drawn on pixel edges."""
    (r0, r1), (c0, c1) = interval
    return Rectangle(
        (c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor="white",
        linestyle="--", linewidth=linewidth, label=label,
    )  # fmt: skip


def draw_erf(
    ax: plt.Axes,
    erf_map: np.ndarray,
    *,
    trf_interval: Interval | None = None,
    fit: Mapping[str, Any] | None = None,
    title: str | None = None,
    n_sigma: float = 2.0,
    scale: str = "linear",
    warning: str | None = None,
    trf_label: str = "TRF",
    unit: Sequence[float] | None = None,
) -> None:
    """Draw one ERF map with the TRF square and the fitted n·σ ellipse.

    ``unit`` (row, col) marks where the probed unit sits in the input (a dense output's
    centre pixel, a strided map's unit), with a cross.

    ``trf_label`` is the square's legend label (e.g. "measured support (lower bound)" when the
    box is a measured support rather than the exact TRF).

    ``scale`` "linear" shows map / peak; "log" shows RepLKNet's log10(map + 1) / max, which
    lifts the faint tails of large maps.

    ``trf_interval`` is ((row_start, row_end), (col_start, col_end)), inclusive input pixels;
    ``fit`` holds ``center_row``, ``center_col``, ``sigma_x`` (column axis), ``sigma_y``
    and ``rotation`` (radians) as written by ``GaussianFit.to_dict``.
    """
    ax.imshow(scaled_map(erf_map, scale), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    if trf_interval is not None:
        ax.add_patch(trf_box(trf_interval, linewidth=1.0, label=trf_label))
    if fit is not None and _finite(fit, "center_row", "center_col", "sigma_x", "sigma_y"):
        ax.add_patch(
            Ellipse(
                (fit["center_col"], fit["center_row"]),
                width=2 * n_sigma * fit["sigma_x"],
                height=2 * n_sigma * fit["sigma_y"],
                angle=math.degrees(fit.get("rotation") or 0.0),
                fill=False,
                edgecolor="red",
                linewidth=1.0,
                label=f"{n_sigma:g}σ fit",
            )
        )
    if unit is not None:
        ax.plot(
            [unit[1]], [unit[0]], marker="+", markersize=9, markeredgewidth=1.5, color="white",
            linestyle="none", label="probed unit",
        )  # fmt: skip
    h, w = erf_map.shape
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    if warning:  # e.g. a poor fit or a clipped TRF: shown on the figure, not only in the JSON
        ax.text(
            0.02,
            0.02,
            warning,
            transform=ax.transAxes,
            fontsize=6,
            color="red",
            va="bottom",
            ha="left",
            wrap=True,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
        )


def scaled_map(erf_map: np.ndarray, scale: str = "linear") -> np.ndarray:
    """The map in [0, 1] for display: map / peak, or log10(map + 1) / its max ("log")."""
    if scale not in ("linear", "log"):
        raise ValueError(f"plot scale {scale!r}; allowed: linear, log")
    data = np.log10(np.clip(erf_map, 0, None) + 1.0) if scale == "log" else erf_map
    peak = np.nanmax(data) if np.isfinite(data).any() else 0.0
    return data / peak if peak > 0 else np.zeros_like(data)


def _finite(d: Mapping[str, Any], *keys: str) -> bool:
    return all(d.get(k) is not None and math.isfinite(d[k]) for k in keys)


def erf_figure(erf_map: np.ndarray, **kwargs: Any) -> Figure:  # kwargs: see draw_erf
    """One heatmap with TRF square and fit ellipse (see ``draw_erf``), with a legend."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2), constrained_layout=True)
    draw_erf(ax, erf_map, **kwargs)
    if ax.patches or ax.lines:
        ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    return fig


def erf_grid_figure(
    panels: Sequence[Mapping[str, Any]], ncols: int = 4, scale: str = "linear"
) -> Figure:
    """A grid of heatmaps; each panel is a dict of ``draw_erf`` keyword arguments plus ``map``."""
    n = max(len(panels), 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.4 * ncols, 2.5 * nrows), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        kwargs = dict(panel)
        draw_erf(ax, kwargs.pop("map"), scale=scale, **kwargs)
    shown = "scaled to peak" if scale == "linear" else "log10(x+1), scaled to max"
    fig.suptitle(f"ERF ({shown}); dashed: TRF, red: 2σ Gaussian fit", fontsize=9)
    return fig


def trf_vs_erf_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    x: str = "depth",
    group_by: Sequence[str] = ("init", "activation"),
) -> Figure:
    """Log-log ERF size and TRF size against ``x`` (left), and ERF/TRF (right).

    Each group (e.g. one init × activation) is a line; the legend holds its fitted
    log-log slope. ``rows`` are metric dicts with ``x``, ``erf_size`` and ``trf_size``.
    """
    fig, (ax_size, ax_ratio) = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group_by), []).append(row)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (key, members) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        members = sorted(members, key=lambda r: r[x])
        xs = np.array([r[x] for r in members], dtype=float)
        erf = np.array([_num(r.get("erf_size")) for r in members])
        ratio = np.array([_num(r.get("erf_trf_ratio")) for r in members])
        label = "/".join(str(k) for k in key)
        color = colors[i % len(colors)]
        slope, _, _ = loglog_slope(xs, erf)
        ax_size.plot(xs, erf, "o-", color=color, label=f"ERF {label} (slope {slope:.2f})")
        r_slope, _, _ = loglog_slope(xs, ratio)
        ax_ratio.plot(xs, ratio, "o-", color=color, label=f"{label} (slope {r_slope:.2f})")
    trf = {r[x]: _num(r.get("trf_size")) for r in rows}
    xs = np.array(sorted(trf), dtype=float)
    ts = np.array([trf[v] for v in sorted(trf)])
    t_slope, _, _ = loglog_slope(xs, ts)
    ax_size.plot(xs, ts, "k--", label=f"TRF (slope {t_slope:.2f})")
    for ax, ylabel in ((ax_size, "size (pixels)"), (ax_ratio, "ERF size / TRF size")):
        _loglog_axes(ax, xs, x, ylabel)
    ax_size.set_title("Theoretical vs effective RF (log-log)", fontsize=10)
    ax_ratio.set_title("ERF / TRF (log-log)", fontsize=10)
    return fig


def _loglog_axes(ax: plt.Axes, xs: np.ndarray, x: str, ylabel: str) -> None:
    """Log-log axes with plain-number ticks at ``xs``, a grid and a legend."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    low, high = ax.get_ylim()
    # Within one decade there may be no major tick: label the minor ones then.
    short = low > 0 and high / low < 10
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g") if short else NullFormatter())
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


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
        _loglog_axes(ax, xs, "depth", ylabel)
        ax.legend(fontsize=6.5, loc=where)
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


def path_rf_figure(
    path_sizes: Sequence[tuple[int, int]],
    *,
    erf_size: float | None = None,
    trf_size: float | None = None,
    title: str = "",
) -> Figure:
    """Distribution of path RF sizes (pixels) over all input-to-target paths, as fractions of
    the paths, with the TRF (the largest path) and the measured ERF size marked.
    ``path_sizes`` are (span in pixels, number of paths) pairs."""
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    spans = np.array([s for s, _ in path_sizes], dtype=float)
    counts = np.array([n for _, n in path_sizes], dtype=float)
    width = 0.8 * (np.diff(spans).min() if spans.size > 1 else 1.0)
    ax.bar(spans, counts / counts.sum(), width=width, color="C0", label="paths")
    if trf_size is not None:
        ax.axvline(trf_size, color="k", ls="--", label=f"TRF = longest path ({trf_size:g})")
    if erf_size is not None and math.isfinite(erf_size):
        ax.axvline(erf_size, color="C3", label=f"measured ERF size ({erf_size:.1f})")
    ax.set_xlabel("path RF (pixels)")
    ax.set_ylabel("fraction of paths")
    ax.set_title(title or "RF of the input-to-target paths", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def shape_figure(profiles: Sequence[tuple[str, np.ndarray, float | None]]) -> Figure:
    """Centre-row profiles of several ERFs, scaled to 1 at the centre, on a log y axis, each
    with its fitted Gaussian (dotted; a Gaussian is a parabola here). Items are
    (label, profile, fitted sigma in pixels or None). x is the offset from the centre."""
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, profile, sigma) in enumerate(profiles):
        offsets = np.arange(profile.size) - profile.size // 2
        color = colors[i % len(colors)]
        shown = np.where(profile > 0, profile, np.nan)
        ax.plot(offsets, shown, "-", color=color, label=label)
        if sigma is not None and math.isfinite(sigma) and sigma > 0:
            ax.plot(offsets, np.exp(-0.5 * (offsets / sigma) ** 2), ":", color=color)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 1.5)
    ax.set_xlabel("offset from the centre pixel (columns)")
    ax.set_ylabel("ERF / centre value")
    ax.set_title("ERF centre-row profiles (dotted: fitted Gaussian)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def profile_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """ERF size and TRF size of each profiled layer, in forward order (log y axis)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 4.2), constrained_layout=True)
    xs = np.arange(len(rows))
    erf = [_num(r.get("erf_size")) for r in rows]
    trf = [_num(r.get("trf_size")) for r in rows]
    ax.plot(xs, trf, "k--o", label="TRF size √(rows·cols)")
    ax.plot(xs, erf, "o-", color="C0", label="ERF size (Luo)")
    for x, e, t in zip(xs, erf, trf):
        if math.isfinite(e) and math.isfinite(t) and t > 0:
            ax.annotate(
                f"{e / t:.2f}",
                (x, e),
                textcoords="offset points",
                xytext=(0, -12),
                ha="center",
                fontsize=7,
                color="C0",
            )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.set_xticks(xs, [str(r.get("target")) for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("size (input pixels)")
    ax.set_title("ERF and TRF through the network (numbers: ERF/TRF)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def benchmark_figure(rows: Sequence[Mapping[str, Any]], title: str) -> Figure:
    """Images per second of each benchmark method (log x axis), with the speed relative to
    the per-image method where it ran."""
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.4), constrained_layout=True)
    names = [str(r["method"]) for r in rows]
    speed = [_num(r.get("images_per_s")) for r in rows]
    speeds = {r["method"]: r["images_per_s"] for r in rows}
    ref = speeds.get("per_image")
    colors = ["C3" if n == "per_image" else "0.5" if n == "floor" else "C0" for n in names]
    ys = np.arange(len(rows))[::-1]
    ax.barh(ys, speed, color=colors)
    for y, v, name in zip(ys, speed, names):
        if name == "multi" and speeds.get("separate"):
            label = f"{v:.3g}  ({v / speeds['separate']:.2f}x separate)"
        elif name in ("multi", "separate") or not ref:
            label = f"{v:.3g}"
        else:
            label = f"{v:.3g}  ({v / ref:.2f}x per-image)"
        ax.annotate(label, (v, y), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=7)  # fmt: skip
    ax.set_yticks(ys, names, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(speed) * 6)
    ax.set_xlabel("images per second (multi/separate: target maps per second)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Save as PNG at a modest dpi, atomically (``erf.io.store.atomic_write``: a kill or a
    full disk mid-write leaves the old file or none, never a truncated PNG), and close it."""
    try:
        atomic_write(Path(path), lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- training study


def before_after_figure(
    rows: Sequence[Mapping[str, Any]], scale: str = "linear", suptitle: str | None = None
) -> Figure:
    """ERF before and after training, one row per network: the two heatmaps on one shared
    colour scale (each map / its own peak, so sizes compare; ``scale`` as in ``scaled_map``,
    one colour bar) and, on the right, the centre-row profiles of both with Luo's threshold.

    Each row holds ``map_init`` and ``map_trained`` ([H, W]), ``title``, and optionally
    ``trf_interval``, ``fit_init``/``fit_trained`` (``draw_erf``'s ``fit``), ``center``
    ((row, col) input pixel under the probed unit; default the map centre), ``label_init``
    and ``label_trained`` (panel titles) and ``warning``.
    """
    n = max(len(rows), 1)
    fig, axes = plt.subplots(
        n, 3, figsize=(12, 3.6 * n), squeeze=False, constrained_layout=True,
        gridspec_kw={"width_ratios": [1, 1, 1.25]},
    )  # fmt: skip
    image = None
    for (ax_a, ax_b, ax_p), row in zip(axes, rows):
        for ax, key, fit_key, default in (
            (ax_a, "map_init", "fit_init", "at initialisation"),
            (ax_b, "map_trained", "fit_trained", "after training"),
        ):
            draw_erf(
                ax,
                row[key],
                trf_interval=row.get("trf_interval"),
                fit=row.get(fit_key),
                title=row.get(f"label_{key[4:]}", default),
                scale=scale,
            )
            image = ax.images[-1]
        h, w = row["map_init"].shape
        r, _ = row.get("center") or (h // 2, w // 2)
        cols = np.arange(w)
        for key, style, name in (("map_init", "--", "init"), ("map_trained", "-", "trained")):
            m = np.asarray(row[key], dtype=np.float64)
            peak = m[row.get("center") or (h // 2, w // 2)]
            profile = m[r] / peak if peak > 0 else np.zeros(w)
            ax_p.plot(cols, profile, style, label=name)
        ax_p.axhline(1 - 0.9545, color="grey", linewidth=0.8, label="Luo threshold")
        ax_p.set_yscale("log")
        ax_p.set_ylim(1e-4, 2)
        ax_p.set_xlabel("input column (centre row)")
        ax_p.set_ylabel("ERF / centre value")
        ax_p.grid(True, which="both", alpha=0.3)
        ax_p.legend(fontsize=7)
        ax_p.set_title(row.get("title", ""), fontsize=8)
        if row.get("warning"):
            ax_p.text(0.02, 0.02, row["warning"], transform=ax_p.transAxes, fontsize=6,
                      color="red", va="bottom", wrap=True)  # fmt: skip
    if image is not None:
        shown = "map / its peak" if scale == "linear" else "log10(map+1) / max"
        bar = fig.colorbar(image, ax=axes[:, :2].ravel().tolist(), shrink=0.6, pad=0.02)
        bar.set_label(shown, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def erf_epochs_figure(history: Sequence[Mapping[str, Any]], metric: str = "val_accuracy") -> Figure:
    """ERF size (Luo) per epoch (epoch 0 = initialisation) and ``metric`` on a second axis.

    ``history`` rows hold ``epoch``, ``erf_size`` and optionally ``metric``."""
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [_num(r.get("erf_size")) for r in history], "o-", color="C0")
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("ERF size (Luo, pixels)", color="C0")
    ax.grid(True, alpha=0.3)
    values = [_num(r.get(metric)) for r in history]
    if any(math.isfinite(v) for v in values):
        twin = ax.twinx()
        twin.plot(epochs, values, "s--", color="C1")
        twin.set_ylabel(metric, color="C1")
    ax.set_title("ERF size during training", fontsize=10)
    return fig


def training_curves_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """Train/val loss (left) and accuracy, plus mean IoU when present (right), per epoch."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    epochs = [r["epoch"] for r in history]
    for split, style in (("train", "--"), ("val", "-")):
        ax_l.plot(epochs, [_num(r.get(f"{split}_loss")) for r in history], style, label=split)
        for metric, color in (("accuracy", "C0"), ("mean_iou", "C1")):
            values = [_num(r.get(f"{split}_{metric}")) for r in history]
            if any(math.isfinite(v) for v in values):
                ax_a.plot(epochs, values, style, color=color, label=f"{split} {metric}")
    ax_l.set_ylabel("cross-entropy")
    ax_a.set_ylabel("score")
    for ax in (ax_l, ax_a):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def cross_arch_figure(
    panels: Sequence[Sequence[Mapping[str, Any] | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    scale: str = "log",
    norm: str = "row",
    title: str | None = None,
) -> Figure:
    """The large-kernel papers' cross-architecture figure: ``panels[i][j]`` is the map of model
    ``col_labels[j]`` under inputs ``row_labels[i]`` (None: no such job, an empty panel).

    A panel is a dict with ``map`` ([H, W], e.g. seed-averaged), optional ``trf_interval``
    (((r0, r1), (c0, c1)), inclusive input pixels: drawn as a dashed box), ``trf_note`` (e.g.
    "TRF global", written in the panel) and ``caption`` (under the panel).

    ``scale`` "log" shows log10(map + 1) (RepLKNet), "linear" the map. ``norm`` "row" divides
    every panel of a row by the row's largest value: one colour scale per row, shared by its
    panels, so magnitudes compare within a row; "cell" divides each panel by its own maximum
    (RepLKNet's per-map display), so only shapes compare. One colour bar per row.
    """
    if scale not in ("linear", "log"):
        raise ValueError(f"plot scale {scale!r}; allowed: linear, log")
    if norm not in ("row", "cell"):
        raise ValueError(f"norm {norm!r}; allowed: row, cell")
    nrows, ncols = len(row_labels), len(col_labels)
    if nrows == 0 or ncols == 0 or len(panels) != nrows or any(len(r) != ncols for r in panels):
        raise ValueError(f"panels must be {nrows} rows of {ncols} panels, one per label")
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(1.9 * ncols + 0.8, 2.05 * nrows + 0.5),
        squeeze=False,
        constrained_layout=True,
    )
    for i, row in enumerate(panels):
        shown = [None if p is None else _display(p["map"], scale) for p in row]
        row_peak = max((float(np.nanmax(d)) for d in shown if d is not None and d.size), default=0)
        image = None
        for j, (ax, panel, data) in enumerate(zip(axes[i], row, shown)):
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
            if panel is None or data is None:
                ax.text(0.5, 0.5, "no job", ha="center", va="center", fontsize=7)
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
            _mark_trf(ax, panel, data.shape)
            if panel.get("caption"):
                ax.set_xlabel(panel["caption"], fontsize=6.5)
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes[i]), shrink=0.85, pad=0.01)
            bar.ax.tick_params(labelsize=6)
    shown_as = "log10(x+1)" if scale == "log" else "x"
    scaled = "/ row max (one colour scale per row)" if norm == "row" else "/ each map's max"
    fig.suptitle(title or f"ERF: {shown_as} {scaled}\ndashed: TRF or measured support", fontsize=8)
    return fig


def _display(erf_map: np.ndarray, scale: str) -> np.ndarray:
    """The map as shown before normalisation: log10(max(x, 0) + 1) or the map itself."""
    m = np.asarray(erf_map, dtype=np.float64)
    return np.log10(np.clip(m, 0, None) + 1.0) if scale == "log" else m


def _mark_trf(ax: plt.Axes, panel: Mapping[str, Any], shape: tuple[int, int]) -> None:
    """The TRF box (dashed white) and the TRF note of one panel; axes kept on the image."""
    h, w = shape
    if panel.get("trf_interval") is not None:
        ax.add_patch(trf_box(panel["trf_interval"], linewidth=0.9))
    if panel.get("trf_note"):
        ax.text(
            0.03,
            0.97,
            panel["trf_note"],
            transform=ax.transAxes,
            fontsize=6,
            color="white",
            va="top",
            ha="left",
            bbox={"facecolor": "black", "alpha": 0.5, "edgecolor": "none", "pad": 1},
        )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
