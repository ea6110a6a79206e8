"""Heatmap figures of ERF maps (one job's heatmap, a sweep's grid) and the map drawer the
other figures share (``draw_erf``), from saved maps only; the cross-architecture figure is
``erf.studies.cross_arch.cross_arch_figure``.

Image convention: ``imshow`` with the origin at the top left, x = column, y = row, so a
pixel (row, col) is drawn at data coordinates (col, row). Panels are zoomed to the region
that holds the ERF (``erf_window``) with pixel axes and the full input beside or inset; the
TRF box and its legend entry appear only when some edge of the box lies inside the input.
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
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Ellipse, Patch, Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from erf.io.figure_style import (  # noqa: E402
    Window,
    caption,
    colorbar,
    mass_extent,
    styled,
    wrap,
    zoom_window,
)

Interval = tuple[tuple[float, float], tuple[float, float]]


def trf_box(interval: Interval, linewidth: float = 1.0, label: str | None = None) -> Rectangle:
    """The dashed white square of a TRF (or measured support) ``interval``: inclusive
    ((row_start, row_end), (col_start, col_end)) input pixels, drawn on pixel edges."""
    (r0, r1), (c0, c1) = interval
    return Rectangle(
        (c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor="white",
        linestyle="--", linewidth=linewidth, label=label,
    )  # fmt: skip


def box_visible(interval: Interval | None, shape: tuple[int, int]) -> bool:
    """Whether some edge of the TRF box ``interval`` lies inside a map of ``shape``: a TRF
    that covers the whole input draws no visible box (and gets no legend entry)."""
    if interval is None:
        return False
    (r0, r1), (c0, c1) = interval
    h, w = shape
    inside = r0 > 0 or c0 > 0 or r1 < h - 1 or c1 < w - 1
    overlaps = r0 <= h - 1 and c0 <= w - 1 and r1 >= 0 and c1 >= 0
    return bool(inside and overlaps)


def _int_box(interval: Interval | None) -> Window | None:
    if interval is None:
        return None
    (r0, r1), (c0, c1) = interval
    return (int(r0), int(r1)), (int(c0), int(c1))


def erf_window(
    maps: Sequence[np.ndarray], trf_interval: Interval | None = None, **kwargs: Any
) -> Window | None:
    """The zoom window shared by ``maps`` (one shape): the union of their mass-99 % boxes and
    the TRF box when it lies inside the input (``figure_style.zoom_window``); None: show all."""
    shape = np.asarray(maps[0]).shape
    extents = [mass_extent(m) for m in maps]
    if box_visible(trf_interval, shape):
        (r0, r1), (c0, c1) = _int_box(trf_interval)
        if r0 >= 0 and c0 >= 0 and r1 <= shape[0] - 1 and c1 <= shape[1] - 1:
            extents.append(((r0, r1), (c0, c1)))  # the whole TRF fits: zoom to it
    return zoom_window(shape, extents, **kwargs)


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
    window: Window | None | str = "auto",
    inset: bool = True,
    note: str | None = None,
    max_warning_lines: int = 3,
) -> Any:
    """Draw one ERF map with the TRF square and the fitted n·σ ellipse; returns the image.

    ``unit`` (row, col) marks where the probed unit sits in the input (a dense output's
    centre pixel, a strided map's unit), with a cross.

    ``trf_label`` is the square's legend label (e.g. "measured support (lower bound)" when the
    box is a measured support rather than the exact TRF); the box (and its label) is drawn
    only when some edge of it lies inside the input.

    ``scale`` "linear" shows map / peak; "log" shows RepLKNet's log10(map + 1) / max, which
    lifts the faint tails of large maps.

    ``window`` "auto" zooms to the ERF's mass-99 % box (with the TRF box when it fits, and a
    margin; ``erf_window``), a ((r0, r1), (c0, c1)) window zooms there, None shows the whole
    input; a zoomed panel gets the full input as an inset (``inset``) with the window marked.
    Axes are input pixels. ``note`` is a short text in the panel's top left (sizes);
    ``warning`` a red text at its bottom, wrapped to the panel, at most ``max_warning_lines``.

    ``trf_interval`` is ((row_start, row_end), (col_start, col_end)), inclusive input pixels;
    ``fit`` holds ``center_row``, ``center_col``, ``sigma_x`` (column axis), ``sigma_y``
    and ``rotation`` (radians) as written by ``GaussianFit.to_dict``.
    """
    erf_map = np.asarray(erf_map, dtype=np.float64)
    shown = scaled_map(erf_map, scale)
    image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    h, w = erf_map.shape
    if box_visible(trf_interval, (h, w)):
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
                label=f"{n_sigma:g}σ Gaussian fit",
            )
        )
    if unit is not None:
        ax.plot(
            [unit[1]], [unit[0]], marker="+", markersize=9, markeredgewidth=1.5, color="white",
            linestyle="none", label="probed unit",
        )  # fmt: skip
    if window == "auto":
        window = erf_window([erf_map], trf_interval)
    (r0, r1), (c0, c1) = window if window is not None else ((0, h - 1), (0, w - 1))
    ax.set_xlim(c0 - 0.5, c1 + 0.5)
    ax.set_ylim(r1 + 0.5, r0 - 0.5)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=3, integer=True, min_n_ticks=2))
    ax.tick_params(labelsize=6, length=2, pad=1)
    if window is not None and inset:
        full = ax.inset_axes([0.70, 0.70, 0.28, 0.28])
        full.imshow(shown, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        full.add_patch(
            Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                      edgecolor="white", linewidth=0.8)
        )  # fmt: skip
        full.set_xticks([])
        full.set_yticks([])
        for spine in full.spines.values():
            spine.set_edgecolor("white")
        full.set_label("full input")
    if title:
        ax.set_title(title, fontsize=7)
    width_in = ax.get_position().width * ax.figure.get_figwidth() * 0.8
    if note:
        ax.text(
            0.03, 0.97, note, transform=ax.transAxes, fontsize=6, color="white", va="top",
            ha="left", bbox={"facecolor": "black", "alpha": 0.5, "edgecolor": "none", "pad": 1},
        )  # fmt: skip
    if warning:  # e.g. a poor fit or a clipped TRF: shown on the figure, not only in the JSON
        lines = wrap(warning, width_in, 5.5).split("\n")
        if len(lines) > max_warning_lines:
            lines = [*lines[: max_warning_lines - 1], lines[max_warning_lines - 1] + " …"]
        ax.text(
            0.03, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize=5.5, color="red",
            va="bottom", ha="left",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )  # fmt: skip
    return image


def scaled_map(erf_map: np.ndarray, scale: str = "linear") -> np.ndarray:
    """The map in [0, 1] for display: map / peak, or log10(map + 1) / its max ("log")."""
    if scale not in ("linear", "log"):
        raise ValueError(f"plot scale {scale!r}; allowed: linear, log")
    data = np.log10(np.clip(erf_map, 0, None) + 1.0) if scale == "log" else erf_map
    peak = np.nanmax(data) if np.isfinite(data).any() else 0.0
    return data / peak if peak > 0 else np.zeros_like(data)


def _finite(d: Mapping[str, Any], *keys: str) -> bool:
    return all(d.get(k) is not None and math.isfinite(d[k]) for k in keys)


def legend_handles(axes: Sequence[plt.Axes]) -> list[Any]:
    """One legend entry per label drawn on any of ``axes`` (TRF box, fit, unit)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for artist in [*ax.patches, *ax.lines]:
            label = artist.get_label()
            if label and not label.startswith("_") and label not in seen:
                if isinstance(artist, Rectangle):
                    seen[label] = Patch(fill=False, edgecolor="0.3", linestyle="--", label=label)
                elif isinstance(artist, Ellipse):
                    seen[label] = Patch(fill=False, edgecolor="red", label=label)
                else:
                    seen[label] = Line2D([], [], marker="+", color="0.3", ls="none", label=label)
    return list(seen.values())


