"""The paths study (Luo et al. 2016, skip connections; ``study=paths``): the receptive fields
of the input-to-target paths of a network with several paths (a residual stack's identity
and residual branches), against its TRF (the longest path) and its measured ERF.

A job's graph analysis records its path RFs (``trf_path_sizes``: (rows, cols, number of
paths)); for a stack of residual blocks the path counts by the number of residual branches
taken are binomial (``binomial_path_counts``).

Files: ``path_rf_<job>.png`` (``path_rf_figure``) for every job whose graph has several
paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from erf.io.figure_style import caption, caption_text, styled, wrap
from erf.io.plots import save_figure
from erf.io.sweep import job_label
from erf.studies.registry import register_study


def binomial_path_counts(blocks: int) -> dict[int, int]:
    """Paths through a stack of ``blocks`` residual blocks by the number j of residual
    branches they take: C(blocks, j) (the identity is taken at the other blocks)."""
    return {j: math.comb(int(blocks), j) for j in range(int(blocks) + 1)}


@register_study(
    "paths",
    help="the distribution of path RFs of each job whose graph has several paths (binomial "
    "for residual stacks), with TRF and ERF marked",
    files=("path_rf_<job>.png",),
)
def write(
    sweep_dir: Path, rows: Sequence[Mapping[str, Any]], x: str, group_by: Sequence[str], scale: str
) -> str:
    """``path_rf_<job>.png`` for every job with two or more path RFs; returns one line per
    such job: its mean path RF and its TRF. ``x`` and ``scale`` are not used."""
    lines = []
    for r in rows:
        sizes = r.get("trf_path_sizes") or []
        if len(sizes) < 2:
            continue
        spans = [(int(math.sqrt(a * b)), n) for a, b, n in sizes]
        fig = path_rf_figure(
            spans,
            erf_size=r.get("erf_size"),
            trf_size=r.get("trf_size"),
            title=f"path RFs: {job_label(r, group_by)} ({sum(n for _, n in spans)} paths)",
            caption_text=caption_text([r]),
        )
        save_figure(fig, sweep_dir / f"path_rf_{r['job']}.png")
        mean = sum(s * n for s, n in spans) / sum(n for _, n in spans)
        lines.append(f"{r['job']}: mean path RF {mean:.1f} px, TRF {r.get('trf_size'):g} px")
    return "\n".join(lines)


@styled
def path_rf_figure(
    path_sizes: Sequence[tuple[int, int]],
    *,
    erf_size: float | None = None,
    trf_size: float | None = None,
    title: str = "",
    caption_text: str | None = None,
) -> Figure:
    """Distribution of path RF sizes (pixels) over all input-to-target paths, as fractions of
    the paths, with the TRF (the largest path) and the measured ERF size marked.
    ``path_sizes`` are (span in pixels, number of paths) pairs."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    spans = np.array([s for s, _ in path_sizes], dtype=float)
    counts = np.array([n for _, n in path_sizes], dtype=float)
    width = 0.8 * (np.diff(np.sort(spans)).min() if spans.size > 1 else 1.0)
    ax.bar(spans, counts / counts.sum(), width=width, color="C0", label="paths")
    if trf_size is not None:
        ax.axvline(trf_size, color="k", ls="--", label=f"TRF = longest path ({trf_size:g} px)")
    if erf_size is not None and math.isfinite(erf_size):
        ax.axvline(erf_size, color="C3", label=f"measured ERF size ({erf_size:.1f} px)")
    ax.set_xlabel("path RF (px)")
    ax.set_ylabel("fraction of paths")
    ax.set_title(wrap(title or "RF of the input-to-target paths", 5.0, 8))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    caption(fig, caption_text or "")
    return fig
