"""One measurement's files: ``erf.npz``, ``heatmap.png`` (a sequence's profile or a volume's
slices, ``erf.io.nd_figures``, for those) and ``metrics.json`` (written last:
the completion marker, with the size and sha256 of every other result file under ``files``),
from a result, its metrics dict and the plot scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erf.io.figure_style import caption_text
from erf.io.nd_figures import nd_job_figure
from erf.io.plots import erf_figure, save_figure
from erf.io.store import clean_stale_temps, file_record, save_result, write_json
from erf.result import ERFResult


def heatmap_title(metrics: dict[str, Any]) -> str:
    """The heatmap's title: the job's main settings in words, its ERF and TRF sizes; a TRF
    that is a measured support says so, and "lower bound" when ``trf_bound`` is "lower"; a box
    that varies by unit, or that holds gates and norm statistics constant
    (``erf.rf.trf.LOCAL_CONVENTION``), says that too."""
    words = {
        "label": "{}", "name": "{}", "target": "layer {}", "depth": "depth {}",
        "blocks": "{} blocks", "init": "{} weights", "activation": "activation {}",
    }  # fmt: skip
    head = ", ".join(w.format(metrics[k]) for k, w in words.items() if metrics.get(k) is not None)
    erf = metrics.get("erf_size")
    trf = metrics.get("trf_size")
    sizes = f"ERF size {erf:.2f} px" if erf is not None else "ERF size n/a"
    sizes += f", TRF {trf:.0f} px" if trf is not None else ", TRF n/a"
    if metrics.get("trf_source") == "measured_support":
        lower = metrics.get("trf_bound") == "lower"
        sizes += " (measured support, lower bound)" if lower else " (measured support)"
    if metrics.get("trf_varies_by_unit"):
        sizes += " (this unit's box; varies by unit)"
    if str(metrics.get("trf_convention", "")).startswith("local box"):
        sizes += " (local box: gates and norm statistics held constant)"
    return f"{head}\n{sizes}" if head else sizes


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
    """erf.npz, heatmap.png (in the formats of ``figure_style.current_output()``), then
    metrics.json (the completion marker, recording the size and sha256 of those and of
    ``extra_files`` already in ``out_dir`` under ``files``), each
    written atomically; the probe checkpoint (``checkpoint.npz``) and temp files of runs that
    died mid-write are removed once they are all in place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_result(result, out_dir / "erf.npz")
    if result.ndim != 2:  # a sequence profile or a volume's slices (erf.io.nd_figures)
        fig = nd_job_figure(
            result.map, metrics, scale=scale, caption_text=caption_text([metrics]),
            trf_label=trf_label(metrics),
        )  # fmt: skip
    else:
        fig = erf_figure(
            result.map,
            trf_interval=metrics.get("trf_interval"),
            fit=metrics.get("fit"),
            title=heatmap_title(metrics),
            scale=scale,
            warning="; ".join(metrics.get("warnings", [])) or None,
            trf_label=trf_label(metrics),
            unit=metrics.get("unit_in_input"),
            caption_text=caption_text([metrics]),
        )
    figures = [p.name for p in save_figure(fig, out_dir / "heatmap.png")]
    metrics["files"] = file_record(out_dir, ["erf.npz", *figures, *extra_files])
    write_json(metrics, out_dir / "metrics.json")
    (out_dir / "checkpoint.npz").unlink(missing_ok=True)
    clean_stale_temps(out_dir)  # of runs killed mid-write; a live writer's are kept
