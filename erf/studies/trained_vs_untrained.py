"""The trained-vs-untrained study (Luo et al. 2016, §3.2; ``experiment=trained_vs_untrained``,
``study=trained_vs_untrained``): the ERF of the same network at initialisation and after
training, over seeds. Its jobs are training jobs (``erf.app.jobs.training``; each job's own
figures: ``erf.io.trained``); this module summarises a sweep of them (``erf report DIR
--study trained_vs_untrained``, alias ``erf train-summary DIR``):

- ``summary.csv``: one row per job (setting and seed), with the off-centre shift and the
  sizes about the map's own centre and about the probed unit, before and after
  (``erf.analysis.shift``); its key columns also as ``summary.md`` and ``summary.tex``;
- ``shift_growth.csv`` / ``shift_growth.json``: per setting and quantity, the per-seed values
  before, after and their change, with the mean and its 95 % Student-t interval over seeds;
- ``before_after.png`` (one row of panels per job) and ``shift_growth.png``
  (``shift_growth_figure``).

It writes its own ``summary.csv``, so the plain sweep summary is not written for it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from erf.analysis.shift import KEYS as SHIFT_GROWTH_KEYS
from erf.analysis.shift import PHASES, shift_growth, shift_growth_stats, vanished
from erf.io.figure_style import caption, caption_text, styled, wrap
from erf.io.plots import before_after_figure, save_figure
from erf.io.store import load_result, write_json, write_text
from erf.io.sweep import collect
from erf.io.tables import csv_text, fixed_text, write_paper_tables
from erf.io.trained import before_after_panel, final_scores, training_label
from erf.result import ERFResult
from erf.studies.registry import register_study

SUMMARY_COLUMNS = (
    "job",
    "task",
    "seed",
    "dataset",
    "dataset_generated",
    "init",
    "blocks",
    "channels",
    "epochs",
    "target",
    "inputs",
    "input_h",
    "input_w",
    "trf_size",
    "erf_size_init",
    "erf_size_trained",
    "erf_size_change",
    "erf_diameter_init",
    "erf_diameter_trained",
    "erf_trf_ratio_init",
    "erf_trf_ratio_trained",
    "val_accuracy",
    "val_mean_iou",
    "wall_time_s",
    *(f"{k}_{when}" for k in SHIFT_GROWTH_KEYS for when in ("init", "trained")),
    "shift_growth_excluded",
)
LEVEL = 0.95  # the confidence level of the intervals over seeds


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Metrics of every finished training job under ``sweep_dir`` (``erf.io.sweep.collect``'s
    rows that hold ``erf_size_init``, in the same natural order)."""
    rows = [row for row in collect(sweep_dir) if "erf_size_init" in row]
    if not rows:
        raise FileNotFoundError(f"no finished training jobs (*/metrics.json) under {sweep_dir}")
    return rows


def unit_in_input(erf_metrics: dict[str, Any]) -> tuple[float, float]:
    """The probed unit's (row, col) in input pixels from a job's ERF metrics: the exact
    ``unit_in_input`` (the centre of its TRF) when recorded, else ``center_row/col``."""
    unit = erf_metrics.get("unit_in_input")
    if unit is None:
        unit = (erf_metrics["center_row"], erf_metrics["center_col"])
    return float(unit[0]), float(unit[1])


def add_shift_growth(row: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult) -> None:
    """Put the shift and sizes (``erf.analysis.shift.shift_growth``) of both maps into a
    job's row: ``row["shift_growth"]`` = {"before", "after"} and flat ``<key>_init`` /
    ``<key>_trained`` columns. A trained map that vanished (``erf.analysis.shift.vanished``:
    a dead unit) gets NaN after-values, so the statistics over seeds leave it out, and the
    reason in ``shift_growth_excluded``."""
    unit = unit_in_input(row["erf_init"])
    before, after = shift_growth(erf_init.map, unit), shift_growth(erf_trained.map, unit)
    reason = vanished(erf_init.map, erf_trained.map)
    if reason:
        after = {k: float("nan") for k in after}
    row["shift_growth_excluded"] = reason
    row["shift_growth"] = {"before": before, "after": after}
    for key in SHIFT_GROWTH_KEYS:
        row[f"{key}_init"], row[f"{key}_trained"] = before[key], after[key]


SETTING_KEYS = ("task", "dataset", "init", "weight_std", "blocks", "channels", "epochs")


def setting_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A name per row for the setting it belongs to (its seeds are its repeats): the task,
    plus each of ``SETTING_KEYS`` whose value differs between rows of that task."""
    names = []
    for r in rows:
        same_task = [o for o in rows if o["task"] == r["task"]]
        varied = [k for k in SETTING_KEYS[1:] if len({str(o.get(k)) for o in same_task}) > 1]
        names.append(", ".join([r["task"], *(f"{k}={r.get(k)}" for k in varied)]))
    return names


def study_stats(rows: Sequence[dict[str, Any]], level: float = LEVEL) -> list[dict[str, Any]]:
    """Per setting (``setting_names``): shift and growth over seeds (``shift_growth_stats``)
    of rows that went through ``add_shift_growth``."""
    names = setting_names(rows)
    stats = shift_growth_stats(
        [{"setting": n, "seed": r.get("seed"), **r["shift_growth"]} for n, r in zip(names, rows)],
        group_by="setting",
        level=level,
    )
    for group in stats:
        group["excluded"] = {
            str(r.get("seed")): r["shift_growth_excluded"]
            for n, r in zip(names, rows)
            if n == group["setting"] and r.get("shift_growth_excluded")
        }
    return stats


def stats_table(stats: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``shift_growth.csv`` rows: one per (setting, quantity, phase) with ``n``, ``mean``,
    ``low``, ``high`` and one ``seed_<s>`` column per seed (pixels)."""
    out = []
    for group in stats:
        for key in SHIFT_GROWTH_KEYS:
            for phase in PHASES:
                entry = group[key][phase]
                row = {"setting": group["setting"], "quantity": key, "phase": phase}
                row.update({k: entry[k] for k in ("n", "mean", "low", "high")})
                row.update({f"seed_{s}": v for s, v in zip(group["seeds"], entry["values"])})
                out.append(row)
    return out


