"""Measure jobs: one measurement (ERF and TRF of one unit), or a layer profile (several
layers of one model from one forward pass per batch), each into its job folder.

A job writes ``erf.npz``, ``heatmap.png`` and ``metrics.json`` (``erf.io.job.write_job``);
partial sums go to ``checkpoint.npz`` every ``probe.checkpoint_every`` batches and on a stop
request, and ``resume=true`` continues them (``erf.app.resume``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.analysis.summary import erf_metrics
from erf.app.build import (
    build_inputs,
    input_shape_for,
    inputs_record,
    layer_names,
    model_settings,
    probe_options,
    probe_position,
    refuse_probe,
    seeded_model,
)
from erf.app.job_kinds import job_kind
from erf.app.protocol import protocol_of
from erf.app.provenance import provenance
from erf.app.resume import completed_metrics, fingerprint, load_checkpoint, settings
from erf.app.rules import ConfigError
from erf.io.job import write_job
from erf.io.store import save_result
from erf.io.sweep import write_profile
from erf.probe import distributed
from erf.probe.measure import probe_units
from erf.probe.support import trf_or_support
from erf.result import ERFResult
from erf.rf.theory import TheoreticalRF

log = logging.getLogger("erf")


def probe_one(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    target: str | None,
    job_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[ERFResult, TheoreticalRF]:
    """Measure the ERF of ``target`` and compute its TRF.

    Partial sums go to ``job_dir/checkpoint.npz`` every ``probe.checkpoint_every`` batches
    and on a stop request; with ``resume=true`` an existing checkpoint is continued.
    """
    ((result, trf),) = probe_many(cfg, model, input_shape, [target], [job_dir], should_stop)
    return result, trf


def _probe_sharded(cfg, model, input_shape, targets, trfs, options, should_stop):
    """torchrun: the samples sharded over the ranks, no checkpoints."""
    options.refuse(("batch_size",), "torchrun (give a number)", prefix="probe.")
    options.refuse(("checkpoint_every",), "torchrun (it keeps no checkpoints)", prefix="probe.")
    position = probe_position(cfg)
    return [
        (
            distributed.measure_erf_sharded(
                model,
                input_shape,
                target=t,
                position=position,
                options=options,
                should_stop=should_stop,
            ),
            trf,
        )
        for t, trf in zip(targets, trfs)
    ]


def _resumes(cfg: DictConfig, job_dirs: list[Path]) -> list[ERFResult | None]:
    """Each job folder's checkpoint with ``resume=true`` (None where there is none)."""
    resumes = []
    for job_dir in job_dirs:
        checkpoint = job_dir / "checkpoint.npz"
        resume = load_checkpoint(checkpoint) if cfg.resume and checkpoint.exists() else None
        if resume is not None:
            log.info("resuming from %s (%d samples done)", checkpoint, resume.meta["samples_seen"])
        resumes.append(resume)
        job_dir.mkdir(parents=True, exist_ok=True)
    return resumes


def probe_many(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    targets: list[str | None],
    job_dirs: list[Path],
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[ERFResult, TheoreticalRF]]:
    """ERF and TRF of several targets of one model from one forward pass per batch
    (``erf.measure_erfs``), each with its own ``checkpoint.npz`` in its job folder.

    With ``resume=true``, targets whose checkpoints stopped at the same sample continue
    together; targets at different samples (say, a profile interrupted while it still ran
    one layer at a time) run as separate groups, fresh targets as one more group.
    """
    position = probe_position(cfg)
    options = probe_options(cfg, build_inputs(cfg, input_shape, model))
    trfs = [
        trf_or_support(model, input_shape, t, position, cfg.seed, options=options) for t in targets
    ]
    if distributed.active():
        return _probe_sharded(cfg, model, input_shape, targets, trfs, options, should_stop)
    resumes = _resumes(cfg, job_dirs)
    groups: dict[int, list[int]] = {}
    for i, resume in enumerate(resumes):
        groups.setdefault(-1 if resume is None else resume.meta["samples_seen"], []).append(i)
    if len(targets) > 1:
        log.info("probing %s from one forward pass per batch", ", ".join(map(str, targets)))
    if len(groups) > 1:
        log.info(
            "resumed layers stopped at different samples: %d probes, one per group", len(groups)
        )
    results: dict[int, ERFResult] = {}
    recorded = settings(cfg)  # checked on resume (erf.app.resume.check_resume)
    for members in groups.values():
        dirs = [job_dirs[i] for i in members]

        def save(partials: list[ERFResult], dirs: list[Path] = dirs) -> None:
            for partial, job_dir in zip(partials, dirs):
                save_result(with_settings(partial, recorded), job_dir / "checkpoint.npz")

        found = probe_units(
            model,
            input_shape,
            [(targets[i], position) for i in members],
            options,
            resume=None if resumes[members[0]] is None else [resumes[i] for i in members],
            on_checkpoint=save,
            should_stop=should_stop,
        )
        results.update(zip(members, found))
    return [(results[i], trfs[i]) for i in range(len(targets))]


