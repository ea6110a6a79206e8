"""The cross-architecture study's outputs (``experiment=cross_arch``; ``erf.io.sweep.write_study``
with study "cross_arch", so ``python -m erf.report DIR --study cross_arch`` rebuilds them).

From the sweep's job rows (one per model x inputs x size x seed) and their ``erf.npz``:

- ``cross_arch.png``: one column per model, one row per (inputs, size), the seed-averaged map
  of each cell as log10(x+1) on one colour scale per row; ``cross_arch_per_map.png``: the same
  with each map scaled to its own max (RepLKNet's display: shapes only).
- ``cross_arch.csv``: per cell, ``n``/``mean``/``lo``/``hi`` (95 % t-interval over seeds) of the
  area ratios (t = 0.2, 0.3, 0.5, 0.99), Luo ERF size, TRF size and ERF/TRF.
- ``cross_arch.md``: the same table in Markdown, ``mean [lo, hi]`` per cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from erf.analysis.cross_arch import (
    CROSS_ARCH_METRICS,
    cell_stats,
    group_cells,
    mean_map,
    trf_is_global,
)
from erf.io.figure_style import caption_text, natural_key
from erf.io.plots import cross_arch_figure, save_figure
from erf.io.store import load_result, write_text
from erf.io.tables import csv_text

CELL_KEYS = ("label", "name", "inputs", "input_h")  # model label, timm name, inputs, size (px)
HEADINGS = {
    "area_ratio_20": "area t=0.2",
    "area_ratio_30": "area t=0.3",
    "area_ratio_50": "area t=0.5",
    "area_ratio_99": "area t=0.99",
    "erf_size": "ERF size (Luo, px)",
    "trf_size": "TRF (px)",
    "erf_trf_ratio": "ERF/TRF",
}


def _model_label(row: Mapping[str, Any]) -> str:
    return str(row.get("label") or row.get("name"))


def _row_label(inputs: Any, size: Any) -> str:
    return f"{inputs}, {size} px"


def job_order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows in sweep order: by the job number that prefixes each folder name (Hydra's
    ``<num>_...`` subdirs; folder names sort 10 before 2), others after, by name."""

    def key(row: Mapping[str, Any]) -> tuple:
        head = str(row.get("job", "")).split("_", 1)[0]
        return (0, int(head), "") if head.isdigit() else (1, 0, str(row.get("job", "")))

    return sorted(rows, key=key)


def cross_arch_table(
    rows: Sequence[Mapping[str, Any]], level: float = 0.95
) -> list[dict[str, Any]]:
    """One dict per (model, inputs, size) cell, in sweep order (``job_order``): the cell
    keys, ``n_seeds``, ``seeds``, ``trf_source``, ``trf_global`` and
    ``<metric>_{n,mean,lo,hi}`` per metric (``erf.analysis.cross_arch.cell_stats``)."""
    out = []
    for key, members in group_cells(job_order(rows), CELL_KEYS).items():
        entry: dict[str, Any] = dict(zip(CELL_KEYS, key))
        entry["label"] = _model_label(members[0])
        entry["n_seeds"] = len(members)
        entry["seeds"] = " ".join(str((m.get("config") or {}).get("seed")) for m in members)
        entry["trf_source"] = members[0].get("trf_source") or "graph"
        entry["trf_global"] = all(trf_is_global(m) for m in members)
        for metric, stats in cell_stats(members, CROSS_ARCH_METRICS, level).items():
            for part in ("n", "mean", "lo", "hi"):
                entry[f"{metric}_{part}"] = stats[part]
        out.append(entry)
    return out


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) >= 0.01 else f"{v:.2g}"


