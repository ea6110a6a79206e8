"""Training jobs: the ERF of a network at initialisation and after training.

The glue between the config, ``erf.training.data``, ``erf.training.loop`` and the probe:
``erf.app.jobs.run_job`` hands every job with ``data`` and ``train`` set to
``run_training``. One job writes, into its directory:

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

Every ERF of the job (init, each epoch, trained) is measured through ``erf.monitor.ERFMonitor``,
the one way erf measures an ERF during training. A job's figures are ``erf.io.trained``'s. A
sweep's summary (``summary.csv``, ``before_after.png`` over all jobs) is the
trained_vs_untrained study
(``erf.studies.trained_vs_untrained``), written by the ``SweepSummary`` Hydra callback with
``study: trained_vs_untrained``, or later by ``erf report SWEEP_DIR --study
trained_vs_untrained`` (alias ``erf train-summary SWEEP_DIR``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.analysis.summary import erf_metrics
from erf.app.build import (
    build_data_from,
    build_trained_model,
    model_settings,
    probe_inputs,
    probe_options,
    probe_position,
    probe_shape,
    refuse_probe,
    resolve_target,
    training_settings,
)
from erf.app.errors import JobInterrupted
from erf.app.job_kinds import job_kind
from erf.app.provenance import provenance
from erf.app.resume import completed_metrics, fingerprint, load_training_state, settings
from erf.device import resolve_device
from erf.io.figure_style import FORMATS
from erf.io.store import atomic_write, file_record, load_result, save_result, write_json
from erf.io.trained import final_scores, write_training_figures
from erf.monitor import ERFMonitor
from erf.result import ERFResult
from erf.training.data import DataBundle
from erf.training.loop import TrainingInterrupted, fit

log = logging.getLogger("erf")

CHECKPOINT = "train_checkpoint.pt"
SIZE_KEYS = ("erf_size", "erf_diameter", "erf_trf_ratio", "sigma_x", "sigma_y", "mass_radius_95")


def with_diameter(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` (``erf.analysis.summary.erf_metrics``) plus ``erf_diameter``: the diameter of
    the disk with the area of Luo's above-threshold region, ``2 · erf_size / √π``."""
    size = metrics.get("erf_size")
    metrics["erf_diameter"] = 2 * size / math.sqrt(math.pi) if size is not None else None
    return metrics


class _Prober:
    """Measures the ERF of the job's target through the ERF monitor (``erf.monitor``, the one
    way erf measures an ERF during training), or on resume reloads an earlier map."""

    def __init__(self, cfg: DictConfig, model: nn.Module, data: DataBundle) -> None:
        self.cfg, self.model = cfg, model
        self.shape = probe_shape(cfg, data)
        self.target = resolve_target(
            cfg.probe.target or getattr(model, "ERF_TARGET", None), model, self.shape
        )
        self.options = probe_options(cfg, probe_inputs(cfg, data, self.shape))
        # Training jobs re-measure an interrupted probe on resume: they keep no probe checkpoint.
        self.options.refuse(("checkpoint_every",), "a training job", prefix="probe.")
        refuse_probe(cfg, ("draws",), "a training job (it trains one network)")
        self.monitor = ERFMonitor(
            self.target, every=1, options=self.options, input_shape=self.shape,
            position=probe_position(cfg), r2_min=cfg.fit.r2_min,
        )  # fmt: skip
        self.trf = self.monitor.trf(model)
        self.seconds = 0.0

    def metrics(self, result: ERFResult) -> dict[str, Any]:
        """``erf_metrics`` of a reloaded map about the TRF, with ``erf_diameter``."""
        return with_diameter(erf_metrics(result, self.trf, r2_min=self.cfg.fit.r2_min))

    def measure(self, path: Path, epoch: int | None, reuse: bool) -> tuple[ERFResult, dict]:
        """The ERF now and its metrics (``with_diameter``), the map saved to ``path``:
        ``monitor.step`` at ``epoch``, or with None a measurement outside the epochs (the
        trained network). With ``reuse`` an existing file is loaded instead (it must have
        been made with the same probe settings)."""
        p = self.cfg.probe
        if reuse and path.exists():
            result = load_result(path)
            made = (list(result.input_shape), result.target, result.reduce)
            if made != (list(self.shape), self.target, p.reduce):
                raise ValueError(
                    f"{path} was measured with other probe settings {made}; delete it or "
                    "use a new output folder"
                )
            return result, self.metrics(result)
        found = (
            self.monitor.measure(self.model) if epoch is None
            else self.monitor.step(self.model, epoch)
        )  # fmt: skip
        result = found.result
        self.seconds += result.meta["wall_time_s"]
        recorded = {**result.meta, "settings": settings(self.cfg)}  # checked on resume
        save_result(replace(result, meta=recorded), path)
        return result, with_diameter(dict(found.metrics))


