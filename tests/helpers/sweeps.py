"""Synthetic sweep folders for the study tests: job folders holding Gaussian maps (one per
weight draw) and a ``metrics.json``, as ``erf.io.sweep.collect`` reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from erf.io.store import save_result, save_results, write_json
from erf.result import ERFResult


def gaussian(size: int, sigma: float, peak: float = 1.0) -> np.ndarray:
    """A centred [size, size] Gaussian map."""
    r = np.arange(size) - size // 2
    return peak * np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))


def _result(m: np.ndarray) -> ERFResult:
    h, w = m.shape
    return ERFResult(m, m**2, 1, (1, h, w), None, (1, h, w), (h // 2, w // 2), None, "abs")


def write_job(sweep: Path, name: str, maps: list[np.ndarray], **metrics: Any) -> Path:
    """Job folder ``sweep/name``: ``erf.npz`` (the mean of ``maps``), ``draws.npz`` (one
    result per map) when there are several, and ``metrics.json`` (``metrics`` plus the
    probe's reduction, samples and draws)."""
    folder = sweep / name
    folder.mkdir(parents=True)
    save_result(_result(np.mean(maps, axis=0)), folder / "erf.npz")
    if len(maps) > 1:
        save_results([_result(m) for m in maps], folder / "draws.npz")
    defaults = {"reduce": "abs", "n_samples": 1, "n_draws": len(maps), "target": "layer"}
    write_json({**defaults, **metrics}, folder / "metrics.json")
    return folder