def with_settings(partial: ERFResult, recorded: dict[str, Any]) -> ERFResult:
    """``partial`` with the job's settings (``erf.app.resume.settings``) in its meta, as a
    checkpoint records them."""
    return replace(partial, meta={**partial.meta, "settings": recorded})


def input_transform_note(model: nn.Module | None, input_shape) -> str | None:
    """A warning when the model resizes its input itself (a torchvision detector's
    ``GeneralizedRCNNTransform`` at ``model.transform``): the probe's gradient flows back
    through the resize, so the ERF is in the original input's pixels. None otherwise."""
    transform = getattr(model, "transform", None)
    if type(transform).__name__ != "GeneralizedRCNNTransform":
        return None
    import torch

    c, h, w = (int(v) for v in input_shape)
    was_training = transform.training
    try:
        with torch.no_grad():
            images, _ = transform.eval()([torch.zeros(c, h, w)])
    finally:
        transform.train(was_training)
    rh, rw = images.image_sizes[0]
    ph, pw = images.tensors.shape[-2:]
    return (
        f"the model's own transform resizes the input to {rh}x{rw} (padded to {ph}x{pw}) and "
        f"normalises it: the ERF is mapped back through it, in the original {h}x{w} pixels"
    )


def _warnings(metrics: dict[str, Any], result: ERFResult, trf: TheoreticalRF) -> list[str]:
    warnings = []
    if trf.source == "measured_support":
        warnings.append(trf.notes[0])
    if trf.is_global:
        where = f"from {trf.global_from}" if trf.global_from else "adaptive pooling / linear"
        warnings.append(f"the target's TRF is global ({where}): ERF/TRF is vs the input")
    if metrics.get("trf_clipped") and result.ndim != 2:
        shape, trf_shape = ("x".join(map(str, v)) for v in (result.shape, trf.size))
        warnings.append(
            f"input {shape} is smaller than the TRF {trf_shape} around the probed unit: "
            "the ERF is clipped"
        )
    elif metrics.get("trf_clipped"):
        h, w = result.shape
        warnings.append(
            f"input {h}x{w} is smaller than the TRF {trf.size[0]}x{trf.size[1]} around the "
            "probed unit: the ERF is clipped"
        )
    if metrics["degenerate"]:
        warnings.append(f"degenerate ERF map: {metrics['degenerate']}; no size or fit reported")
    if metrics.get("fit_problem") and not metrics["degenerate"]:
        warnings.append(metrics["fit_problem"])
    warnings.extend(result.meta.get("probe_warnings", []))
    if result.n_nonfinite:
        warnings.append(f"{result.n_nonfinite} sample(s) with NaN/Inf gradients were skipped")
    return warnings


def metric_settings(cfg: DictConfig) -> dict[str, Any]:
    """``erf_metrics``'s settings from ``fit.*``: ``r2_min``, ``bootstrap`` (replicates) and
    ``ci_level``."""
    return {
        "r2_min": cfg.fit.r2_min,
        "bootstrap": int(cfg.fit.get("bootstrap", 200)),
        "ci_level": float(cfg.fit.get("ci_level", 0.95)),
    }


def job_metrics(
    cfg: DictConfig, result: ERFResult, trf: TheoreticalRF, model: nn.Module | None = None
) -> dict[str, Any]:
    """Settings, ERF/TRF metrics, warnings and provenance of one measurement; with the probed
    ``model``, also how its inputs were made (``erf.app.build.inputs_record``: the real-image
    normalisation, the photos), ``model_seed`` (the torch seed its weights were drawn with)
    and a note when the model transforms its input itself (``input_transform_note``)."""
    metrics = {
        **({"label": cfg.label} if cfg.get("label") else {}),
        **model_settings(cfg),
        "target": result.target,
        **erf_metrics(result, trf, **metric_settings(cfg)),
    }
    metrics["inputs"] = cfg.inputs.source
    metrics["protocol"] = protocol_of(cfg)  # probe.protocol (erf.app.protocol)
    metrics["channel"] = cfg.probe.get("channel")  # unit seeding: None = every channel
    metrics["n_draws"] = int(cfg.probe.get("draws", 1))
    if cfg.inputs.source == "imagefolder":
        metrics["inputs_root"] = cfg.inputs.root
    if model is not None:
        metrics.update(inputs_record(cfg, model))
        metrics["model_seed"] = cfg.seed
    warnings = _warnings(metrics, result, trf)
    note = input_transform_note(model, result.input_shape)
    if note:
        warnings.append(note)
    for w in warnings:
        log.warning(w)
    metrics["warnings"] = warnings
    metrics["wall_time_s"] = result.meta["wall_time_s"]
    metrics["batch_size"] = result.meta["batch_size"]  # the one used (probe.batch_size=auto)
    for key in (
        "fast",
        "channels_last",
        "compile",
        "crop",
        "n_units",
        "seeding",
        "n_dead_channels",
    ):
        if key in result.meta:
            metrics[key] = result.meta[key]
    metrics["provenance"] = provenance(result.meta["device"], result.meta["dtype"])
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    metrics["settings_fingerprint"] = fingerprint(settings(cfg))
    return metrics