def _save_state(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def _result_files(out_dir: Path) -> list[str]:
    """The files of a finished training job that ``metrics.json`` checksums."""
    names = ["erf_init.npz", "erf_trained.npz", "model.pt"]
    names += [f"{stem}.{fmt}" for stem in ("before_after", "training", "erf_epochs")
              for fmt in FORMATS if (out_dir / f"{stem}.{fmt}").exists()]  # fmt: skip
    return names + sorted(p.name for p in out_dir.glob("erf_epoch_*.npz"))


@job_kind(
    "training",
    help="ERF at init, train, ERF after (data and train groups; setting=... sets them)",
    owns=("train",),
)
def run_training(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """One training job (module docstring). Returns its metrics."""
    finished = completed_metrics(cfg, out_dir)
    if finished is not None:
        return finished
    start = time.perf_counter()
    if cfg.train.threads:
        torch.set_num_threads(int(cfg.train.threads))
    data = build_data_from(cfg)
    log.info("data: %s", data.description)
    model = build_trained_model(cfg, data)
    model.to(resolve_device(cfg.device))  # measured where it trains (fit moves it there too)
    prober = _Prober(cfg, model, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT
    resume = load_training_state(checkpoint) if cfg.resume and checkpoint.exists() else None
    erf_init, init_metrics = prober.measure(out_dir / "erf_init.npz", 0, reuse=bool(cfg.resume))
    log.info("ERF at init: size %.2f px (TRF %s)", init_metrics["erf_size"], prober.trf.size)

    def on_epoch_end(record: dict[str, Any]) -> dict[str, Any] | None:
        if not cfg.train.erf_every_epoch:
            return None
        epoch = record["epoch"]
        _, m = prober.measure(out_dir / f"erf_epoch_{epoch:03d}.npz", epoch, reuse=False)
        return {k: m.get(k) for k in ("erf_size", "erf_diameter", "erf_trf_ratio")}

    recorded = settings(cfg)  # checked on resume (erf.app.resume.check_resume)
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
            on_checkpoint=lambda state: _save_state({**state, "settings": recorded}, checkpoint),
            should_stop=should_stop,
        )
    except TrainingInterrupted as stop:
        raise JobInterrupted(f"{stop}; checkpoint saved in {out_dir / CHECKPOINT}") from None
    erf_trained, trained_metrics = prober.measure(out_dir / "erf_trained.npz", None, reuse=False)
    _save_state({k: v for k, v in final["model"].items()}, out_dir / "model.pt")

    history = final["history"]
    metrics = _job_metrics(cfg, data, prober, init_metrics, trained_metrics, history)
    metrics.update(model_settings(cfg))
    metrics["classes"] = data.num_classes
    metrics["model_seed"] = cfg.seed  # the torch seed the initial weights were drawn with
    metrics["wall_time_s"] = time.perf_counter() - start
    metrics["train_time_s"] = sum(r.get("time_s", 0.0) for r in history)
    metrics["probe_time_s"] = prober.seconds
    metrics["provenance"] = provenance(str(erf_trained.meta.get("device", cfg.device)),
                                       cfg.probe.dtype)  # fmt: skip
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    metrics["settings_fingerprint"] = fingerprint(recorded)
    write_training_figures(out_dir, metrics, erf_init, erf_trained, cfg.plot.scale)
    metrics["files"] = file_record(out_dir, _result_files(out_dir))
    write_json(metrics, out_dir / "metrics.json")
    checkpoint.unlink(missing_ok=True)
    log.info(
        "%s | ERF size %.2f -> %.2f px (TRF %.0f); %s",
        data.description,
        metrics["erf_size_init"],
        metrics["erf_size_trained"],
        metrics["trf_size"],
        final_scores(metrics),
    )
    return metrics


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
    for key in (
        "trf_size", "trf_rows", "trf_cols", "trf_stride", "trf_clipped", "trf_source",
        "trf_bound", "trf_global_from",
    ):  # fmt: skip
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
    if prober.trf.source == "measured_support":
        warnings.append(prober.trf.notes[0])
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