def _cell_text(entry: Mapping[str, Any], metric: str) -> str:
    if metric in ("trf_size", "erf_trf_ratio") and entry["trf_global"]:
        return "global" if metric == "trf_size" else "n/a (global)"
    mean, lo, hi = (entry[f"{metric}_{p}"] for p in ("mean", "lo", "hi"))
    if not entry[f"{metric}_n"]:
        return "n/a"
    if lo is None or not math.isfinite(lo) or hi - lo <= 1e-9 * max(1.0, abs(mean)):
        return _num(mean)  # one seed, or no spread over seeds (e.g. a graph TRF)
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def cross_arch_markdown(table: Sequence[Mapping[str, Any]], level: float = 0.95) -> str:
    """The table in Markdown: ``mean [lo, hi]`` (a {level} t-interval over seeds) per metric."""
    head = ["model", "inputs", "size", "n", *(HEADINGS[m] for m in CROSS_ARCH_METRICS)]
    lines = [
        f"Mean [{level:.0%} t-interval] over n seeds; area t: RepLKNet's high-contribution "
        "area ratio at threshold t; TRF from the graph, or the measured support (a lower "
        "bound) where marked *, or global; a value without brackets is the same for every "
        "seed, or from one seed (n = 1); n/a: no value (area t: no centred square up to "
        "RepLKNet's bound reaches t).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for e in table:
        mark = "*" if e["trf_source"] == "measured_support" and not e["trf_global"] else ""
        cells = [_cell_text(e, m) for m in CROSS_ARCH_METRICS]
        cells[CROSS_ARCH_METRICS.index("trf_size")] += mark
        lines.append(
            "| "
            + " | ".join([e["label"], str(e["inputs"]), str(e["input_h"]), str(e["n_seeds"])])
            + " | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def _panel(members: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A figure panel: the seed-averaged map, the TRF box or note, the mean Luo size."""
    maps = [load_result(Path(m["_dir"]) / "erf.npz").map for m in members]
    first = members[0]
    note = None
    if all(trf_is_global(m) for m in members):
        note = "TRF global"
    elif first.get("trf_source") == "measured_support":
        note = "box: measured support"
    if note != "TRF global" and first.get("trf_clipped") and first.get("trf_size"):
        note = f"{note + '; ' if note else ''}TRF {first['trf_size']:.0f} px > input"
    sizes = [m.get("erf_size") for m in members]
    finite = [s for s in sizes if s is not None and math.isfinite(s)]
    mean_size = sum(finite) / len(finite) if finite else math.nan
    return {
        "map": mean_map(maps),
        "trf_interval": None if note == "TRF global" else first.get("trf_interval"),
        "trf_note": note,
        "caption": f"ERF {_num(mean_size)} px (n={len(members)})",
    }


def cross_arch_panels(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[list[list[dict[str, Any] | None]], list[str], list[str]]:
    """(panels, row labels, column labels) for ``cross_arch_figure``: columns are models in
    job order, rows (inputs, size) sorted by size then inputs."""
    cells = group_cells(job_order(rows), ("label", "inputs", "input_h"))
    models = list(dict.fromkeys(_model_label(m[0]) for m in cells.values()))
    row_keys = sorted({(k[1], k[2]) for k in cells}, key=lambda k: (k[1], str(k[0])))
    by_model = {(_model_label(m[0]), k[1], k[2]): m for k, m in cells.items()}
    panels = [
        [
            _panel(by_model[(model, inputs, size)]) if (model, inputs, size) in by_model else None
            for model in models
        ]
        for inputs, size in row_keys
    ]
    return panels, [_row_label(*k) for k in row_keys], models


def _layers(rows: Sequence[Mapping[str, Any]]) -> str:
    """The probed layer of each model, "model: layer; ..." (one entry when all share it)."""
    by_model = {_model_label(r): str(r.get("target") or "output") for r in job_order(rows)}
    if len(set(by_model.values())) == 1:
        return next(iter(by_model.values()))
    return "; ".join(
        f"{m}: {t}" for m, t in sorted(by_model.items(), key=lambda kv: natural_key(kv[0]))
    )


def write_cross_arch(
    sweep_dir: str | Path, rows: Sequence[Mapping[str, Any]], scale: str = "log"
) -> str:
    """Write cross_arch.png, cross_arch_per_map.png, cross_arch.csv and cross_arch.md into
    ``sweep_dir`` from its job ``rows`` (``erf.io.sweep.collect``); return the Markdown."""
    sweep_dir = Path(sweep_dir)
    if not rows:
        raise ValueError(f"no job results under {sweep_dir}")
    table = cross_arch_table(rows)
    columns = [*CELL_KEYS, "n_seeds", "seeds", "trf_source", "trf_global"] + [
        f"{m}_{p}" for m in CROSS_ARCH_METRICS for p in ("n", "mean", "lo", "hi")
    ]
    write_text(csv_text(table, columns), sweep_dir / "cross_arch.csv")
    markdown = cross_arch_markdown(table)
    write_text(markdown, sweep_dir / "cross_arch.md")
    panels, row_labels, col_labels = cross_arch_panels(rows)
    text = caption_text(rows, model="per column", layer=_layers(rows))
    for norm, name in (("row", "cross_arch.png"), ("cell", "cross_arch_per_map.png")):
        fig = cross_arch_figure(
            panels, row_labels, col_labels, scale=scale, norm=norm, caption_text=text
        )
        save_figure(fig, sweep_dir / name)
    return markdown
