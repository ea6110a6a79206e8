"""``experiment=calibration``: does every interval erf prints cover its truth at its level?

Two kinds of case, one table (``erf.io.calibration``):

- the exact synthetic cases of ``calibration.cases`` (``erf.analysis.calibration.CASES``):
  truth maps with closed-form metrics, measured ``calibration.repetitions`` times with fresh
  noise;
- with ``calibration.network``, the configured model and unit: a reference run of
  ``calibration.reference_samples`` inputs stands in for the map at infinitely many inputs
  (its own interval widths are recorded beside each row, so a reader can see it is much
  sharper than the repetitions'), then ``calibration.repetitions`` runs of ``probe.n_samples``
  fresh inputs each (input seeds ``calibration.seed + 1 + r``; the reference uses
  ``calibration.seed``), every one through the job's own ``erf_metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.analysis.calibration import CASES, coverage_rows, simulate, truth_metrics
from erf.analysis.summary import CI_KEYS, erf_metrics
from erf.app.build import (
    input_shape_for,
    probe_options,
    probe_position,
    refuse_probe,
    resolve_target,
    seeded_model,
)
from erf.app.job_kinds import job_kind
from erf.app.provenance import provenance
from erf.io.calibration import write_calibration
from erf.io.tables import format_rows
from erf.probe.inputs import RANDOM_SOURCES
from erf.probe.measure import probe_units, resolve_device
from erf.probe.support import trf_or_support

JOB = "experiment=calibration"
log = logging.getLogger("erf")


def run_calibration(
    cfg: DictConfig, model: nn.Module, input_shape, target: str | None, out_dir: Path
) -> dict[str, Any]:
    """Coverage rows of every case; writes ``coverage.csv``/``.md``/``.png`` and
    ``calibration.json`` into ``out_dir`` and prints the table."""
    c = cfg.calibration
    refuse_probe(cfg, ("draws",), f"{JOB} (it measures one network's intervals over inputs)")
    if c.network and cfg.inputs.source not in RANDOM_SOURCES:  # before any case runs
        raise ValueError(
            f"{JOB} needs fresh random inputs per repetition: inputs.source="
            f"{cfg.inputs.source!r} is not one of {', '.join(RANDOM_SOURCES)}"
        )
    level, replicates = float(cfg.fit.ci_level), int(cfg.fit.bootstrap)
    rows: list[dict[str, Any]] = []
    for name in c.cases:
        start = time.time()
        case = CASES[name]
        found = simulate(case, int(c.repetitions), int(c.seed), bootstrap=replicates, level=level)
        rows += [
            {"label": "synthetic", "case": name, **row}
            for row in coverage_rows(found, truth_metrics(case), level=level)
        ]
        log.info(
            "calibration: %s, %d repetitions, %.0f s", name, c.repetitions, time.time() - start
        )
    record: dict[str, Any] = {
        "level": level,
        "repetitions": int(c.repetitions),
        "seed": int(c.seed),
    }
    if c.network:
        network_rows, record["network"] = _network(cfg, model, input_shape, target)
        rows += network_rows
    record["provenance"] = provenance(str(resolve_device(cfg.device)), "float32")
    record["config"] = OmegaConf.to_container(cfg, resolve=True)
    write_calibration(out_dir, rows, record)
    columns = ("case", "metric", "coverage", "coverage_low", "coverage_high", "width", "verdict")
    print(format_rows(rows, columns), flush=True)
    return record


def _network(
    cfg: DictConfig, model: nn.Module, input_shape, target: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The network case's coverage rows, and what was measured (model, unit, samples)."""
    c = cfg.calibration
    position = probe_position(cfg)
    options = replace(probe_options(cfg, cfg.inputs.source), progress=False)
    trf = trf_or_support(model, input_shape, target, position, cfg.seed, options=options)
    level, replicates = float(cfg.fit.ci_level), int(cfg.fit.bootstrap)
    start = time.time()
    reference_options = replace(options, n_samples=int(c.reference_samples), seed=int(c.seed))
    (reference,) = probe_units(model, input_shape, [(target, position)], reference_options)
    truth_row = erf_metrics(reference, trf, bootstrap=replicates, ci_level=level)
    truth = {k: float(truth_row[k]) for k in CI_KEYS if k in truth_row}
    found = []
    for rep in range(int(c.repetitions)):
        rep_options = replace(options, seed=int(c.seed) + 1 + rep)
        (result,) = probe_units(model, input_shape, [(target, position)], rep_options)
        found.append(erf_metrics(result, trf, bootstrap=replicates, ci_level=level))
        if (rep + 1) % max(1, int(c.repetitions) // 10) == 0:
            log.info("calibration: network, %d/%d repetitions", rep + 1, c.repetitions)
    name = f"network: {cfg.model.get('name', cfg.model.get('_target_'))} -> {target or 'output'}"
    rows = []
    for row in coverage_rows(found, truth, level=level):
        low, high = truth_row[f"{row['metric']}_ci_low"], truth_row[f"{row['metric']}_ci_high"]
        rows.append({"label": "network", "case": name, **row, "reference_width": high - low})
    log.info("calibration: network, %.0f s", time.time() - start)
    record = {
        "case": name,
        "n_samples": int(cfg.probe.n_samples),
        "reference_samples": int(c.reference_samples),
        "trf_source": trf.source,
        "reference_metrics": truth,
    }
    return rows, record


__all__ = ["run_calibration"]


@job_kind("calibration", help="do the printed intervals cover at their level? (simulation)")
def calibration_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """The calibration kind: ``run_calibration`` of the seeded model's probed unit."""
    refuse_probe(cfg, ("draw_weight",), "probe.draws=1 (one network: no draws to pool)")
    model = seeded_model(cfg.model, cfg.seed)
    input_shape = input_shape_for(cfg, model)
    target = resolve_target(cfg.probe.target, model, input_shape)
    return run_calibration(cfg, model, input_shape, target, out_dir)
