"""``job: atlas``: the ERF and TRF of many output units of one 2-D map in one job
(``erf.probe.atlas``), their per-unit numbers with intervals (``erf.analysis.atlas``), the
atlas figure and the interactive page (``erf.io.atlas``).

The units are ``atlas.units`` (a unit set or a list of [row, col]; null: "border", the
centre, edge midpoints and corners) of ``probe.target``; ``atlas.share`` and
``atlas.backward`` say how the backward passes run. Writes ``atlas.csv``, ``atlas_maps.npz``,
``atlas.png``, ``atlas.html`` and ``atlas.json`` (the record, written last). An atlas keeps no
checkpoint; ``resume=true`` skips one that finished with the same settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.analysis.atlas import atlas_rows, atlas_summary
from erf.app.build import (
    build_inputs,
    input_shape_for,
    model_settings,
    probe_options,
    refuse_probe,
    resolve_target,
    seeded_model,
)
from erf.app.job_kinds import job_kind
from erf.app.provenance import provenance
from erf.app.resume import fingerprint, settings
from erf.io.atlas import write_atlas
from erf.io.store import check_files, read_json
from erf.io.tables import format_rows
from erf.probe import distributed
from erf.probe.atlas import measure_atlas

JOB = "job=atlas"
DEFAULT_UNITS = "border"
log = logging.getLogger("erf")


def atlas_title(cfg: DictConfig, target: str | None, input_shape) -> str:
    """The figure's and page's title: model, padding, target and input size."""
    model = cfg.model.get("name") or str(cfg.model.get("_target_", "model")).rsplit(".", 1)[-1]
    padding = cfg.model.get("padding_mode")
    words = [
        cfg.get("label") or model,
        f"padding {padding}" if padding else None,
        f"layer {target}" if target else "model output",
        f"input {input_shape[1]}x{input_shape[2]}",
    ]
    return "ERF atlas: " + ", ".join(w for w in words if w)


def run_atlas(
    cfg: DictConfig, model: nn.Module, input_shape, target: str | None, out_dir: Path
) -> dict[str, Any]:
    """Measure the atlas of ``target`` and write its files into ``out_dir``; returns the
    record (``atlas.json`` without its rows)."""
    options = probe_options(cfg, build_inputs(cfg, input_shape, model))
    units = cfg.atlas.units if cfg.atlas.units is not None else DEFAULT_UNITS
    units = OmegaConf.to_container(units) if OmegaConf.is_config(units) else units
    found = measure_atlas(
        model, input_shape, target, units, options,
        share=cfg.atlas.share, backward=cfg.atlas.backward,
    )  # fmt: skip
    rows = atlas_rows(found.results, level=float(cfg.fit.ci_level))
    first = found.results[0]
    record = {
        **({"label": cfg.label} if cfg.get("label") else {}),
        **model_settings(cfg),
        "target": target,
        "input_shape": list(input_shape),
        "map_shape": list(found.plan.map_shape),
        "units": units,
        "plan": found.plan.describe(),
        "backward": cfg.atlas.backward,
        "n_samples": first.n_samples,
        "reduce": first.reduce,
        "ci_level": float(cfg.fit.ci_level),
        "summary": atlas_summary(rows),
        "wall_time_s": first.meta["wall_time_s"],
        "provenance": provenance(first.meta["device"], first.meta["dtype"]),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "settings_fingerprint": fingerprint(settings(cfg)),
    }
    plan = found.plan
    note = (
        f"{plan.describe()['n_units']} units in {len(plan.passes)} backward passes per batch "
        f"({plan.reason}); {first.n_samples} inputs ({cfg.inputs.source}), "
        f"reduce={first.reduce}."
    )
    maps = [r.map for r in found.results]
    boxes = plan.trf_boxes or [None] * len(rows)
    write_atlas(out_dir, rows, maps, boxes, record, atlas_title(cfg, target, input_shape), note)
    table = [{"region": k, **v} for k, v in record["summary"].items()]
    print(format_rows(table, ("region", "n_units", "erf_size", "erf_trf_ratio", "shift_norm")))
    log.info("atlas: %s; %.1f s", note, record["wall_time_s"])
    return record


@job_kind(
    "atlas",
    help="the ERF and TRF of many output units of one map (atlas.units), with shared passes",
    owns=("atlas.units",),
)
def atlas_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """The atlas kind: ``run_atlas`` of the seeded model's ``probe.target``."""
    refuse_probe(cfg, ("position", "draws", "draw_weight"), f"{JOB} (atlas.units names the units)")
    if distributed.active():
        raise ValueError(f"{JOB} does not run under torchrun; use one process")
    finished = finished_atlas(cfg, out_dir)
    if finished is not None:
        return finished
    model = seeded_model(cfg.model, cfg.seed)
    input_shape = input_shape_for(cfg, model)
    target = resolve_target(cfg.probe.target, model, input_shape)
    return run_atlas(cfg, model, input_shape, target, out_dir)


def finished_atlas(cfg: DictConfig, out_dir: Path) -> dict[str, Any] | None:
    """With ``resume=true``, the record of a finished atlas in ``out_dir`` made with this
    run's settings whose files are all intact (it is then not measured again); else None."""
    done = out_dir / "atlas.json"
    if not cfg.resume or not done.exists():
        return None
    record = read_json(done)
    same = record.get("settings_fingerprint") == fingerprint(settings(cfg))
    if not same or check_files(out_dir, record.get("files", {})) is not None:
        return None
    log.info("atlas: %s is complete with these settings; skipped", out_dir)
    return record
