"""Where a result came from: versions, the git commit of the checkout, the machine, device and
dtype."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from erf.app.suite import hardware
from erf.version import __version__


def provenance(device: str, dtype: str) -> dict[str, Any]:
    """Versions, git commit (when run from a checkout), machine (``erf.app.suite.hardware``:
    the GPU, or the CPU and its cores), device and dtype of a run."""
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "erf_version": __version__,
        "git_commit": commit,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "machine": hardware(device),
        "device": device,
        "dtype": dtype,
    }
