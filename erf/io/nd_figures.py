"""Figures of sequence and volume ERF maps (``erf.analysis.ndim``), in the erf figure style.

- ``profile_figure``: a sequence map ``[L]`` as a profile over the input samples, with the
  TRF span shaded, the fitted Gaussian, Luo's threshold and the probed unit;
- ``slices_figure``: a volume map ``[D, H, W]`` as three orthogonal slices through the probed
  unit's voxel (fixed d: rows h, cols w; fixed h: rows d, cols w; fixed w: rows d, cols h),
  one colour scale (the volume's peak), the TRF box of each slice's two axes and the unit.

``nd_title`` and ``nd_job_figure`` give a job's figure from its metrics (``metrics.json``
keys of ``erf.analysis.summary.nd_erf_metrics``), as ``erf.io.job`` does for images.
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
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from erf.analysis.metrics import LUO_FRACTION  # noqa: E402
from erf.io.figure_style import caption, colorbar, styled, wrap  # noqa: E402
from erf.io.heatmaps import scaled_map  # noqa: E402

AXIS_NAMES = ("depth d", "row h", "column w")  # the axes of a volume, in index order
Span = Sequence[int]  # an inclusive [start, end] of input samples on one axis


def nd_title(metrics: Mapping[str, Any]) -> str:
    """The figure title of a sequence or volume job: its model words, the Luo size (with the
    per-axis sizes of a volume) and the TRF per axis."""
    words = {"label": "{}", "name": "{}", "target": "layer {}", "depth": "depth {}"}
    head = ", ".join(w.format(metrics[k]) for k, w in words.items() if metrics.get(k) is not None)
    unit = "samples" if metrics.get("ndim") == 1 else "voxels"
    erf = metrics.get("erf_size")
    sizes = "ERF size n/a" if erf is None or not math.isfinite(erf) else f"ERF size {erf:.2f}"
    if erf is not None and math.isfinite(erf) and metrics.get("ndim") == 3:
        sizes += " (per axis " + " x ".join(f"{v:g}" for v in metrics["erf_size_axes"]) + ")"
    trf = metrics.get("trf_sizes")
    sizes += f" {unit}, TRF " + (" x ".join(str(v) for v in trf) if trf else "n/a")
    return f"{head}\n{sizes}" if head else sizes


def _gaussian_1d(fit: Mapping[str, Any] | None, t: np.ndarray) -> np.ndarray | None:
    """The fitted Gaussian of ``fit`` (``GaussianNDFit.to_dict``) at samples ``t``."""
    if not fit or fit.get("degenerate") or not math.isfinite(fit.get("r_squared", math.nan)):
        return None
    (c,), ((var,),) = fit["center"], fit["covariance"]
    return fit["offset"] + fit["amplitude"] * np.exp(-0.5 * (t - c) ** 2 / var)


@styled
def profile_figure(
    profile: np.ndarray,
    *,
    trf_interval: Sequence[Span] | None = None,
    fit: Mapping[str, Any] | None = None,
    unit: Sequence[float] | None = None,
    title: str | None = None,
    scale: str = "linear",
    warning: str | None = None,
    caption_text: str | None = None,
    trf_label: str = "TRF",
    center: Sequence[int] | None = None,
) -> Figure:
    """A sequence ERF ``[L]`` over the input samples (see the module docstring): map / peak
    (``scale="log"``: log10(map + 1) / max), the TRF span ``trf_interval`` (``[[start,
    end]]``) shaded, the Gaussian ``fit`` dashed, Luo's threshold (linear scale; relative to
    the value at ``center``, ``[t]``, the metrics' reference entry; default: ``unit``
    rounded) dotted and the probed ``unit`` (``[t]``) marked."""
    profile = np.asarray(profile, dtype=np.float64)
    t = np.arange(len(profile))
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    peak = float(np.nanmax(profile)) if np.isfinite(profile).any() else 0.0
    shown = scaled_map(profile, scale)
    if trf_interval:
        (start, end), *_ = trf_interval
        ax.axvspan(start - 0.5, end + 0.5, color="0.85", zorder=0, label=f"{trf_label} span")
    ax.plot(t, shown, marker="o", markersize=2.5, linewidth=1.0, color="C0", label="ERF")
    model = _gaussian_1d(fit, t.astype(np.float64))
    if model is not None and peak > 0 and scale == "linear":
        r2 = fit["r_squared"]
        ax.plot(
            t, model / peak, "--", color="red", linewidth=0.9, label=f"Gaussian fit (R² {r2:.3f})"
        )
    if center is None and unit is not None:
        center = [min(max(math.floor(float(unit[0]) + 0.5), 0), len(profile) - 1)]
    if center is not None and scale == "linear" and peak > 0:
        level = (1 - LUO_FRACTION) * profile[int(center[0])] / peak
        ax.axhline(level, color="0.4", linestyle=":", linewidth=0.8, label="Luo threshold")
    if unit is not None:
        ax.axvline(float(unit[0]), color="0.2", linewidth=0.8, label="probed unit")
    ax.set_xlim(-0.5, len(profile) - 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("input sample t")
    ax.set_ylabel("|∂y/∂x| / peak" if scale == "linear" else "log10(|∂y/∂x| + 1) / max")
    if title:
        fig.suptitle(wrap(title, fig.get_figwidth() - 0.3, 9), fontsize=9)
    handles = ax.get_legend_handles_labels()[0]
    caption(fig, caption_text or "", warning=warning, handles=handles)
    return fig


def _slices(volume: np.ndarray, center: Sequence[int]) -> list[tuple[np.ndarray, int, int]]:
    """The three slices through ``center`` as (image, row axis, column axis)."""
    d, h, w = center
    return [(volume[d], 1, 2), (volume[:, h], 0, 2), (volume[:, :, w], 0, 1)]


@styled
def slices_figure(
    volume: np.ndarray,
    *,
    center: Sequence[int],
    trf_interval: Sequence[Span] | None = None,
    unit: Sequence[float] | None = None,
    title: str | None = None,
    scale: str = "linear",
    warning: str | None = None,
    caption_text: str | None = None,
    trf_label: str = "TRF",
) -> Figure:
    """A volume ERF ``[D, H, W]`` as three orthogonal slices through ``center`` (the unit's
    voxel, ``[d, h, w]``), one colour scale for all three (``scale`` as in
    ``profile_figure``), each with its TRF box (``trf_interval``: ``[[d0, d1], [h0, h1],
    [w0, w1]]``) and the probed ``unit`` (``[d, h, w]``, possibly fractional)."""
    volume = np.asarray(volume, dtype=np.float64)
    shown = scaled_map(volume, scale)
    fig, axes = plt.subplots(1, 3, figsize=(7.4, 3.3), layout="constrained")
    image = None
    for ax, (plane, ra, ca), fixed in zip(axes, _slices(shown, center), range(3)):
        image = ax.imshow(plane, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"slice {'dhw'[fixed]} = {center[fixed]}", fontsize=7)
        ax.set_ylabel(f"input {AXIS_NAMES[ra]}")
        ax.set_xlabel(f"input {AXIS_NAMES[ca]}")
        if trf_interval:
            (r0, r1), (c0, c1) = trf_interval[ra], trf_interval[ca]
            box = Rectangle(
                (c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor="white",
                linestyle="--", linewidth=1.0, label=trf_label,
            )  # fmt: skip
            ax.add_patch(box)
        if unit is not None:
            ax.plot(float(unit[ca]), float(unit[ra]), marker="+", color="red", markersize=7)
    colorbar(fig, image, list(axes), scale, shrink=0.7)
    if title:
        fig.suptitle(wrap(title, fig.get_figwidth() - 0.3, 9), fontsize=9)
    handles: list[Any] = []
    if trf_interval:
        handles.append(Patch(fill=False, edgecolor="0.3", linestyle="--", label=trf_label))
    if unit is not None:
        handles.append(Line2D([], [], marker="+", color="red", ls="none", label="probed unit"))
    caption(fig, caption_text or "", warning=warning, handles=handles)
    return fig


def nd_job_figure(
    erf_map: np.ndarray,
    metrics: Mapping[str, Any],
    *,
    scale: str,
    caption_text: str,
    trf_label: str = "TRF",
) -> Figure:
    """A sequence or volume job's figure from its map and ``metrics``: ``profile_figure`` of
    ``[L]``, ``slices_figure`` of ``[D, H, W]`` through the metrics' ``center``."""
    common = {
        "trf_interval": metrics.get("trf_interval"),
        "unit": metrics.get("unit_in_input"),
        "title": nd_title(metrics),
        "scale": scale,
        "warning": "; ".join(metrics.get("warnings", [])) or None,
        "caption_text": caption_text,
        "trf_label": trf_label,
    }
    if np.ndim(erf_map) == 1:
        return profile_figure(
            erf_map, fit=metrics.get("fit"), center=metrics.get("center"), **common
        )
    return slices_figure(erf_map, center=metrics["center"], **common)


