"""The jobs of ``python -m erf.run``, one module each, and ``run_job``, which picks one.

``job_kind`` names the kind of a composed config: a suite of experiments
(``erf.app.suite``), a training job (``training``), the probe benchmark (``benchmark``), the
interval calibration (``calibration``), a layer profile or one measurement (``measure``), or
many weight draws (``draws``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erf.app.build import input_shape_for, refuse_probe, resolve_target, seeded_model
from erf.app.jobs.benchmark import run_benchmark
from erf.app.jobs.calibration import run_calibration
from erf.app.jobs.draws import run_draws
from erf.app.jobs.measure import run_measure, run_profile
from erf.app.jobs.training import run_training
from erf.app.protocol import apply_protocol
from erf.app.resume import completed_metrics, job_folder, with_model_files
from erf.app.suite import run_suite
from erf.app.validate import validate
from erf.probe import distributed

JOB_KINDS = ("suite", "training", "benchmark", "calibration", "profile", "draws", "measure")


def job_kind(cfg: DictConfig) -> str:
    """Which job ``cfg`` asks for, one of ``JOB_KINDS``: ``suite`` set, ``train`` set,
    ``benchmark.run``, ``calibration.run``, ``profile.layers`` set, ``probe.draws`` > 1, else
    one measurement."""
    if cfg.get("suite"):
        return "suite"
    if cfg.get("train") is not None:
        return "training"
    if cfg.get("benchmark") and cfg.benchmark.get("run"):
        return "benchmark"
    if cfg.get("calibration") and cfg.calibration.get("run"):
        return "calibration"
    if cfg.get("profile") and cfg.profile.get("layers"):
        return "profile"
    if cfg.probe.get("draws", 1) > 1:
        return "draws"
    return "measure"


def run_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Validate ``cfg``, run the job ``job_kind`` names into ``out_dir`` and return its
    metrics (or record). ``should_stop`` is polled between batches (``erf.app.signals``).
    ``out_dir`` is locked while the job runs, and what resuming would mix is refused first
    (``erf.app.resume.job_folder``)."""
    cfg = apply_protocol(cfg)  # probe.protocol=luo: R fresh draws x one input (erf.app.protocol)
    validate(cfg)
    kind = job_kind(cfg)
    if kind == "suite":
        return run_suite(cfg, out_dir)
    cfg = with_model_files(cfg)  # what a resume must match beyond the settings
    with job_folder(cfg, out_dir):
        return _run_kind(cfg, kind, out_dir, should_stop)


def _run_kind(
    cfg: DictConfig, kind: str, out_dir: Path, should_stop: Callable[[], bool] | None
) -> dict[str, Any]:
    if kind == "training":  # the ERF at init and after training
        return run_training(cfg, out_dir, should_stop)
    if kind != "draws":
        refuse_probe(cfg, ("draw_weight",), "probe.draws=1 (one network: no draws to pool)")
    model = seeded_model(cfg.model, cfg.seed)  # the same weights on every run of a seed
    input_shape = input_shape_for(cfg, model)
    if kind == "benchmark":
        return run_benchmark(cfg, model, input_shape, out_dir)
    if kind == "profile":
        return run_profile(cfg, model, input_shape, out_dir, should_stop)
    if kind == "calibration":
        target = resolve_target(cfg.probe.target, model, input_shape)
        return run_calibration(cfg, model, input_shape, target, out_dir)
    finished = completed_metrics(cfg, out_dir)
    if finished is not None:
        return finished
    target = resolve_target(cfg.probe.target, model, input_shape)
    if kind == "draws":
        if distributed.active():
            raise ValueError("probe.draws > 1 does not run under torchrun; use one process")
        return run_draws(cfg, model, input_shape, target, out_dir, should_stop)
    return run_measure(cfg, model, input_shape, target, out_dir, should_stop)
