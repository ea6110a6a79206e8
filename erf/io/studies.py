"""The files of the protocol-aware Luo et al. 2016 studies (``erf.io.sweep.write_study``):
shape (activations, saturation), growth with its null models, and the skip-scale curve.

Every number that compares jobs carries an interval over weight draws: fit R² a delete-a-group
jackknife of the mean map over draws, bias-corrected (``erf.analysis.studies.fit_r2_interval``),
sizes the t-band over draws of the pooled map's count (``erf.analysis.bands.draws_size_band``),
growth slopes both
ways: t-intervals over per-draw slopes (``growth_stats``) and a jackknife of the pooled curve's
slope (``pooled_growth``, the only one that applies to ``probe.protocol=luo``).
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
from erf.analysis.null_models import null_curves
from erf.analysis.studies import (
    centre_profile,
    fit_r2_interval,
    growth_stats,
    per_draw_rows,
    pooled_growth,
)
from erf.io.figure_style import caption, caption_text, human, styled, wrap
from erf.io.plots import growth_figure, save_figure, shape_figure
from erf.io.store import load_result, load_results, write_json, write_text
from erf.io.tables import csv_text, is_number

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


def _label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    return row.get("label") or "/".join(str(row.get(k)) for k in keys)


def _per_draw_maps(row: Mapping[str, Any]) -> np.ndarray:
    """[M, H, W]: the job's per-draw maps (draws.npz), or its one map as a single draw."""
    folder = Path(row["_dir"])
    if (folder / "draws.npz").exists():
        return np.stack([r.map for r in load_results(folder / "draws.npz")])
    return load_result(folder / "erf.npz").map[None]


def shape_entries(
    rows: Sequence[Mapping[str, Any]], group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """One entry per job: its group keys, protocol, unit seeding (``channel``: None = every
    channel), reduction, draws × samples, fit R² with its jackknife bias-corrected value and
    interval over draws, and ERF size with its t-band over draws."""
    out = []
    for row in rows:
        maps = _per_draw_maps(row)
        r2 = fit_r2_interval(maps)
        size = draws_size_band(maps)
        out.append(
            {
                "job": row.get("job"),
                "label": _label(row, group_by),
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
    shape.png (``erf.io.plots.shape_figure`` of the profiles cut to the TRF)."""
    entries = shape_entries(rows, group_by)
    write_json({"group_by": list(group_by), "jobs": entries}, sweep_dir / "shape.json")
    columns = list(dict.fromkeys([*group_by, *SHAPE_COLUMNS]))
    write_text(csv_text(entries, columns), sweep_dir / "shape.csv")
    profiles = []
    for row in rows:
        p = _cut_to_trf(centre_profile(load_result(Path(row["_dir"]) / "erf.npz").map), row)
        profiles.append((_label(row, group_by), p, row.get("sigma_x")))
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


def write_growth_study(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str]
) -> list[dict[str, Any]]:
    """growth.json (``growth_stats`` per group plus ``null_models``: the closed-form box and
    √box curves at the same depths, ``erf.analysis.null_models``), growth_slopes.csv (one row
    per group and null model) and growth.png (``erf.io.plots.growth_figure`` with the null
    models as reference lines). Returns the groups."""
    groups = growth_stats(per_draw_rows(rows), x=x, group_by=group_by)
    for g in groups:  # Luo's reading: sizes of the maps pooled over draws, jackknife intervals
        members = sorted(
            (r for r in rows if all(r.get(k) == g[k] for k in group_by)), key=lambda r: r[x]
        )
        if len(members) == len(g["xs"]):
            stacks = [_per_draw_maps(r) for r in members]
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


def write_skip_study(sweep_dir: Path, rows: Sequence[Mapping[str, Any]]) -> str:
    """skip_scale.json / skip_scale.csv (per job: batch_norm, branch_scale, TRF, ERF size with
    its t-interval over draws, ERF/TRF, fit R²) and skip_scale.png (ERF size against the
    branch scale α, one line per batch_norm, TRF dashed). Returns a text table."""
    entries = []
    for row in rows:
        size = draws_size_band(_per_draw_maps(row))
        entries.append(
            {
                "job": row.get("job"),
                "batch_norm": bool(row.get("batch_norm")),
                "branch_scale": _num(row.get("branch_scale", 1.0)),
                "protocol": row.get("protocol", "ours"),
                "n_draws": row.get("n_draws", 1),
                "n_samples": row.get("n_samples"),
                "trf_size": row.get("trf_size"),
                "erf_size": row.get("erf_size"),
                "erf_size_low": size[0],  # t-band over draws of the pooled map's count
                "erf_size_high": size[1],
                "erf_trf_ratio": row.get("erf_trf_ratio"),
                "fit_r2": row.get("fit_r2"),
            }
        )
    entries.sort(key=lambda e: (e["batch_norm"], e["branch_scale"]))
    write_json({"jobs": entries}, sweep_dir / "skip_scale.json")
    columns = list(entries[0]) if entries else []
    write_text(csv_text(entries, columns), sweep_dir / "skip_scale.csv")
    fig = skip_scale_figure(entries)
    caption(fig, caption_text(rows))
    save_figure(fig, str(sweep_dir / "skip_scale.png"))
    lines = [f"{'batch_norm':>10} {'alpha':>6} {'ERF size [95% CI]':>26} {'TRF':>5}"]
    for e in entries:
        lines.append(
            f"{e['batch_norm']!s:>10} {e['branch_scale']:>6g} {_num(e['erf_size']):>8.2f} "
            f"[{e['erf_size_low']:.2f}, {e['erf_size_high']:.2f}] {_num(e['trf_size']):>5g}"
        )
    return "\n".join(lines)


@styled
def skip_scale_figure(entries: Sequence[Mapping[str, Any]]) -> Figure:
    """ERF size (95 % t-interval over draws) against the residual branch scale α, one line
    with and one without batch-norm; the TRF (the same for every α) dashed."""
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for i, bn in enumerate((False, True)):
        members = [e for e in entries if e["batch_norm"] == bn]
        if not members:
            continue
        a = np.array([e["branch_scale"] for e in members])
        y = np.array([_num(e["erf_size"]) for e in members])
        lo = np.array([e["erf_size_low"] for e in members])
        hi = np.array([e["erf_size_high"] for e in members])
        err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])
        label = "with batch-norm" if bn else "no batch-norm"
        ax.errorbar(
            a, y, yerr=np.clip(err, 0, None), fmt="o-", capsize=3, color=f"C{i}", label=label
        )
    if entries:
        ax.axhline(_num(entries[0]["trf_size"]), color="k", ls="--", lw=1, label="TRF")
    ax.set_xlabel("residual branch scale α in act(x + α·f(x))")
    ax.set_ylabel("ERF size (Luo, px)")
    ax.set_title("skip connections: ERF size vs branch scale, 95 % CI over draws", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
