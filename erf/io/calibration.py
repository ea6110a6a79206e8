"""The files of a coverage calibration (``erf.analysis.calibration``): ``coverage.csv`` (one row
per label, case and metric), ``coverage.md`` (per metric and label: the coverage range over
the cases, mean width and how many cases pass) and ``coverage.png`` (coverage with its 95 %
Clopper-Pearson interval per case, one panel per label, the nominal level and the tolerance
band marked)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from erf.analysis.calibration import COVERAGE_TOLERANCE
from erf.io.figure_style import caption, styled
from erf.io.plots import save_figure
from erf.io.store import write_json, write_text
from erf.io.tables import csv_text

COLUMNS = (
    "label", "case", "metric", "truth", "n", "n_missing", "coverage", "coverage_low",
    "coverage_high", "miss_below", "miss_above", "width", "zero_width", "bias", "bias_sd",
    "verdict", "reference_width",
)  # fmt: skip


BOUNDS = ("coverage_low", "coverage_high")


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def coverage_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per metric, one cell per label: "low–high · mean width · k/n ok" over the
    cases (and the largest share of zero-width intervals when above 5 %); "no interval" where
    the label printed none."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    head = "coverage (range over cases) · mean width · verdicts"
    lines = [
        "| metric | " + " | ".join(f"{label}: {head}" for label in labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for metric in dict.fromkeys(r["metric"] for r in rows):
        cells = []
        for label in labels:
            mine = [r for r in rows if r["metric"] == metric and r["label"] == label]
            cov = [c for c in (_num(r["coverage"]) for r in mine) if math.isfinite(c)]
            if not cov:
                cells.append("no interval")
                continue
            ok = sum(r["verdict"] == "ok" for r in mine)
            zero = max(_num(r["zero_width"]) for r in mine)
            width = float(np.nanmean([_num(r["width"]) for r in mine]))
            text = f"{min(cov):.2f}–{max(cov):.2f} · {width:.3g} · {ok}/{len(mine)} ok"
            cells.append(text + (f" · up to {zero:.0%} zero-width" if zero > 0.05 else ""))
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@styled
def coverage_figure(rows: Sequence[Mapping[str, Any]], level: float = 0.95) -> Figure:
    """Coverage (x) of each metric (y) per case (colour) with its Clopper-Pearson interval,
    one panel per label; the nominal ``level`` as a line, the tolerated shortfall shaded."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(
        1, len(labels), figsize=(5.2 * len(labels), 0.3 * len(metrics) + 1.2),
        sharey=True, constrained_layout=True, squeeze=False,
    )  # fmt: skip
    for ax, label in zip(axes[0], labels):
        for i, metric in enumerate(metrics):
            for j, case in enumerate(cases):
                key = (label, metric, case)
                found = [r for r in rows if (r["label"], r["metric"], r["case"]) == key]
                if not found or not math.isfinite(_num(found[0]["coverage"])):
                    continue
                c, low, high = (_num(found[0][k]) for k in ("coverage", *BOUNDS))
                y = i + (j - (len(cases) - 1) / 2) * 0.12
                ax.errorbar(c, y, xerr=[[c - low], [high - c]], fmt="o", ms=3, color=f"C{j % 10}")
        ax.axvspan(level - COVERAGE_TOLERANCE, level, color="0.88", zorder=0)
        ax.axvline(level, color="k", lw=1)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"{label}: coverage of {level:.0%} intervals", fontsize=10)
        ax.set_xlabel("share of repetitions whose interval holds the truth")
    axes[0][0].set_yticks(range(len(metrics)), metrics, fontsize=8)
    axes[0][0].invert_yaxis()
    handles = [
        plt.Line2D([], [], marker="o", ls="", ms=4, color=f"C{j % 10}", label=case)
        for j, case in enumerate(cases)
    ]
    caption(
        fig,
        f"Bars: 95 % Clopper-Pearson interval of the coverage. Shaded: the tolerated "
        f"shortfall ({level - COVERAGE_TOLERANCE:.2f}–{level:.2f}).",
        handles=handles,
    )
    return fig


def write_calibration(
    out_dir: Path, rows: Sequence[Mapping[str, Any]], record: Mapping[str, Any]
) -> None:
    """``coverage.csv``, ``coverage.md``, ``coverage.png`` and ``calibration.json``
    (``record`` plus the rows) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(csv_text(list(rows), COLUMNS), out_dir / "coverage.csv")
    write_text(coverage_markdown(rows), out_dir / "coverage.md")
    write_json({**record, "rows": list(rows)}, out_dir / "calibration.json")
    save_figure(coverage_figure(rows), out_dir / "coverage.png")


__all__ = ["COLUMNS", "coverage_figure", "coverage_markdown", "write_calibration"]
