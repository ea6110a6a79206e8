"""Which committed intervals the calibrated methods changed, and by how much.

    python experiments/luo2016/interval_changes.py OLD_FOLDER experiments/luo2016

OLD_FOLDER is a copy of this folder from before the re-render (``rerender.sh``). For every
study table both folders hold (``summary.csv``, ``shape.csv``, ``skip_scale.csv``), each row
(by ``job``) and each interval column pair (``<key>_ci_low/_ci_high`` or ``<key>_low/_high``)
gives one line of ``interval_changes.csv``: the old and new interval, the width ratio new/old
and whether the point value moved; a summary per study and metric is printed.
"""

from __future__ import annotations

import csv
import math
import statistics
import sys
from pathlib import Path

TABLES = ("summary.csv", "shape.csv", "skip_scale.csv")


def _num(v: str | None) -> float:
    try:
        return float(v) if v not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _pairs(columns: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for c in columns:
        low_suffix, high_suffix = (
            ("_ci_low", "_ci_high") if c.endswith("_ci_low") else ("_low", "_high")
        )
        if c.endswith(low_suffix) and c[: -len(low_suffix)] + high_suffix in columns:
            key = c[: -len(low_suffix)]
            out.append((key, c, key + high_suffix))
    return out


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {r.get("job") or str(i): r for i, r in enumerate(csv.DictReader(f))}


def main(old: Path, new: Path) -> None:
    lines, moved = [], set()
    for table in sorted(new.rglob("*.csv")):
        if table.name not in TABLES:
            continue
        before = old / table.relative_to(new)
        if not before.exists():
            continue
        a, b = _rows(before), _rows(table)
        columns = list(next(iter(b.values())).keys()) if b else []
        for key, low, high in _pairs(columns):
            for job, row in b.items():
                if job not in a:
                    continue
                old_row = a[job]
                if _num(old_row.get(key)) != _num(row.get(key)) and key in old_row:
                    moved.add((str(table.relative_to(new)), key))
                w_old = _num(old_row.get(high)) - _num(old_row.get(low))
                w_new = _num(row.get(high)) - _num(row.get(low))
                if not (math.isfinite(w_new) or math.isfinite(w_old)):
                    continue
                lines.append({
                    "table": str(table.relative_to(new)), "job": job, "metric": key,
                    "old_low": old_row.get(low), "old_high": old_row.get(high),
                    "new_low": row.get(low), "new_high": row.get(high),
                    "width_ratio": w_new / w_old if w_old > 0 else math.nan,
                    "value_moved": _num(old_row.get(key)) != _num(row.get(key)),
                })  # fmt: skip
    out = new / "interval_changes.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(lines[0]) if lines else ["table"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    for table, key in sorted(moved):
        print(f"{table} {key}: the point value moved in some row")
    groups: dict[tuple[str, str], list[dict]] = {}
    for line in lines:
        groups.setdefault((line["table"], line["metric"]), []).append(line)
    for (table, metric), members in groups.items():
        ratios = [m["width_ratio"] for m in members if math.isfinite(m["width_ratio"])]
        gone = sum(1 for m in members if m["new_low"] in ("", None, "nan"))
        new = sum(1 for m in members if m["old_low"] in ("", None, "nan"))
        median = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
        print(f"{table} {metric}: {len(members)} rows, median width new/old {median}, "
              f"{new} had no interval before, {gone} have none now")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
