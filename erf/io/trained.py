"""Figures and tables of training jobs (the ERF at initialisation and after training) from
their plain metrics and maps: one job's ``before_after.png``, ``training.png`` and
``erf_epochs.png``, and a sweep's summary over all jobs (``python -m erf.trainjob SWEEP_DIR``,
and the ``TrainedSummary`` Hydra callback):

- ``summary.csv``: one row per job (setting and seed), with the off-centre shift and the
  sizes about the map's own centre and about the probed unit, before and after
  (``erf.analysis.shift``);
- ``shift_growth.csv`` / ``shift_growth.json``: per setting and quantity, the per-seed values
  before, after and their change, with the mean and its 95 % Student-t interval over seeds;
- ``before_after.png`` (one row of panels per job) and ``shift_growth.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erf.analysis.shift import KEYS as SHIFT_GROWTH_KEYS
from erf.analysis.shift import PHASES, shift_growth, shift_growth_stats, vanished
from erf.io.figure_style import caption, caption_text, human
from erf.io.plots import (
    before_after_figure,
    erf_epochs_figure,
    save_figure,
    shift_growth_figure,
    training_curves_figure,
)
from erf.io.store import load_result, write_json, write_text
from erf.io.sweep import collect
from erf.io.tables import csv_text, fixed_text, write_paper_tables
from erf.result import ERFResult

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


def final_scores(metrics: dict[str, Any]) -> str:
    """The job's final validation scores in words."""
    parts = [f"val accuracy {metrics.get('val_accuracy', float('nan')):.3f}"]
    if metrics.get("val_mean_iou") is not None:
        parts.append(f"val mIoU {metrics['val_mean_iou']:.3f}")
    return ", ".join(parts)


def _panel(metrics: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult, label: str):
    init, trained = metrics["erf_init"], metrics["erf_trained"]
    return {
        "map_init": erf_init.map,
        "map_trained": erf_trained.map,
        "trf_interval": init.get("trf_interval"),
        "fit_init": init.get("fit"),
        "fit_trained": trained.get("fit"),
        "center": (init["center_row"], init["center_col"]),
        "label_init": f"at init: ERF size {fixed_text(metrics['erf_size_init'])}",
        "label_trained": f"trained: ERF size {fixed_text(metrics['erf_size_trained'])}",
        "title": f"{label}\n{final_scores(metrics)}; TRF {fixed_text(metrics['trf_size'])}",
    }


def _label(metrics: dict[str, Any]) -> str:
    data = metrics["dataset"].removeprefix("generated_")
    kind = f"GENERATED {data}" if metrics.get("dataset_generated") else data
    return f"{metrics['task']} ({kind}), init={metrics.get('init')}"


def _caption(metrics: dict[str, Any]) -> str:
    """Caption of a training job's figures: the probe's reduction, samples, model, layer."""
    erf = metrics.get("erf_init") or {}
    row = {
        "reduce": metrics.get("reduce", erf.get("reduce")),
        "n_samples": metrics.get("n_samples", erf.get("n_samples")),
        "target": metrics.get("target", erf.get("target")),
    }
    model = f"{metrics.get('task')} net, {metrics.get('blocks')} blocks, init {metrics.get('init')}"
    return caption_text([row], model=model)


def write_training_figures(
    out_dir: Path, metrics: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult, scale
) -> list[str]:
    """One job's ``before_after.png``, ``training.png`` (with a history) and
    ``erf_epochs.png`` (with ERFs after several epochs), in the formats of
    ``figure_style.current_output()``; returns the names of the files written."""
    label, text = _label(metrics), _caption(metrics)
    fig = before_after_figure(
        [_panel(metrics, erf_init, erf_trained, label)],
        scale=scale,
        suptitle=metrics["dataset_description"],
        caption_text=text,
    )
    written = save_figure(fig, out_dir / "before_after.png")
    if metrics["history"]:
        fig = training_curves_figure(metrics["history"], title=label, caption_text=text)
        written += save_figure(fig, out_dir / "training.png")
    if len(metrics["erf_per_epoch"]) > 1:
        rows = [dict(r) for r in metrics["erf_per_epoch"]]
        score = "val_mean_iou" if metrics["task"] == "segmentation" else "val_accuracy"
        for row, record in zip(rows[1:], metrics["history"]):
            row[score] = record.get(score)
        fig = erf_epochs_figure(
            rows, metric=score, title=f"ERF size and {human(score)} during training: {label}",
            caption_text=text,
        )  # fmt: skip
        written += save_figure(fig, out_dir / "erf_epochs.png")
    return [p.name for p in written]


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


def write_study_summary(sweep_dir: str | Path, scale: str = "linear") -> list[dict[str, Any]]:
    """``summary.csv`` (one row per job; key columns also as ``summary.md``, ``summary.tex``),
    ``shift_growth.csv`` / ``.json`` (per setting, over seeds), ``before_after.png`` (one row
    of panels per job) and ``shift_growth.png`` in ``sweep_dir``; returns the rows, each with
    its ``shift_growth`` (``format_summary``)."""
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    panels = []
    for r in rows:
        erf_init = load_result(r["_dir"] / "erf_init.npz")
        erf_trained = load_result(r["_dir"] / "erf_trained.npz")
        add_shift_growth(r, erf_init, erf_trained)
        panels.append(_panel(r, erf_init, erf_trained, _label(r)))
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
