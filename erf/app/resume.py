"""``resume=true``: finished jobs are skipped, interrupted ones continue from their
checkpoints (a probe's ``checkpoint.npz``, a many-draws probe's ``checkpoint_draws.npz``, a
training job's ``train_checkpoint.pt``); an unreadable checkpoint is a one-line error."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from erf.io.store import load_result, load_results, read_json
from erf.result import ERFResult

log = logging.getLogger("erf")


def completed_metrics(cfg: DictConfig, job_dir: Path) -> dict[str, Any] | None:
    """With ``resume=true``, the metrics of a job that already finished (else None)."""
    done = job_dir / "metrics.json"
    if cfg.resume and done.exists():
        log.info("%s is complete; skipped (resume=true)", job_dir)
        return read_json(done)
    return None


def load_checkpoint(path: Path) -> ERFResult:
    """A probe's partial result (``checkpoint.npz``)."""
    try:
        return load_result(path)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over"
        ) from None


def load_draws_checkpoint(path: Path) -> list[ERFResult]:
    """A many-draws probe's partial results, one per draw (``checkpoint_draws.npz``)."""
    try:
        return load_results(path)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it"
        ) from None


def load_training_state(path: Path) -> dict[str, Any]:
    """A training job's state after its last finished epoch (``train_checkpoint.pt``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"training checkpoint {path} is unreadable ({type(exc).__name__}); delete it to "
            "start over"
        ) from None
