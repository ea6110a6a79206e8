"""The benchmark's files (``benchmark.csv``, ``benchmark.json``, ``benchmark.png``) and its
console table, from the timing rows and ratios of ``erf.probe.bench.run_benchmark``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from erf.io.figure_style import human
from erf.io.plots import benchmark_figure, save_figure
from erf.io.store import write_json, write_text
from erf.io.tables import csv_text, format_rows

BENCH_COLUMNS = ("method", "images_per_s", "best_s", "median_s", "map_corr", "luo_rel_diff")


def write_benchmark(out_dir: Path, record: dict[str, Any], title: str) -> None:
    """``benchmark.csv`` (every column some row has), ``benchmark.json`` (``record``) and
    ``benchmark.png`` (titled ``title``) from ``record["rows"]``."""
    rows = record["rows"]
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_text(csv_text(rows, columns), out_dir / "benchmark.csv")
    write_json(record, out_dir / "benchmark.json")
    keys = ("model", "input_h", "input_w", "target", "device", "threads", "n_samples")
    text = ", ".join(f"{human(k)} {record[k]}" for k in keys if record.get(k) is not None)
    save_figure(benchmark_figure(rows, title, caption_text=text or None), out_dir / "benchmark.png")


def format_benchmark(rows: list[dict[str, Any]], ratios: dict[str, float]) -> str:
    """The benchmark's table and ratios as text."""
    ratio_text = ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
    return f"{format_rows(rows, BENCH_COLUMNS)}\nratios: {ratio_text}"
