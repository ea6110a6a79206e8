"""Figures and tables of training jobs (the ERF at initialisation and after training) from
their plain metrics and maps: one job's ``before_after.png``, ``training.png`` and
``erf_epochs.png``, and a sweep's ``summary.csv`` and ``before_after.png`` over all jobs
(``python -m erf.trainjob SWEEP_DIR``, and the ``TrainedSummary`` Hydra callback)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erf.io.plots import (
    before_after_figure,
    erf_epochs_figure,
    save_figure,
    training_curves_figure,
)
from erf.io.store import load_result, read_job_metrics, write_text
from erf.io.tables import csv_text, write_paper_tables
from erf.result import ERFResult

SUMMARY_COLUMNS = (
    "job",
    "task",
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
)


def final_scores(metrics: dict[str, Any]) -> str:
    """The job's final validation scores in words."""
    parts = [f"val accuracy {metrics.get('val_accuracy', float('nan')):.3f}"]
    if metrics.get("val_mean_iou") is not None:
        parts.append(f"val mIoU {metrics['val_mean_iou']:.3f}")
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _panel(metrics: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult, label: str):
    init, trained = metrics["erf_init"], metrics["erf_trained"]
    return {
        "map_init": erf_init.map,
        "map_trained": erf_trained.map,
        "trf_interval": init.get("trf_interval"),
        "fit_init": init.get("fit"),
        "fit_trained": trained.get("fit"),
        "center": (init["center_row"], init["center_col"]),
        "label_init": f"at init: ERF size {_fmt(metrics['erf_size_init'])}",
        "label_trained": f"trained: ERF size {_fmt(metrics['erf_size_trained'])}",
        "title": f"{label}\n{final_scores(metrics)}; TRF {_fmt(metrics['trf_size'])}",
    }


def _label(metrics: dict[str, Any]) -> str:
    data = metrics["dataset"].removeprefix("generated_")
    kind = f"GENERATED {data}" if metrics.get("dataset_generated") else data
    return f"{metrics['task']} ({kind}), init={metrics.get('init')}"


def write_training_figures(
    out_dir: Path, metrics: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult, scale
) -> None:
    """One job's ``before_after.png``, ``training.png`` (with a history) and
    ``erf_epochs.png`` (with ERFs after several epochs)."""
    fig = before_after_figure(
        [_panel(metrics, erf_init, erf_trained, _label(metrics))],
        scale=scale,
        suptitle=metrics["dataset_description"],
    )
    save_figure(fig, str(out_dir / "before_after.png"))
    if metrics["history"]:
        save_figure(training_curves_figure(metrics["history"]), str(out_dir / "training.png"))
    if len(metrics["erf_per_epoch"]) > 1:
        rows = [dict(r) for r in metrics["erf_per_epoch"]]
        score = "val_mean_iou" if metrics["task"] == "segmentation" else "val_accuracy"
        for row, record in zip(rows[1:], metrics["history"]):
            row[score] = record.get(score)
        save_figure(erf_epochs_figure(rows, metric=score), str(out_dir / "erf_epochs.png"))


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Metrics of every finished training job under ``sweep_dir``."""
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/metrics.json")):
        row = read_job_metrics(path)
        if "erf_size_init" in row:
            row["job"], row["_dir"] = path.parent.name, path.parent
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no finished training jobs (*/metrics.json) under {sweep_dir}")
    return rows


def write_study_summary(sweep_dir: str | Path, scale: str = "linear") -> list[dict[str, Any]]:
    """``summary.csv`` (one row per job; key columns also as ``summary.md``, ``summary.tex``)
    and ``before_after.png`` (one row of panels per
    job) in ``sweep_dir``; returns the rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    write_text(csv_text(rows, SUMMARY_COLUMNS, every_column=True), sweep_dir / "summary.csv")
    write_paper_tables(sweep_dir, rows, SUMMARY_COLUMNS)
    panels = [
        _panel(
            r,
            load_result(r["_dir"] / "erf_init.npz"),
            load_result(r["_dir"] / "erf_trained.npz"),
            _label(r),
        )
        for r in rows
    ]
    generated = sorted({r["dataset"] for r in rows if r.get("dataset_generated")})
    note = f"GENERATED data: {', '.join(generated)}" if generated else "real data"
    fig = before_after_figure(panels, scale=scale, suptitle=f"ERF before / after training ({note})")
    save_figure(fig, str(sweep_dir / "before_after.png"))
    return rows


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """A short text table: dataset, init, ERF size before -> after, TRF, scores."""
    lines = [f"{'job':<28} {'ERF size init -> trained':>26} {'TRF':>6}  scores"]
    for r in rows:
        change = f"{_fmt(r['erf_size_init'])} -> {_fmt(r['erf_size_trained'])}"
        lines.append(f"{r['job']:<28} {change:>26} {_fmt(r['trf_size']):>6}  {final_scores(r)}")
    return "\n".join(lines)
