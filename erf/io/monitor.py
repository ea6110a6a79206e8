"""The ERF monitor's files and logs from plain rows and maps (``erf.monitor.ERFMonitor``):
its CSV (one row per measured epoch, rewritten whole and atomically, so a resumed run's file
holds each epoch once), its TensorBoard scalars and heatmap (through any object with
TensorBoard's ``add_scalar`` / ``add_image``: a ``SummaryWriter``, Lightning's
``TensorBoardLogger.experiment``), and its figure of the ERF over epochs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps

from erf.io.figure_style import INPUT_WORDS, REDUCTIONS
from erf.io.plots import erf_epochs_figure, save_figure
from erf.io.store import write_text
from erf.io.tables import csv_text

CSV_NAME = "erf_monitor.csv"
FIGURE_NAME = "erf_monitor.png"

# TensorBoard tag (after "<prefix>/") of each logged row value.
SCALAR_TAGS = {
    "erf_size": "size",
    "erf_size_ci_low": "size_ci_low",
    "erf_size_ci_high": "size_ci_high",
    "erf_trf_ratio": "trf_ratio",
    "erf_trf_ratio_ci_low": "trf_ratio_ci_low",
    "erf_trf_ratio_ci_high": "trf_ratio_ci_high",
    "fit_r2": "fit_r2",
    "fit_r2_ci_low": "fit_r2_ci_low",
    "fit_r2_ci_high": "fit_r2_ci_high",
}


def write_monitor_csv(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], path: Path
) -> None:
    """``rows`` (in epoch order) as ``path``, every column in ``columns`` order (atomic)."""
    write_text(csv_text(sorted(rows, key=lambda r: r["epoch"]), columns, every_column=True), path)


def heatmap_image(erf_map: np.ndarray) -> np.ndarray:
    """The map as an RGB image ``[H, W, 3]`` in [0, 1]: scaled by its maximum (0 stays 0),
    viridis, as the heatmap figures draw it; NaN pixels black."""
    m = np.asarray(erf_map, dtype=np.float64)
    top = np.nanmax(m) if np.isfinite(m).any() else 0.0
    scaled = np.clip(m / top, 0.0, 1.0) if top > 0 else np.zeros_like(m)
    rgb = colormaps["viridis"](np.nan_to_num(scaled))[..., :3]
    rgb[~np.isfinite(m)] = 0.0
    return rgb.astype(np.float32)


def log_tensorboard(writer: Any, row: Mapping[str, Any], erf_map: np.ndarray | None,
                    prefix: str = "erf") -> None:  # fmt: skip
    """Log one row's finite numbers as ``<prefix>/<tag>`` scalars (``SCALAR_TAGS``) and the
    map as the ``<prefix>/heatmap`` image, at global step ``row["epoch"]``."""
    step = int(row["epoch"])
    for key, tag in SCALAR_TAGS.items():
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            writer.add_scalar(f"{prefix}/{tag}", float(value), step)
    if erf_map is not None:
        writer.add_image(f"{prefix}/heatmap", heatmap_image(erf_map), step, dataformats="HWC")
    if hasattr(writer, "flush"):
        writer.flush()


def write_monitor_figure(rows: Sequence[Mapping[str, Any]], path: Path, *, target: str | None,
                         reduce: str, inputs: str) -> list[Path]:  # fmt: skip
    """The ERF over epochs: Luo's size with its interval (top) and ERF/TRF (bottom) per
    measured epoch, saved as ``path`` (``erf.io.plots.save_figure``); returns the files."""
    rows = sorted((dict(r) for r in rows), key=lambda r: r["epoch"])
    samples = " / ".join(sorted({str(r.get("n_samples")) for r in rows}))
    text = (
        f"reduction: {REDUCTIONS.get(reduce, reduce)} ({reduce}); samples: {samples}; "
        f"weights: the monitored model after each epoch (0: before training); "
        f"inputs: {INPUT_WORDS.get(inputs, inputs)}; layer: {target or 'output'}"
    )
    fig = erf_epochs_figure(
        rows, metric="erf_trf_ratio", title="ERF during training", caption_text=text
    )
    return save_figure(fig, path)
