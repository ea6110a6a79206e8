"""A training job's own figures (the ERF at initialisation and after training) from its plain
metrics and maps: ``before_after.png``, ``training.png`` and ``erf_epochs.png``
(``write_training_figures``, called by ``erf.app.jobs.training``). A sweep of training jobs is
summarised by the trained-vs-untrained study (``erf.studies.trained_vs_untrained``), which
draws its panels with ``before_after_panel`` and ``training_label``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from erf.io.figure_style import caption_text, human
from erf.io.plots import (
    before_after_figure,
    erf_epochs_figure,
    save_figure,
    training_curves_figure,
)
from erf.io.tables import fixed_text
from erf.result import ERFResult


def final_scores(metrics: dict[str, Any]) -> str:
    """The job's final validation scores in words."""
    parts = [f"val accuracy {metrics.get('val_accuracy', float('nan')):.3f}"]
    if metrics.get("val_mean_iou") is not None:
        parts.append(f"val mIoU {metrics['val_mean_iou']:.3f}")
    return ", ".join(parts)


def before_after_panel(
    metrics: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult, label: str
) -> dict[str, Any]:
    """One job's row of ``before_after_figure``: both maps, TRF box, fits, unit and titles."""
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


def training_label(metrics: dict[str, Any]) -> str:
    """A training job in words: task, dataset (GENERATED when it is) and init."""
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
    label, text = training_label(metrics), _caption(metrics)
    fig = before_after_figure(
        [before_after_panel(metrics, erf_init, erf_trained, label)],
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
