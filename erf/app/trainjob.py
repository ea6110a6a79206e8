"""Training jobs: the ERF of a network at initialisation and after training.

The file-writing glue between the config, ``erf.training.data``, ``erf.training.loop`` and
the probe, as ``erf.app.run`` is for probe jobs: ``erf.app.run.run_job`` hands every job
with ``data`` and ``train`` set to ``run_training``. One job writes, into its directory:

- ``erf_init.npz``: the ERF of the model at initialisation (before any training step);
- ``train_checkpoint.pt``: the training state after every epoch (and on Ctrl-C / SIGTERM,
  mid-epoch); ``resume=true`` continues from it; removed when the job is complete;
- ``erf_epoch_NNN.npz``: with ``train.erf_every_epoch``, the ERF after epoch NNN;
- ``erf_trained.npz``: the ERF after training; ``model.pt``: the trained state dict
  (``model.checkpoint=<path>`` loads it into the same model config);
- ``before_after.png`` (shared colour scale), ``training.png`` (loss / accuracy / mIoU per
  epoch), ``erf_epochs.png`` (with ``train.erf_every_epoch``);
- ``metrics.json`` last (the completion marker): the dataset used (stated plainly), ERF
  size / diameter / ERF:TRF before and after, the train/val history, wall times,
  provenance and the resolved config.

A sweep's summary (``summary.csv``, ``before_after.png`` over all jobs) is written by the
``TrainedSummary`` Hydra callback, or later by ``python -m erf.trainjob SWEEP_DIR``.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.analysis.summary import erf_metrics
from erf.io.plots import (
    before_after_figure,
    erf_epochs_figure,
    save_figure,
    training_curves_figure,
)
from erf.io.store import _atomic_write, load_result, read_json, save_result, write_json
from erf.probe.measure import probe_units
from erf.result import ERFResult
from erf.rf import TheoreticalRF, theoretical_rf
from erf.training.data import DataBundle, build_data
from erf.training.loop import TrainingInterrupted, TrainSettings, fit

log = logging.getLogger("erf")

CHECKPOINT = "train_checkpoint.pt"
SIZE_KEYS = ("erf_size", "erf_diameter", "erf_trf_ratio", "sigma_x", "sigma_y", "mass_radius_95")


def training_settings(cfg: DictConfig) -> TrainSettings:
    """``TrainSettings`` from the ``train`` config, the global ``seed`` and ``device``."""
    t = cfg.train
    return TrainSettings(
        epochs=t.epochs,
        batch_size=t.batch_size,
        eval_batch_size=t.eval_batch_size,
        optimizer=t.optimizer,
        lr=float(t.lr),
        momentum=float(t.momentum),
        weight_decay=float(t.weight_decay),
        schedule=t.schedule,
        milestones=tuple(t.milestones),
        gamma=float(t.gamma),
        warmup_epochs=float(t.warmup_epochs),
        seed=cfg.seed,
        num_workers=t.num_workers,
        device=cfg.device,
    )


def build_data_from(cfg: DictConfig) -> DataBundle:
    """The ``data`` config as a ``DataBundle`` (FileNotFoundError for missing real data)."""
    options = OmegaConf.to_container(cfg.data, resolve=True)
    return build_data(options.pop("name"), **options)


def build_trained_model(cfg: DictConfig, data: DataBundle) -> nn.Module:
    """The model config with ``classes`` (when null) and the channels taken from the data;
    a mismatch with the data is a one-line ValueError."""
    from erf.app.run import build_model

    spec = OmegaConf.to_container(cfg.model, resolve=True)
    if "classes" in spec:
        if spec["classes"] is None:
            spec["classes"] = data.num_classes
        elif spec["classes"] != data.num_classes:
            raise ValueError(
                f"model.classes={spec['classes']} but {data.name} has {data.num_classes} "
                "classes; set model.classes=null to take it from the data"
            )
    if spec.get("in_channels") not in (None, data.in_channels):
        raise ValueError(
            f"model.in_channels={spec['in_channels']} but {data.name} images have "
            f"{data.in_channels} channels"
        )
    return build_model(OmegaConf.create(spec))


def probe_shape(cfg: DictConfig, data: DataBundle) -> tuple[int, int, int]:
    """(C, H, W) of the probe inputs: ``inputs.size`` or the data's image size."""
    channels = cfg.inputs.channels
    if channels is not None and channels != data.in_channels:
        raise ValueError(f"inputs.channels={channels} but the data has {data.in_channels}")
    size = tuple(int(v) for v in cfg.inputs.size) if cfg.inputs.size else data.image_size
    if cfg.inputs.source == "dataset" and tuple(size) != tuple(data.image_size):
        raise ValueError(
            f"inputs.source=dataset probes on the {data.image_size[0]}x{data.image_size[1]} "
            f"val images; inputs.size={list(size)} differs (set inputs.size=null)"
        )
    return data.in_channels, int(size[0]), int(size[1])