@styled
def nd_grid_figure(
    panels: Sequence[Mapping[str, Any]],
    *,
    ncols: int = 4,
    scale: str = "linear",
    caption_text: str | None = None,
) -> Figure:
    """A sweep's maps of sequences or volumes, one small panel per job: a profile with its TRF
    span shaded (``[L]``), or the slice through the probed voxel at fixed d with its TRF box
    (``[D, H, W]``; the job's ``heatmap.png`` has all three slices). A panel is a dict with
    ``map``, ``trf_interval``, ``center`` (the reference entry), ``title`` and ``note``."""
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.6 * ncols + 0.6, 2.0 * nrows + 0.9), layout="constrained",
        squeeze=False,
    )  # fmt: skip
    image = None
    for ax, panel in zip(axes.ravel(), panels):
        erf_map = np.asarray(panel["map"], dtype=np.float64)
        spans = panel.get("trf_interval")
        if erf_map.ndim == 1:
            if spans:
                ax.axvspan(spans[0][0] - 0.5, spans[0][1] + 0.5, color="0.85", zorder=0)
            ax.plot(scaled_map(erf_map, scale), color="C0", linewidth=1.0)
            ax.set_ylim(bottom=0)
            ax.set_xlabel("input sample t", fontsize=6)
        else:
            d = int((panel.get("center") or [erf_map.shape[0] // 2])[0])
            shown = scaled_map(erf_map, scale)[d]
            image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            if spans:
                (r0, r1), (c0, c1) = spans[1], spans[2]
                ax.add_patch(
                    Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                              edgecolor="white", linestyle="--", linewidth=0.8)
                )  # fmt: skip
            ax.set_xlabel(f"slice d = {d}: w", fontsize=6)
        ax.set_title("\n".join(t for t in (panel.get("title"), panel.get("note")) if t), fontsize=6)
        ax.tick_params(labelsize=5)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    if image is not None:
        colorbar(fig, image, list(axes.ravel()[:n]), scale, shrink=0.6)
    caption(fig, caption_text or "")
    return fig


__all__ = ["nd_grid_figure", "nd_job_figure", "nd_title", "profile_figure", "slices_figure"]
