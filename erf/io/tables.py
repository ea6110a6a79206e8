"""Text tables from plain rows (dicts): CSV files and fixed-width console tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any


def cell(v: Any) -> Any:
    """A value as a table cell: floats to 6 significant digits, lists space-separated, None
    empty."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return "" if v is None else v


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str], every_column=False) -> str:
    """CSV of ``rows`` with the ``columns`` some row has (``every_column``: all of them), in
    that order; cells as ``cell`` writes them."""
    present = list(columns) if every_column else [c for c in columns if any(c in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=present, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: cell(r.get(c)) for c in present})
    return buf.getvalue()


def format_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A fixed-width text table of the chosen columns, one line per row."""
    cells = [[str(cell(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