def probe_inputs(cfg: DictConfig, data: DataBundle, shape: tuple[int, int, int]) -> str | Iterable:
    """Random inputs (``inputs=gaussian|uniform``), an ImageFolder, or (``inputs=dataset``)
    the data's val images in order."""
    if cfg.inputs.source == "dataset":
        from torch.utils.data import DataLoader

        return DataLoader(data.val, batch_size=cfg.probe.batch_size, shuffle=False)
    from erf.app.run import build_inputs

    return build_inputs(cfg, shape)


def erf_summary(result: ERFResult, trf: TheoreticalRF, r2_min: float) -> dict[str, Any]:
    """``erf.analysis.summary.erf_metrics`` plus ``erf_diameter``: the diameter of the disk with the
    area of Luo's above-threshold region, ``2 · erf_size / √π``."""
    metrics = erf_metrics(result, trf, r2_min=r2_min)
    size = metrics.get("erf_size")
    metrics["erf_diameter"] = 2 * size / math.sqrt(math.pi) if size is not None else None
    return metrics


class _Prober:
    """Measures (or, on resume, reloads) the ERF of the job's target with the probe config."""

    def __init__(self, cfg: DictConfig, model: nn.Module, data: DataBundle) -> None:
        from erf.app.run import probe_options, resolve_target

        self.cfg, self.model = cfg, model
        self.shape = probe_shape(cfg, data)
        self.target = resolve_target(
            cfg.probe.target or getattr(model, "ERF_TARGET", None), model, self.shape
        )
        self.trf = theoretical_rf(model, input_shape=self.shape, target=self.target)
        self.options = probe_options(cfg, probe_inputs(cfg, data, self.shape))
        # Training jobs re-measure an interrupted probe on resume: they keep no probe checkpoint.
        self.options.refuse(("checkpoint_every",), "a training job", prefix="probe.")
        self.seconds = 0.0

    def measure(self, path: Path, reuse: bool) -> ERFResult:
        """The ERF now, saved to ``path``; with ``reuse`` an existing file is loaded instead
        (it must have been made with the same probe settings)."""
        p = self.cfg.probe
        if reuse and path.exists():
            result = load_result(path)
            made = (list(result.input_shape), result.target, result.reduce)
            if made != (list(self.shape), self.target, p.reduce):
                raise ValueError(
                    f"{path} was measured with other probe settings {made}; delete it or "
                    "use a new output folder"
                )
            return result
        position = p.position if isinstance(p.position, str) else tuple(p.position)
        (result,) = probe_units(self.model, self.shape, [(self.target, position)], self.options)
        self.seconds += result.meta["wall_time_s"]
        save_result(result, path)
        return result


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"training checkpoint {path} is unreadable ({type(exc).__name__}); delete it to "
            "start over"
        ) from None


def _save_state(state: dict[str, Any], path: Path) -> None:
    _atomic_write(path, lambda f: torch.save(state, f))


