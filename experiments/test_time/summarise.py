"""Summarise the per-test cost lines that ``costs.py`` wrote (one folder per run).

    python experiments/test_time/summarise.py FOLDER [--top 15]

Prints, as Markdown: the totals (tests, CPU seconds in the test processes and in the processes
they started), the split between tests that start a process and tests that do not, the
costliest files and the costliest tests. CPU seconds add up over workers; the wall time of the
run is what pytest printed.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def load(folder: Path) -> list[dict]:
    """Every test's cost line in ``folder`` (all workers)."""
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def cpu(row: dict) -> float:
    """A test's CPU seconds: its own and those of the processes it started."""
    return row["cpu_s"] + row["child_cpu_s"]


def summary(rows: list[dict], top: int) -> str:
    """The Markdown tables of one run."""
    spawning = [r for r in rows if r["processes"]]
    inproc = [r for r in rows if not r["processes"]]
    total = sum(cpu(r) for r in rows)
    lines = [
        "| tests | count | CPU s | share |",
        "|---|---:|---:|---:|",
    ]
    for name, group in (("start a process", spawning), ("in-process only", inproc)):
        part = sum(cpu(r) for r in group)
        lines.append(f"| {name} | {len(group)} | {part:.0f} | {part / total:.0%} |")
    lines.append(f"| all | {len(rows)} | {total:.0f} | 100% |")
    lines.append(f"\nprocesses started: {sum(r['processes'] for r in rows)}\n")
    per_file: dict[str, float] = defaultdict(float)
    for r in rows:
        per_file[r["test"].split("::")[0]] += cpu(r)
    lines += ["| file | CPU s |", "|---|---:|"]
    for name, value in sorted(per_file.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{name}` | {value:.1f} |")
    lines += ["", "| test | CPU s | processes |", "|---|---:|---:|"]
    for r in sorted(rows, key=lambda r: -cpu(r))[:top]:
        lines.append(f"| `{r['test'][:110]}` | {cpu(r):.1f} | {r['processes']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summary(load(args.folder), args.top))


if __name__ == "__main__":
    main()
