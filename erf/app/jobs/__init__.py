"""The jobs of ``python -m erf.run``, one module per kind, and ``run_job``, which runs the kind
the config's ``job`` key names (``erf.app.job_kinds``).

Every module of this package is imported here, so each registers its kind: ``measure`` (one
measurement, or ``probe.draws`` weight draws: ``draws``), ``profile`` (``measure``),
``benchmark``, ``calibration``, ``atlas``, ``training``, and ``suite`` (``erf.app.suite``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erf.app import suite  # noqa: F401 (registers the suite kind)
from erf.app.job_kinds import kind_names, selected_kind
from erf.app.protocol import apply_protocol
from erf.app.resume import job_folder, with_model_files
from erf.app.validate import validate

JOB_MODULES = tuple(
    importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
)
JOB_KINDS = kind_names()


def run_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """Validate ``cfg``, run the job kind ``cfg.job`` names into ``out_dir`` and return its
    metrics (or record). ``should_stop`` is polled between batches (``erf.app.signals``).
    ``out_dir`` is locked while the job runs, and what resuming would mix is refused first
    (``erf.app.resume.job_folder``)."""
    cfg = apply_protocol(cfg)  # probe.protocol=luo: R fresh draws x one input (erf.app.protocol)
    validate(cfg)
    kind = selected_kind(cfg)
    if not kind.locked:
        return kind.run(cfg, out_dir, should_stop)
    cfg = with_model_files(cfg)  # what a resume must match beyond the settings
    with job_folder(cfg, out_dir):
        return kind.run(cfg, out_dir, should_stop)


__all__ = ["JOB_KINDS", "JOB_MODULES", "run_job"]