@styled
def erf_figure(
    erf_map: np.ndarray, *, caption_text: str | None = None, **kwargs: Any
) -> Figure:  # kwargs: see draw_erf
    """One heatmap with TRF square and fit ellipse (see ``draw_erf``), zoomed to the ERF with
    the full input as a second panel, a colour bar, a legend under the map and a caption;
    ``warning`` goes into the caption (wrapped), not over the map."""
    warning = kwargs.pop("warning", None)
    scale = kwargs.get("scale", "linear")
    title = kwargs.pop("title", None)
    erf_map = np.asarray(erf_map, dtype=np.float64)
    window = kwargs.pop("window", "auto")
    if window == "auto":
        window = erf_window([erf_map], kwargs.get("trf_interval"))
    if window is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.6), layout="constrained")
        axes = [ax]
    else:
        fig, axes = plt.subplots(
            1, 2, figsize=(6.4, 4.0), layout="constrained", gridspec_kw={"width_ratios": [2, 1]}
        )
    image = draw_erf(axes[0], erf_map, window=window, inset=False, **kwargs)
    axes[0].set_xlabel("input column (px)")
    axes[0].set_ylabel("input row (px)")
    if window is not None:
        axes[0].set_title("zoom on the ERF", fontsize=7)
        full_kwargs = {k: v for k, v in kwargs.items() if k not in ("note", "title")}
        draw_erf(axes[1], erf_map, window=None, inset=False, **full_kwargs)
        (r0, r1), (c0, c1) = window
        axes[1].add_patch(
            Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                      edgecolor="orange", linewidth=0.9, label="_zoom")
        )  # fmt: skip
        axes[1].set_title("full input (orange: zoom)", fontsize=7)
        axes[1].set_xlabel("input column (px)")
    colorbar(fig, image, list(axes), scale)
    if title:
        fig.suptitle(wrap(title, fig.get_figwidth() - 0.3, 9), fontsize=9)
    caption(fig, caption_text or "", warning=warning, handles=legend_handles(axes[:1]))
    return fig


