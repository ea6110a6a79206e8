"""The shape study (Luo et al. 2016; ``study=shape``): how Gaussian the ERF is, per
activation, saturation or setting, with intervals over weight draws.

Fit R² carries a delete-a-group jackknife interval of the mean map over draws, about its
bias-corrected value (``fit_r2_interval``); the ERF size the t-band over draws of the pooled
map's count (``erf.analysis.bands.draws_size_band``).

Files: ``shape.json`` / ``shape.csv`` (``shape_entries``), ``fit_r2.png`` (``fit_r2_figure``),
``shape_panels.png`` (``shape_panels_figure``) and ``shape.png`` (``shape_figure``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from erf.analysis.bands import draws_size_band
from erf.analysis.fit import fit_gaussian
from erf.analysis.repeats import jackknife
from erf.io.figure_style import caption, caption_text, human, log_axis, styled, wrap
from erf.io.plots import LINESTYLES, save_figure
from erf.io.store import load_result, write_json, write_text
from erf.io.sweep import job_label, per_draw_maps
from erf.io.tables import csv_text, format_rows, is_number
from erf.studies.registry import register_study

SHAPE_COLUMNS = (
    "job",
    "label",
    "protocol",
    "channel",
    "reduce",
    "n_draws",
    "n_samples",
    "fit_r2",
    "fit_r2_corrected",
    "fit_r2_low",
    "fit_r2_high",
    "erf_size",
    "erf_size_low",
    "erf_size_high",
    "sigma_x",
)

# --------------------------------------------------------------------------- statistics


def centre_profile(erf_map: np.ndarray, center: tuple[int, int] | None = None) -> np.ndarray:
    """The map's row through ``center`` (default (H // 2, W // 2)), scaled to 1 at the centre:
    the 1-D shape compared across activations (a Gaussian is a parabola on a log axis)."""
    m = np.asarray(erf_map, dtype=np.float64)
    r, c = (m.shape[0] // 2, m.shape[1] // 2) if center is None else center
    peak = m[r, c]
    return m[r] / peak if peak > 0 else np.full(m.shape[1], np.nan)


def fit_r2_interval(
    maps: np.ndarray | Sequence[np.ndarray], groups: int = 16, level: float = 0.95
) -> dict[str, Any]:
    """Gaussian-fit R² of the mean of per-draw ``maps`` ([M, H, W]), its jackknife
    bias-corrected value and interval over weight draws.

    The M draws are split into G = min(M, ``groups``) contiguous groups; R²_(g) is the fit R²
    (``erf.analysis.fit.fit_gaussian``) of the mean map without group g. Noise in a finite
    mean map lowers its R² by about c / M (the noise's share of the map's variance), so the
    estimate ``fit_r2`` is biased low and an interval centred on it misses the R² of the map at
    infinitely many draws (measured: 0.01 coverage at 0.95, ``experiments/calibration``). The
    jackknife removes a c / M bias exactly: ``fit_r2_corrected`` = G · R² − (G − 1) · mean
    R²_(g) (the leave-out maps hold (G − 1) / G of the draws, so their bias is G / (G − 1)
    times larger). The interval is ``fit_r2_corrected`` ± t_{G-1} · SE with SE =
    sqrt((G − 1) / G · Σ (R²_(g) − mean)²), capped at 1. It is over weight draws: for a
    protocol whose draws each average many inputs it includes their input noise. With one
    draw ``low``/``high``/``fit_r2_corrected`` are NaN."""
    stack = np.asarray(maps, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] < 1:
        raise ValueError(f"maps must be [draws, H, W] with draws >= 1, got shape {stack.shape}")
    if groups < 2:
        raise ValueError(f"groups must be >= 2, got {groups}")
    j = jackknife(lambda ms: fit_gaussian(ms[0]).r_squared, [stack], groups, level)
    out: dict[str, Any] = {
        "fit_r2": j["estimate"],
        "fit_r2_corrected": j["corrected"],
        "low": j["corrected_low"],
        "high": min(1.0, j["corrected_high"]),
        "se": j["se"],
        "n_draws": stack.shape[0],
    }
    if j["groups"]:
        out["groups"] = j["groups"]
    return out


# --------------------------------------------------------------------------- files


def shape_entries(
    rows: Sequence[Mapping[str, Any]], group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """One entry per job: its group keys, protocol, unit seeding (``channel``: None = every
    channel), reduction, draws × samples, fit R² with its jackknife bias-corrected value and
    interval over draws, and ERF size with its t-band over draws."""
    out = []
    for row in rows:
        maps = per_draw_maps(row)
        r2 = fit_r2_interval(maps)
        size = draws_size_band(maps)
        out.append(
            {
                "job": row.get("job"),
                "label": job_label(row, group_by),
                **{k: row.get(k) for k in group_by},
                "protocol": row.get("protocol", "ours"),
                "channel": row.get("channel"),
                "reduce": row.get("reduce"),
                "n_draws": row.get("n_draws", 1),
                "n_samples": row.get("n_samples"),
                "fit_r2": r2["fit_r2"],
                "fit_r2_corrected": r2["fit_r2_corrected"],
                "fit_r2_low": r2["low"],
                "fit_r2_high": r2["high"],
                "erf_size": row.get("erf_size"),
                "erf_size_low": size[0],  # t-band over draws of the pooled map's count
                "erf_size_high": size[1],
                "sigma_x": row.get("sigma_x"),
                "trf_size": row.get("trf_size"),
            }
        )
    return out


def write_shape_study(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """shape.json / shape.csv (``shape_entries``), fit_r2.png (1 − R² with its interval, x =
    the last ``group_by`` key, one line per the others), shape_panels.png (each job's
    centre-row profile against its fitted Gaussian, one panel per job, x range = the TRF) and
    shape.png (``shape_figure`` of the profiles cut to the TRF)."""
    entries = shape_entries(rows, group_by)
    write_json({"group_by": list(group_by), "jobs": entries}, sweep_dir / "shape.json")
    columns = list(dict.fromkeys([*group_by, *SHAPE_COLUMNS]))
    write_text(csv_text(entries, columns), sweep_dir / "shape.csv")
    profiles = []
    for row in rows:
        p = _cut_to_trf(centre_profile(load_result(Path(row["_dir"]) / "erf.npz").map), row)
        profiles.append((job_label(row, group_by), p, row.get("sigma_x")))
    text = caption_text(rows)
    save_figure(shape_figure(profiles, caption_text=text), str(sweep_dir / "shape.png"))
    for fig, name in (
        (shape_panels_figure(profiles, entries), "shape_panels.png"),
        (fit_r2_figure(entries, group_by), "fit_r2.png"),
    ):
        caption(fig, text)
        save_figure(fig, str(sweep_dir / name))
    return entries


def _cut_to_trf(profile: np.ndarray, row: Mapping[str, Any]) -> np.ndarray:
    """The centred part of ``profile`` inside the TRF (the map is 0 outside it)."""
    trf = row.get("trf_size")
    if not trf or not math.isfinite(trf):
        return profile
    half = min(profile.size // 2, int(trf) // 2)
    c = profile.size // 2
    return profile[c - half : c + half + 1]


@register_study(
    "shape",
    help="how Gaussian each job's ERF is: fit R² with a jackknife interval over draws, "
    "centre-row profiles against the fitted Gaussian",
    files=("shape.json", "shape.csv", "fit_r2.png", "shape_panels.png", "shape.png"),
)
def write(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str], scale: str
) -> str:
    """shape.json / .csv and the three figures (``write_shape_study``); returns a table of
    ``group_by``, ERF size and fit R² with its interval per job. ``x`` and ``scale`` are not
    used."""
    entries = write_shape_study(sweep_dir, rows, group_by)
    return format_rows(entries, [*group_by, "erf_size", "fit_r2", "fit_r2_low", "fit_r2_high"])


# --------------------------------------------------------------------------- figures


PROFILE_FLOOR = 1e-6  # lowest value a profile panel shows (the peak is 1)


@styled
def shape_panels_figure(
    profiles: Sequence[tuple[str, np.ndarray, float | None]], entries: Sequence[Mapping[str, Any]]
) -> Figure:
    """One panel per job: the centre-row profile (dots, log y) against its fitted Gaussian
    (line), x = offset from the centre over the TRF; the title gives R² and its interval."""
    n = len(profiles)
    ncols = min(4, max(n, 1))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.1 * ncols, 2.6 * nrows), squeeze=False, constrained_layout=True
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (label, profile, sigma), e in zip(axes.flat, profiles, entries):
        x = np.arange(profile.size) - profile.size // 2
        ax.plot(x, np.where(profile > 0, profile, np.nan), ".", ms=3, color="C0")
        if sigma is not None and math.isfinite(sigma) and sigma > 0:
            ax.plot(x, np.exp(-0.5 * (x / sigma) ** 2), "-", color="C3", lw=1)
        ax.set_yscale("log")
        ax.set_ylim(bottom=PROFILE_FLOOR)  # six decades below the peak: the tails that matter
        ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
        ax.set_title(wrap(f"{label}\nR² {_r2_text(e)}", 2.3, 8), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("offset from the centre (px)", fontsize=7)
        ax.set_ylabel("|∂y/∂x| / peak", fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    title = "centre-row profile (dots) vs fitted Gaussian (line), x = offset over the TRF"
    fig.suptitle(wrap(title, 3.1 * ncols - 0.2, 10), fontsize=10)
    return fig


def _r2_text(e: Mapping[str, Any]) -> str:
    r2, lo, hi = (_num(e.get(k)) for k in ("fit_r2", "fit_r2_low", "fit_r2_high"))
    if not math.isfinite(lo):
        return f"{r2:.4f}"
    return f"{r2:.4f} [{lo:.4f}, {hi:.4f}]"


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


@styled
def fit_r2_figure(entries: Sequence[Mapping[str, Any]], group_by: Sequence[str]) -> Figure:
    """1 − R² of the map at infinitely many draws (the jackknife bias-corrected R², symlog
    scale: a corrected R² can reach 1) with its interval over draws: x = the values of
    ``group_by[-1]`` in job order, one line per combination of the other keys."""
    x_key, line_keys = group_by[-1], list(group_by[:-1])
    values = list(dict.fromkeys(e.get(x_key) for e in entries))
    if all(is_number(v) for v in values):
        values.sort()  # numeric x (a gain, a depth): in order, not in job order
    xs = [str(v) for v in values]
    lines: dict[str, list[Mapping[str, Any]]] = {}
    for e in sorted(entries, key=lambda e: xs.index(str(e.get(x_key)))):
        lines.setdefault("/".join(str(e.get(k)) for k in line_keys) or "all", []).append(e)
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    width = 0.6 / max(len(lines), 1)
    for i, (name, members) in enumerate(lines.items()):
        pos = (
            np.array([xs.index(str(e.get(x_key))) for e in members]) + (i - len(lines) / 2) * width
        )
        y = np.array([1 - _num(e.get("fit_r2_corrected", e["fit_r2"])) for e in members])
        lo = np.array([1 - _num(e["fit_r2_high"]) for e in members])
        hi = np.array([1 - _num(e["fit_r2_low"]) for e in members])
        err = np.vstack(
            [np.where(np.isfinite(lo), y - lo, 0), np.where(np.isfinite(hi), hi - y, 0)]
        )
        ax.errorbar(pos, y, yerr=np.clip(err, 0, None), fmt="o-", ms=4, capsize=2, label=name)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_xlabel(human(x_key))
    ax.set_ylabel("1 − fit R², bias-corrected")
    ax.set_title("bias-corrected fit R², 95 % interval over draws", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, title="/".join(line_keys) or None, title_fontsize=7)
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
