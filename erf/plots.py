"""Matplotlib figures from saved results (maps and metric dicts), never from live models.

Image convention: ``imshow`` with the origin at the top left, x = column, y = row, so a
pixel (row, col) is drawn at data coordinates (col, row).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse, Rectangle  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from erf.metrics import loglog_slope  # noqa: E402

Interval = tuple[tuple[float, float], tuple[float, float]]


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
) -> None:
    """Draw one ERF map with the TRF square and the fitted n·σ ellipse.

    ``scale`` "linear" shows map / peak; "log" shows RepLKNet's log10(map + 1) / max, which
    lifts the faint tails of large maps.

    ``trf_interval`` is ((row_start, row_end), (col_start, col_end)), inclusive input pixels;
    ``fit`` holds ``center_row``, ``center_col``, ``sigma_x`` (column axis), ``sigma_y``
    and ``rotation`` (radians) as written by ``GaussianFit.to_dict``.
    """
    ax.imshow(scaled_map(erf_map, scale), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    if trf_interval is not None:
        (r0, r1), (c0, c1) = trf_interval
        ax.add_patch(
            Rectangle(
                (c0 - 0.5, r0 - 0.5),
                c1 - c0 + 1,
                r1 - r0 + 1,
                fill=False,
                edgecolor="white",
                linestyle="--",
                linewidth=1.0,
                label="TRF",
            )
        )
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
    if ax.patches:
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
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax_size.set_title("Theoretical vs effective RF (log-log)", fontsize=10)
    ax_ratio.set_title("ERF / TRF (log-log)", fontsize=10)
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


def save_figure(fig: Figure, path: str) -> None:
    """Save as PNG at a modest dpi and close the figure."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