def run_training(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """One training job (module docstring). Returns its metrics."""
    from erf.app.run import _completed, model_settings, provenance

    finished = _completed(cfg, out_dir)
    if finished is not None:
        return finished
    start = time.perf_counter()
    if cfg.train.threads:
        torch.set_num_threads(int(cfg.train.threads))
    data = build_data_from(cfg)
    log.info("data: %s", data.description)
    model = build_trained_model(cfg, data)
    prober = _Prober(cfg, model, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT
    resume = _load_state(checkpoint) if cfg.resume and checkpoint.exists() else None
    erf_init = prober.measure(out_dir / "erf_init.npz", reuse=bool(cfg.resume))
    r2_min = cfg.fit.r2_min
    init_metrics = erf_summary(erf_init, prober.trf, r2_min)
    log.info("ERF at init: size %.2f px (TRF %s)", init_metrics["erf_size"], prober.trf.size)

    def on_epoch_end(record: dict[str, Any]) -> dict[str, Any] | None:
        if not cfg.train.erf_every_epoch:
            return None
        result = prober.measure(out_dir / f"erf_epoch_{record['epoch']:03d}.npz", reuse=False)
        m = erf_summary(result, prober.trf, r2_min)
        return {k: m.get(k) for k in ("erf_size", "erf_diameter", "erf_trf_ratio")}

    if resume is not None:
        log.info("resuming training from %s (%d epochs done)", checkpoint, resume["epoch"])
    try:
        final = fit(
            model,
            data.train,
            data.val,
            task=data.task,
            num_classes=data.num_classes,
            ignore_index=data.ignore_index,
            augment=data.augment,
            settings=training_settings(cfg),
            resume=resume,
            on_epoch_end=on_epoch_end,
            on_checkpoint=lambda state: _save_state(state, checkpoint),
            should_stop=should_stop,
        )
    except TrainingInterrupted as stop:
        _exit_interrupted(stop, out_dir)
    erf_trained = prober.measure(out_dir / "erf_trained.npz", reuse=False)
    trained_metrics = erf_summary(erf_trained, prober.trf, r2_min)
    _save_state({k: v for k, v in final["model"].items()}, out_dir / "model.pt")

    history = final["history"]
    metrics = _job_metrics(cfg, data, prober, init_metrics, trained_metrics, history)
    metrics.update(model_settings(cfg))
    metrics["classes"] = data.num_classes
    metrics["wall_time_s"] = time.perf_counter() - start
    metrics["train_time_s"] = sum(r.get("time_s", 0.0) for r in history)
    metrics["probe_time_s"] = prober.seconds
    metrics["provenance"] = provenance(str(erf_trained.meta.get("device", cfg.device)),
                                       cfg.probe.dtype)  # fmt: skip
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    _write_figures(out_dir, metrics, erf_init, erf_trained, cfg.plot.scale)
    write_json(metrics, out_dir / "metrics.json")
    checkpoint.unlink(missing_ok=True)
    log.info(
        "%s | ERF size %.2f -> %.2f px (TRF %.0f); %s",
        data.description,
        metrics["erf_size_init"],
        metrics["erf_size_trained"],
        metrics["trf_size"],
        _final_scores(metrics),
    )
    return metrics


def _exit_interrupted(stop: TrainingInterrupted, out_dir: Path) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    where, folder = "hydra.run.dir", out_dir
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            where, folder = "hydra.sweep.dir", hydra_cfg.sweep.dir
    print(
        f"{stop}; checkpoint saved in {out_dir / CHECKPOINT}. Continue with the same command "
        f"plus: resume=true {where}={folder}",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(130)


def _job_metrics(
    cfg: DictConfig,
    data: DataBundle,
    prober: _Prober,
    init: dict[str, Any],
    trained: dict[str, Any],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """The study's numbers: dataset, TRF, ERF before/after (flat keys for tables, and the
    full metric dicts), final scores and the history."""
    metrics: dict[str, Any] = {
        "dataset": data.name,
        "dataset_generated": data.generated,
        "dataset_description": data.description,
        "data": data.summary(),
        "task": data.task,
        "target": prober.target,
        "inputs": cfg.inputs.source,
        "input_h": prober.shape[1],
        "input_w": prober.shape[2],
        "n_samples": init["n_samples"],
        "reduce": init["reduce"],
    }
    for key in ("trf_size", "trf_rows", "trf_cols", "trf_stride", "trf_clipped"):
        metrics[key] = init.get(key)
    for key in SIZE_KEYS:
        metrics[f"{key}_init"] = init.get(key)
        metrics[f"{key}_trained"] = trained.get(key)
    a, b = init.get("erf_size"), trained.get("erf_size")
    metrics["erf_size_change"] = b / a if a and b is not None else None
    final = history[-1] if history else {}
    metrics["epochs"] = len(history)
    for key in ("val_loss", "val_accuracy", "val_mean_iou", "train_loss", "train_accuracy"):
        if key in final:
            metrics[key] = final[key]
    warnings = []
    if data.generated:
        warnings.append(f"dataset: {data.description}")
    for when, m in (("init", init), ("trained", trained)):
        if m.get("degenerate"):
            warnings.append(f"ERF {when}: degenerate map ({m['degenerate']})")
        elif m.get("fit_problem"):
            warnings.append(f"ERF {when}: {m['fit_problem']}")
        if m.get("n_nonfinite"):
            warnings.append(f"ERF {when}: {m['n_nonfinite']} NaN/Inf sample(s) skipped")
    if init.get("trf_clipped"):
        warnings.append(
            f"the TRF ({metrics['trf_rows']}x{metrics['trf_cols']}) is larger than the "
            f"{prober.shape[1]}x{prober.shape[2]} probe input: the ERF can be clipped"
        )
    for w in warnings:
        log.warning(w)
    metrics["warnings"] = warnings
    metrics["erf_init"] = init
    metrics["erf_trained"] = trained
    metrics["history"] = history
    metrics["erf_per_epoch"] = [
        {"epoch": 0, **{k: init.get(k) for k in ("erf_size", "erf_diameter", "erf_trf_ratio")}}
    ] + [
        {"epoch": r["epoch"], **{k: r.get(k) for k in ("erf_size", "erf_diameter")}}
        for r in history
        if "erf_size" in r
    ]
    return metrics


def _final_scores(metrics: dict[str, Any]) -> str:
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
        "label_init": f"at init: ERF size {_fmt(metrics['erf_size_init'])}",
        "label_trained": f"trained: ERF size {_fmt(metrics['erf_size_trained'])}",
        "title": f"{label}\n{_final_scores(metrics)}; TRF {_fmt(metrics['trf_size'])}",
    }


def _label(metrics: dict[str, Any]) -> str:
    data = metrics["dataset"].removeprefix("generated_")
    kind = f"GENERATED {data}" if metrics.get("dataset_generated") else data
    return f"{metrics['task']} ({kind}), init={metrics.get('init')}"


def _write_figures(
    out_dir: Path, metrics: dict[str, Any], erf_init: ERFResult, erf_trained: ERFResult, scale
) -> None:
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


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.1f}"


# --------------------------------------------------------------------------- sweep summary

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


def collect_jobs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Metrics of every finished training job under ``sweep_dir``."""
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/metrics.json")):
        row = read_json(path)
        if "erf_size_init" in row:
            row["job"], row["_dir"] = path.parent.name, path.parent
            rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no finished training jobs (*/metrics.json) under {sweep_dir}")
    return rows


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {c: f"{r[c]:.6g}" if isinstance(r.get(c), float) else r.get(c) for c in SUMMARY_COLUMNS}
        )
    return buf.getvalue()


def write_study_summary(sweep_dir: str | Path, scale: str = "linear") -> list[dict[str, Any]]:
    """``summary.csv`` (one row per job) and ``before_after.png`` (one row of panels per
    job) in ``sweep_dir``; returns the rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect_jobs(sweep_dir)
    text = _csv(rows)
    _atomic_write(sweep_dir / "summary.csv", lambda f: f.write(text.encode()))
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
        lines.append(f"{r['job']:<28} {change:>26} {_fmt(r['trf_size']):>6}  {_final_scores(r)}")
    return "\n".join(lines)


class TrainedSummary(Callback):
    """Hydra callback: summarise a trained-vs-untrained sweep when it ends."""

    def __init__(self, scale: str = "linear") -> None:
        self.scale = scale

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = write_study_summary(sweep_dir, self.scale)
        print(format_summary(rows), flush=True)
        print(f"results: {sweep_dir}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m erf.trainjob",
        description="Rebuild summary.csv and before_after.png of a trained_vs_untrained sweep.",
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--scale", choices=["linear", "log"], default="linear")
    args = parser.parse_args(argv)
    try:
        rows = write_study_summary(args.sweep_dir, args.scale)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(rows))
    print(f"results: {args.sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
