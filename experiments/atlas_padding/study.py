"""The padding study's comparison, from the atlas runs of ``run.sh``.

Reads ``RUNS/<model>_<padding>/atlas.json`` (and ``luo_zeros_unshared``) and writes into OUT:

- ``padding.csv``: per model, padding and three units (the centre, the middle of the top
  edge, the top-left corner): ERF size (Luo, about the ERF's peak), ERF size / √TRF pixels,
  the centre shift (rows, cols, norm) and the share of ERF mass outside the TRF box, each
  with its 95 % interval over 16 input groups (``erf.analysis.atlas``);
- ``regions.csv``: per model, padding and region (centre, interior, edge, corner), the mean
  over the region's units (``atlas.json`` ``summary``);
- ``timing.csv``: wall time and backward passes per batch of every run, shared or not;
- ``padding.png``: ERF size and column shift along the middle row of the map, one line per
  padding, with the intervals as bands;
- a copy of every run's ``atlas.png`` and ``atlas.csv`` (``<run>_atlas.png/.csv``) and the
  interactive page of the zero-padded stack (``luo_zeros_atlas.html``).

    python experiments/atlas_padding/study.py RUNS OUT
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODELS = {"luo": "Luo-style ReLU stack (depth 8, 24 px)", "resnet18": "ResNet-18 layer1 (64 px)"}
PADDINGS = ("zeros", "reflect", "circular")
KEYS = ("erf_size", "erf_trf_ratio", "shift_row", "shift_col", "shift_norm")


def _units(rows: list[dict], h: int, w: int) -> dict[str, dict]:
    by = {(r["unit_row"], r["unit_col"]): r for r in rows}
    return {"centre": by[(h // 2, w // 2)], "edge": by[(0, w // 2)], "corner": by[(0, 0)]}


def _round(v):
    return None if v is None else round(float(v), 4)


def main(runs: Path, out: Path) -> None:
    table, regions, timing = [], [], []
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
    for i, (model, title) in enumerate(MODELS.items()):
        for padding in PADDINGS:
            name = f"{model}_{padding}"
            record = json.loads((runs / name / "atlas.json").read_text())
            h, w = record["map_shape"]
            for unit, row in _units(record["rows"], h, w).items():
                entry = {"model": model, "padding": padding, "unit": unit,
                         "unit_row": row["unit_row"], "unit_col": row["unit_col"]}  # fmt: skip
                for key in KEYS:
                    for suffix in ("", "_ci_low", "_ci_high"):
                        entry[key + suffix] = _round(row[key + suffix])
                entry["mass_outside_trf"] = _round(row["mass_outside_trf"])
                entry["trf_pixels"] = row["trf_pixels"]
                table.append(entry)
            for region, values in record["summary"].items():
                regions.append({"model": model, "padding": padding, "region": region,
                                **{k: _round(v) for k, v in values.items()}})  # fmt: skip
            timing.append({"run": name, "units": record["plan"]["n_units"],
                           "passes": record["plan"]["n_passes"],
                           "wall_time_s": round(record["wall_time_s"], 1)})  # fmt: skip
            middle = sorted(
                (r for r in record["rows"] if r["unit_row"] == h // 2), key=lambda r: r["unit_col"]
            )
            cols = [r["unit_col"] for r in middle]
            for j, key in enumerate(("erf_size", "shift_col")):
                ax = axes[i, j]
                ax.plot(cols, [r[key] for r in middle], label=padding)
                ax.fill_between(cols, [r[key + "_ci_low"] for r in middle],
                                [r[key + "_ci_high"] for r in middle], alpha=0.3)  # fmt: skip
                ax.set_xlabel("output unit column (middle row)")
                ax.set_ylabel("ERF size, Luo (px)" if key == "erf_size" else "column shift (px)")
                ax.set_title(title, fontsize=10)
                ax.legend(fontsize=8, title="padding", title_fontsize=8)
            shutil.copy(runs / name / "atlas.png", out / f"{name}_atlas.png")
            shutil.copy(runs / name / "atlas.csv", out / f"{name}_atlas.csv")
    unshared = json.loads((runs / "luo_zeros_unshared" / "atlas.json").read_text())
    timing.append({"run": "luo_zeros_unshared", "units": unshared["plan"]["n_units"],
                   "passes": unshared["plan"]["n_passes"],
                   "wall_time_s": round(unshared["wall_time_s"], 1)})  # fmt: skip
    fig.suptitle("Border effect along the middle row: ERF size and column shift (bands: 95 %)")
    fig.savefig(out / "padding.png", dpi=100)
    shutil.copy(runs / "luo_zeros" / "atlas.html", out / "luo_zeros_atlas.html")
    for name, rows in (("padding", table), ("regions", regions), ("timing", timing)):
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote padding.csv, regions.csv, timing.csv, padding.png into {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
