"""The skip-scale study (Luo et al. 2016, §2.6; ``study=skip_scale``): the ERF size of a
residual stack ``act(x + α·f(x))`` against the branch scale α, with and without batch-norm,
with t-intervals over weight draws (``erf.analysis.bands.draws_size_band``).

Files: ``skip_scale.json`` / ``skip_scale.csv`` (one entry per job) and ``skip_scale.png``
(``skip_scale_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from erf.analysis.bands import draws_size_band
from erf.io.figure_style import caption, caption_text, styled
from erf.io.plots import save_figure
from erf.io.store import write_json, write_text
from erf.io.sweep import per_draw_maps
from erf.io.tables import csv_text
from erf.studies.registry import register_study


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def write_skip_study(sweep_dir: Path, rows: Sequence[Mapping[str, Any]]) -> str:
    """skip_scale.json / skip_scale.csv (per job: batch_norm, branch_scale, TRF, ERF size with
    its t-interval over draws, ERF/TRF, fit R²) and skip_scale.png (ERF size against the
    branch scale α, one line per batch_norm, TRF dashed). Returns a text table."""
    entries = []
    for row in rows:
        size = draws_size_band(per_draw_maps(row))
        entries.append(
            {
                "job": row.get("job"),
                "batch_norm": bool(row.get("batch_norm")),
                "branch_scale": _num(row.get("branch_scale", 1.0)),
                "protocol": row.get("protocol", "ours"),
                "n_draws": row.get("n_draws", 1),
                "n_samples": row.get("n_samples"),
                "trf_size": row.get("trf_size"),
                "erf_size": row.get("erf_size"),
                "erf_size_low": size[0],  # t-band over draws of the pooled map's count
                "erf_size_high": size[1],
                "erf_trf_ratio": row.get("erf_trf_ratio"),
                "fit_r2": row.get("fit_r2"),
            }
        )
    entries.sort(key=lambda e: (e["batch_norm"], e["branch_scale"]))
    write_json({"jobs": entries}, sweep_dir / "skip_scale.json")
    columns = list(entries[0]) if entries else []
    write_text(csv_text(entries, columns), sweep_dir / "skip_scale.csv")
    fig = skip_scale_figure(entries)
    caption(fig, caption_text(rows))
    save_figure(fig, str(sweep_dir / "skip_scale.png"))
    lines = [f"{'batch_norm':>10} {'alpha':>6} {'ERF size [95% CI]':>26} {'TRF':>5}"]
    for e in entries:
        lines.append(
            f"{e['batch_norm']!s:>10} {e['branch_scale']:>6g} {_num(e['erf_size']):>8.2f} "
            f"[{e['erf_size_low']:.2f}, {e['erf_size_high']:.2f}] {_num(e['trf_size']):>5g}"
        )
    return "\n".join(lines)


@register_study(
    "skip_scale",
    help="ERF size against the residual branch scale α, with and without batch-norm, "
    "with t-intervals over draws",
    files=("skip_scale.json", "skip_scale.csv", "skip_scale.png"),
)
def write(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str], scale: str
) -> str:
    """skip_scale.json / .csv / .png (``write_skip_study``); returns its text table. ``x``,
    ``group_by`` and ``scale`` are not used."""
    return write_skip_study(sweep_dir, rows)


@styled
def skip_scale_figure(entries: Sequence[Mapping[str, Any]]) -> Figure:
    """ERF size (95 % t-interval over draws) against the residual branch scale α, one line
    with and one without batch-norm; the TRF (the same for every α) dashed."""
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for i, bn in enumerate((False, True)):
        members = [e for e in entries if e["batch_norm"] == bn]
        if not members:
            continue
        a = np.array([e["branch_scale"] for e in members])
        y = np.array([_num(e["erf_size"]) for e in members])
        lo = np.array([e["erf_size_low"] for e in members])
        hi = np.array([e["erf_size_high"] for e in members])
        err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])
        label = "with batch-norm" if bn else "no batch-norm"
        ax.errorbar(
            a, y, yerr=np.clip(err, 0, None), fmt="o-", capsize=3, color=f"C{i}", label=label
        )
    if entries:
        ax.axhline(_num(entries[0]["trf_size"]), color="k", ls="--", lw=1, label="TRF")
    ax.set_xlabel("residual branch scale α in act(x + α·f(x))")
    ax.set_ylabel("ERF size (Luo, px)")
    ax.set_title("skip connections: ERF size vs branch scale, 95 % CI over draws", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