def _grid_shape(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


@styled
def erf_grid_figure(
    panels: Sequence[Mapping[str, Any] | None],
    ncols: int = 4,
    scale: str = "linear",
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    caption_text: str | None = None,
) -> Figure:
    """A grid of heatmaps; each panel is a dict of ``draw_erf`` keyword arguments plus ``map``
    (None: an empty cell). With ``row_labels`` and ``col_labels`` the panels are a
    row-major matrix of len(row_labels) x len(col_labels) and the labels are row and column
    headers; else ``ncols`` panels a row, each titled by its own ``title``. Each panel keeps
    its own pixel axes (maps of different sizes are drawn at their own scale), is zoomed to
    its ERF (``draw_erf``'s ``window``), shows its sizes as ``note``; one colour bar, one
    legend and a caption for the figure."""
    if row_labels is not None and col_labels is not None:
        nrows, ncols = len(row_labels), len(col_labels)
        if len(panels) != nrows * ncols:
            raise ValueError(f"panels must be {nrows} x {ncols} for the row and column labels")
    else:
        nrows, ncols = _grid_shape(max(len(panels), 1), ncols)
    width = max(4.0, 1.75 * ncols + 1.6)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, 1.85 * nrows + 1.3), squeeze=False, layout="constrained"
    )
    image = None
    for k, ax in enumerate(axes.flat):
        panel = panels[k] if k < len(panels) else None
        i, j = divmod(k, ncols)
        if panel is None:
            if k < len(panels):
                ax.text(0.5, 0.5, "no job", ha="center", va="center", fontsize=7,
                        transform=ax.transAxes)  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_facecolor("0.92")
            else:
                ax.axis("off")
        else:
            kwargs = dict(panel)
            kwargs.pop("title", None)
            image = draw_erf(ax, kwargs.pop("map"), scale=scale, **kwargs)
        if col_labels is not None and i == 0:
            ax.set_title(wrap(col_labels[j], 1.6, 8), fontsize=8)
        elif panel is not None and panel.get("title"):
            ax.set_title(wrap(panel["title"], 1.6, 7), fontsize=7)
        header = f"{wrap(row_labels[i], 1.5, 7)}\n" if row_labels is not None and j == 0 else ""
        if j == 0 and ax.axison:
            ax.set_ylabel(f"{header}row (px)", fontsize=7)
        if (i == nrows - 1 or k + ncols >= len(panels)) and ax.axison:
            ax.set_xlabel("column (px)", fontsize=7)
    if image is not None:
        colorbar(
            fig, image, axes.ravel().tolist(), scale, shrink=min(0.85, 3.0 / fig.get_figheight())
        )
    shown = "each map / its peak" if scale == "linear" else "log10(x+1), each map / its max"
    head = title or f"ERF ({shown}); axes: input pixels, zoomed to the ERF (inset: full input)"
    fig.suptitle(wrap(head, width - 0.3, 9), fontsize=9)
    caption(fig, caption_text or "", handles=legend_handles(list(axes.flat)))
    return fig