def save_measurement(
    out_dir: Path,
    result: ERFResult,
    metrics: dict[str, Any],
    scale: str,
    extra_files: Sequence[str] = (),
) -> None:
    """The job's files (``erf.io.job.write_job``; ``extra_files`` already written are
    checksummed too) and its one log line; under torchrun only rank 0 writes."""
    if not distributed.is_main_process():
        return
    write_job(out_dir, result, metrics, scale, extra_files)
    if result.ndim != 2:  # a sequence or a volume (erf.analysis.summary.nd_erf_metrics)
        log.info(
            "%sERF size %.2f (per axis %s), TRF %s, fit R2 %.3f, %d samples in %.1fs",
            f"{result.target}: " if result.target else "",
            metrics["erf_size"], metrics["erf_size_axes"], metrics.get("trf_sizes"),
            metrics["fit_r2"], result.n_samples, result.meta["wall_time_s"],
        )  # fmt: skip
        return
    log.info(
        "%sERF size %.2f px, TRF %s, sigma (%.2f, %.2f), fit R2 %.3f, %d samples in %.1fs",
        f"{result.target}: " if result.target else "",
        metrics["erf_size"],
        metrics.get("trf_size"),
        metrics["sigma_x"],
        metrics["sigma_y"],
        metrics["fit_r2"],
        result.n_samples,
        result.meta["wall_time_s"],
    )


def run_measure(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    target: str | None,
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """One measurement of ``target`` into ``out_dir``. Returns its metrics."""
    result, trf = probe_one(cfg, model, input_shape, target, out_dir, should_stop)
    metrics = job_metrics(cfg, result, trf, model)
    save_measurement(out_dir, result, metrics, cfg.plot.scale)
    return metrics


def run_profile(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """ERF and TRF of several layers of one model: ``profile.layers`` is a list of module
    names or "stages" (one layer per resolution, ``erf.rf.targets.stage_layers``). Each layer is
    a sub-job in ``out_dir/<index>_<layer>``; the profile summary and figures sit in out_dir."""
    if cfg.probe.get("draws", 1) > 1:
        raise ValueError("probe.draws > 1 does not combine with profile.layers")
    refuse_probe(cfg, ("target",), "profile.layers (it names the probed layers)")
    layers = layer_names(cfg.profile.layers, "profile.layers", model, input_shape)
    dirs = [out_dir / f"{i:02d}_{name}" for i, name in enumerate(layers)]
    todo = [i for i, d in enumerate(dirs) if completed_metrics(cfg, d) is None]
    # One forward per batch for all layers (profile.shared_forward), or one probe per layer.
    chunks = [todo] if cfg.profile.get("shared_forward", True) else [[i] for i in todo]
    for chunk in filter(None, chunks):
        found = probe_many(
            cfg, model, input_shape, [layers[i] for i in chunk], [dirs[i] for i in chunk],
            should_stop,
        )  # fmt: skip
        for i, (result, trf) in zip(chunk, found):
            metrics = job_metrics(cfg, result, trf, model)
            metrics["layer_index"] = i
            save_measurement(dirs[i], result, metrics, cfg.plot.scale)
    if not distributed.is_main_process():
        return {"layers": list(layers)}
    return {"layers": list(layers), "summary": write_profile(out_dir, scale=cfg.plot.scale)}


@job_kind(
    "profile",
    help="ERF and TRF of several layers of one model (profile.layers), one forward per batch",
    owns=("profile.layers",),
)
def profile_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """The profile kind: ``run_profile`` of the seeded model."""
    if not cfg.profile.get("layers"):
        raise ConfigError("job=profile needs profile.layers: stages or a list of module names")
    refuse_probe(cfg, ("draw_weight",), "probe.draws=1 (one network: no draws to pool)")
    model = seeded_model(cfg.model, cfg.seed)
    return run_profile(cfg, model, input_shape_for(cfg, model), out_dir, should_stop)