def write_study_summary(
    sweep_dir: str | Path, rows: Sequence[dict[str, Any]], scale: str = "linear"
) -> list[dict[str, Any]]:
    """``summary.csv`` (one row per job; key columns also as ``summary.md``, ``summary.tex``),
    ``shift_growth.csv`` / ``.json`` (per setting, over seeds), ``before_after.png`` (one row
    of panels per job) and ``shift_growth.png`` in ``sweep_dir`` from its training jobs'
    ``rows`` (``collect_jobs``); returns the rows, each with its ``shift_growth``
    (``format_summary``)."""
    sweep_dir = Path(sweep_dir)
    rows = list(rows)
    panels = []
    for r in rows:
        erf_init = load_result(r["_dir"] / "erf_init.npz")
        erf_trained = load_result(r["_dir"] / "erf_trained.npz")
        add_shift_growth(r, erf_init, erf_trained)
        panels.append(before_after_panel(r, erf_init, erf_trained, training_label(r)))
    stats = study_stats(rows)
    write_text(csv_text(rows, SUMMARY_COLUMNS, every_column=True), sweep_dir / "summary.csv")
    table = stats_table(stats)
    seed_columns = list(dict.fromkeys(k for t in table for k in t if k.startswith("seed_")))
    columns = ["setting", "quantity", "phase", "n", "mean", "low", "high", *seed_columns]
    write_text(csv_text(table, columns, every_column=True), sweep_dir / "shift_growth.csv")
    write_json({"level": LEVEL, "unit": "px", "settings": stats}, sweep_dir / "shift_growth.json")
    write_paper_tables(sweep_dir, rows, SUMMARY_COLUMNS)
    generated = sorted({r["dataset"] for r in rows if r.get("dataset_generated")})
    note = f"GENERATED data: {', '.join(generated)}" if generated else "real data"
    fig = before_after_figure(
        panels,
        scale=scale,
        suptitle=f"ERF before / after training ({note})",
        caption_text=caption_text([{**(r.get("erf_init") or {}), **r} for r in rows]),
    )
    save_figure(fig, sweep_dir / "before_after.png")
    fig = shift_growth_figure(stats, group_by="setting", level=LEVEL)
    fig.suptitle(f"ERF shift vs growth through training ({note})", fontsize=9)
    caption(fig, caption_text([{**(r.get("erf_init") or {}), **r} for r in rows]))
    save_figure(fig, sweep_dir / "shift_growth.png")
    return rows


@register_study(
    "trained_vs_untrained",
    help="the ERF at initialisation and after training over seeds: off-centre shift against "
    "growth, with t-intervals (training jobs; writes its own summary.csv)",
    files=(
        "summary.csv", "summary.md", "summary.tex", "shift_growth.csv", "shift_growth.json",
        "before_after.png", "shift_growth.png",
    ),
    sweep_summary=False,
    collect=collect_jobs,
)  # fmt: skip
def write(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str], scale: str
) -> str:
    """``write_study_summary`` (``scale``: the heatmaps' scale); returns ``format_summary``.
    ``x`` and ``group_by`` are not used: the settings are told apart by ``setting_names``."""
    return format_summary(write_study_summary(sweep_dir, rows, scale))


def _interval(entry: dict[str, Any]) -> str:
    if entry["n"] < 2:
        return f"{entry['mean']:+.1f}"
    return f"{entry['mean']:+.1f} [{entry['low']:+.1f}, {entry['high']:+.1f}]"


def format_stats(stats: Sequence[dict[str, Any]], level: float = LEVEL) -> str:
    """Per setting and quantity: mean before, after and the change with its ``level``
    t-interval over seeds (pixels)."""
    lines = [f"shift vs growth, mean over seeds (change: {level:.0%} t-interval), px"]
    for group in stats:
        lines.append(f"{group['setting']} (seeds {', '.join(str(s) for s in group['seeds'])})")
        for seed, reason in group.get("excluded", {}).items():
            lines.append(f"  seed {seed} left out after training: {reason}")
        for key in SHIFT_GROWTH_KEYS:
            e = group[key]
            lines.append(
                f"  {key:<20} {e['before']['mean']:>8.2f} -> {e['after']['mean']:>8.2f}"
                f"   change {_interval(e['change'])}"
            )
    return "\n".join(lines)


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """A short text table: dataset, init, ERF size before -> after, TRF, scores."""
    lines = [f"{'job':<36} {'ERF size init -> trained':>26} {'TRF':>6}  scores"]
    for r in rows:
        change = f"{fixed_text(r['erf_size_init'])} -> {fixed_text(r['erf_size_trained'])}"
        trf = fixed_text(r["trf_size"])
        lines.append(f"{r['job']:<36} {change:>26} {trf:>6}  {final_scores(r)}")
    if rows and all("shift_growth" in r for r in rows):
        lines.append(format_stats(study_stats(rows)))
    return "\n".join(lines)


# --------------------------------------------------------------------------- figure

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
