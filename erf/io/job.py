"""One measurement's files: ``erf.npz``, ``heatmap.png`` and ``metrics.json`` (written last:
the completion marker, with the size and sha256 of every other result file under ``files``),
from a result, its metrics dict and the plot scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erf.io.plots import erf_figure, save_figure
from erf.io.store import clean_stale_temps, file_record, save_result, write_json
from erf.result import ERFResult


def heatmap_title(metrics: dict[str, Any]) -> str:
    """The heatmap's title: the job's main settings, its ERF and TRF sizes."""
    keys = ("label", "name", "target", "depth", "blocks", "init", "activation")
    head = ", ".join(f"{k}={metrics[k]}" for k in keys if metrics.get(k) is not None)
    trf = metrics.get("trf_size", float("nan"))
    title = f"{head}\nERF size {metrics['erf_size']:.2f}, TRF {trf:.0f}"
    if metrics.get("trf_source") == "measured_support":
        title += " (measured support)"
    return title


def trf_label(metrics: dict[str, Any]) -> str:
    """The TRF square's label: "TRF" or "measured support (lower bound)", with "TRF global
    (from <layer>)" when the TRF is the whole input."""
    label = (
        "measured support (lower bound)"
        if metrics.get("trf_source") == "measured_support"
        else "TRF"
    )
    if metrics.get("trf_global_from"):
        label += f"; TRF global (from {metrics['trf_global_from']})"
    return label


def write_job(
    out_dir: Path,
    result: ERFResult,
    metrics: dict[str, Any],
    scale: str,
    extra_files: Sequence[str] = (),
) -> None:
    """erf.npz, heatmap.png, then metrics.json (the completion marker, recording the size and
    sha256 of those and of ``extra_files`` already in ``out_dir`` under ``files``), each
    written atomically; the probe checkpoint (``checkpoint.npz``) and temp files of runs that
    died mid-write are removed once they are all in place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_result(result, out_dir / "erf.npz")
    fig = erf_figure(
        result.map,
        trf_interval=metrics.get("trf_interval"),
        fit=metrics.get("fit"),
        title=heatmap_title(metrics),
        scale=scale,
        warning="; ".join(metrics.get("warnings", [])) or None,
        trf_label=trf_label(metrics),
        unit=metrics.get("unit_in_input"),
    )
    save_figure(fig, str(out_dir / "heatmap.png"))
    metrics["files"] = file_record(out_dir, ["erf.npz", "heatmap.png", *extra_files])
    write_json(metrics, out_dir / "metrics.json")
    (out_dir / "checkpoint.npz").unlink(missing_ok=True)
    clean_stale_temps(out_dir)  # of runs killed mid-write; a live writer's are kept
