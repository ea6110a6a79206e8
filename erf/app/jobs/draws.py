"""The ``measure`` job kind: one network (``erf.app.jobs.measure.run_measure``) or, with
``probe.draws`` = M > 1, M random networks (seeds seed .. seed + M - 1) measured in one pass
(``run_draws``, ``erf.probe.draws``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn

from erf.analysis.draw_stats import draw_metrics, pool_draws
from erf.app.build import (
    build_inputs,
    input_shape_for,
    model_for_seed,
    probe_options,
    probe_position,
    refuse_probe,
    resolve_target,
    seeded_model,
)
from erf.app.job_kinds import job_kind
from erf.app.jobs.measure import job_metrics, run_measure, save_measurement, with_settings
from erf.app.resume import completed_metrics, load_draws_checkpoint, settings
from erf.io.store import save_results
from erf.probe import distributed
from erf.probe.draws import measure_erf_draws
from erf.probe.options import SPEED_KEYS
from erf.probe.support import trf_or_support

log = logging.getLogger("erf")


def run_draws(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    target: str | None,
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """``probe.draws`` = M > 1 random networks in one pass: erf.npz and the heatmap hold the
    mean map, metrics.json its metrics plus ``draws`` (per-draw sizes,
    ``erf.analysis.draw_stats``), draws.npz the per-draw maps."""
    options = probe_options(cfg, build_inputs(cfg, input_shape, model))
    options.refuse((*SPEED_KEYS, "batch_size"), "probe.draws > 1", prefix="probe.")
    position = probe_position(cfg)
    trf = trf_or_support(model, input_shape, target, position, cfg.seed, options=options)
    checkpoint = out_dir / "checkpoint_draws.npz"
    resume = load_draws_checkpoint(checkpoint) if cfg.resume and checkpoint.exists() else None
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = settings(cfg)  # checked on resume (erf.app.resume.check_resume)
    results = measure_erf_draws(
        lambda seed: model_for_seed(cfg, seed),
        input_shape,
        draws=cfg.probe.draws,
        target=target,
        position=position,
        resume=resume,
        on_checkpoint=lambda partials: save_results(
            [with_settings(p, recorded) for p in partials], checkpoint
        ),
        options=options,
        should_stop=should_stop,
    )
    pooled = pool_draws(results, cfg.probe.get("draw_weight", "gain"))
    metrics = job_metrics(cfg, pooled, trf, model)
    metrics.pop("model_seed")  # draw d was built with seed + d (``draws``)
    metrics["draws"] = draw_metrics(results, trf, r2_min=cfg.fit.r2_min)
    metrics["n_dead_draws"] = metrics["draws"]["n_dead_draws"]
    if metrics["n_dead_draws"]:
        note = (
            f"{metrics['n_dead_draws']} of {cfg.probe.draws} weight draws gave an all-zero map; "
            "they are left out of the per-draw statistics"
        )
        log.warning(note)
        metrics["warnings"].append(note)
    save_results(results, out_dir / "draws.npz")
    save_measurement(out_dir, pooled, metrics, cfg.plot.scale, extra_files=["draws.npz"])
    checkpoint.unlink(missing_ok=True)
    return metrics


@job_kind(
    "measure",
    help="one ERF measurement (probe.draws > 1: that many weight draws in one pass)",
)
def measure_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """The measure kind: the seeded model, a finished job's metrics when it is complete, else
    one measurement or ``probe.draws`` of them."""
    draws = cfg.probe.get("draws", 1)
    if draws == 1:
        refuse_probe(cfg, ("draw_weight",), "probe.draws=1 (one network: no draws to pool)")
    model = seeded_model(cfg.model, cfg.seed)  # the same weights on every run of a seed
    input_shape = input_shape_for(cfg, model)
    finished = completed_metrics(cfg, out_dir)
    if finished is not None:
        return finished
    target = resolve_target(cfg.probe.target, model, input_shape)
    if draws > 1:
        if distributed.active():
            raise ValueError("probe.draws > 1 does not run under torchrun; use one process")
        return run_draws(cfg, model, input_shape, target, out_dir, should_stop)
    return run_measure(cfg, model, input_shape, target, out_dir, should_stop)
