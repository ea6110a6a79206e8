"""Text tables from plain rows (dicts): CSV files, fixed-width console tables, and the paper
tables (``summary.md``, ``summary.tex``) of a summary's key columns."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from erf.analysis import row
from erf.analysis.row import CI_HIGH, CI_LOW
from erf.io.store import write_text


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


# Paper tables: the key columns of a summary as Markdown and LaTeX (booktabs), numbers rounded
# to a few significant digits, intervals "value [low, high]", missing cells "—".

# The trained-vs-untrained study's key columns and headings follow the row's (erf.analysis.row).
KEY_METRICS = (
    *row.key_metrics(),
    "erf_size_init",
    "erf_size_trained",
    "erf_size_change",
    "erf_trf_ratio_init",
    "erf_trf_ratio_trained",
    "val_accuracy",
    "val_mean_iou",
)
HEADINGS = {
    **row.headings(),
    "erf_size_init": "ERF size at init (px)",
    "erf_size_trained": "ERF size trained (px)",
    "erf_size_change": "ERF size change",
    "erf_trf_ratio_init": "ERF/TRF at init",
    "erf_trf_ratio_trained": "ERF/TRF trained",
    "val_accuracy": "val accuracy",
    "val_mean_iou": "val mIoU",
}
MISSING = "—"  # an empty, None or NaN cell (LaTeX: ---, the same em dash)


def is_number(v: Any) -> bool:
    """An int or float that is not a bool (NaN and ±Inf included: a table's number column may
    hold missing values)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fixed_text(v: Any, digits: int = 1) -> str:
    """``v`` in fixed point with ``digits`` decimals, "n/a" for None (console lines, labels)."""
    return "n/a" if v is None else f"{v:.{digits}f}"


def is_missing(v: Any) -> bool:
    """None, an empty string or a non-finite float (NaN, ±Inf): a cell with no value."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return True
    return isinstance(v, float) and not math.isfinite(v)


def _decimals(v: float, digits: int) -> int:
    """Decimals that show ``v`` to ``digits`` significant digits (0 for |v| >= 10**digits)."""
    if v == 0:
        return digits - 1
    return max(0, digits - 1 - math.floor(math.log10(abs(v))))


def number_text(v: Any, digits: int = 3) -> str:
    """One cell as text: floats to ``digits`` significant digits in fixed point (8.31, 0.482,
    1234; below 1e-3 in e-notation, 1.20e-05), ints and strings as they are, booleans
    yes/no, lists space-separated, missing values (``is_missing``) as "—"."""
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if is_missing(v):
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.{digits - 1}e}"
        return f"{v:.{_decimals(v, digits)}f}"
    return str(cell(v))


def interval_text(value: Any, low: Any, high: Any, digits: int = 3, style: str = "brackets") -> str:
    """``value [low, high]`` (``style="brackets"``) or ``value ± half-width`` (``"pm"``), the
    bounds with the value's decimals; just the value when a bound is missing."""
    if style not in ("brackets", "pm"):
        raise ValueError(f"unknown interval style {style!r}; allowed: brackets, pm")
    if is_missing(value) or not isinstance(value, (int, float)) or isinstance(value, bool):
        return number_text(value, digits)
    text = number_text(float(value), digits)
    if any(is_missing(b) or not isinstance(b, (int, float)) for b in (low, high)):
        return text
    if "e" in text:  # e-notation: the bounds in e-notation too
        lo, hi, half = (f"{b:.{digits - 1}e}" for b in (low, high, (high - low) / 2))
    else:
        d = _decimals(float(value), digits)
        lo, hi, half = (f"{b:.{d}f}" for b in (low, high, (high - low) / 2))
    return f"{text} ± {half}" if style == "pm" else f"{text} [{lo}, {hi}]"


def key_columns(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """The columns a paper table keeps, in ``columns`` order: the settings (the columns before
    the first of ``KEY_METRICS``) whose value differs between rows, then the key metrics some
    row has. ``job`` leads only when those settings do not tell the rows apart (or there are
    none); ``<metric>_ci_low/_ci_high`` are shown inside their metric's cell, not as columns."""
    first_metric = next((i for i, c in enumerate(columns) if c in KEY_METRICS), len(columns))
    settings = [c for c in columns[:first_metric] if c != "job"]
    varying = [c for c in settings if len({str(cell(r.get(c))) for r in rows}) > 1]
    metrics = [c for c in columns if c in KEY_METRICS and any(c in r for r in rows)]
    keys = {tuple(str(cell(r.get(c))) for c in varying) for r in rows}
    lead = ["job"] if (not varying or len(keys) < len(rows)) and "job" in columns else []
    return [*lead, *varying, *metrics]


def paper_cells(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 3, style: str = "brackets"
) -> list[list[str]]:
    """Each row's cells as text (``number_text``; ``interval_text`` for a column whose
    ``<column>_ci_low`` and ``<column>_ci_high`` the row has)."""
    return [
        [
            interval_text(r.get(c), r.get(c + CI_LOW), r.get(c + CI_HIGH), digits, style)
            if c + CI_LOW in r and c + CI_HIGH in r
            else number_text(r.get(c), digits)
            for c in columns
        ]
        for r in rows
    ]


def _numeric(rows: Sequence[dict[str, Any]], column: str) -> bool:
    values = [r.get(column) for r in rows if not is_missing(r.get(column))]
    return bool(values) and all(is_number(v) for v in values)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """A Markdown (GitHub) table of ``columns``: ``HEADINGS`` names, numeric columns right
    aligned, cells as ``paper_cells`` writes them."""
    heads = [_md_escape(HEADINGS.get(c, c)) for c in columns]
    align = ["---:" if _numeric(rows, c) else ":---" for c in columns]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(align) + "|"]
    for cells in paper_cells(rows, columns, digits):
        lines.append("| " + " | ".join(_md_escape(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "---",
}


def latex_escape(text: str) -> str:
    """``text`` safe in a LaTeX table cell: the special characters escaped (``_`` as ``\\_``,
    ``%`` as ``\\%``, ...), ± as ``$\\pm$``, — as ``---``, a leading ``[`` braced (it would
    be read as the optional argument of the previous row's ``\\\\``)."""
    out = "".join(_LATEX.get(ch, ch) for ch in text)
    return "{[}" + out[1:] if out.startswith("[") else out


def _latex_number(text: str) -> str:
    """A negative number's hyphen as a maths minus."""
    return "$-$" + text[1:] if text.startswith("-") and text[1:2].isdigit() else text


def latex_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    digits: int = 3,
    style: str = "brackets",
) -> str:
    """A LaTeX ``tabular`` of ``columns`` with booktabs rules (``\\usepackage{booktabs}``):
    numeric columns right aligned, cells as ``paper_cells`` writes them (intervals in
    ``style``: "brackets" or "pm"), escaped (``latex_escape``)."""
    spec = "".join("r" if _numeric(rows, c) else "l" for c in columns)
    heads = " & ".join(latex_escape(HEADINGS.get(c, c)) for c in columns)
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", heads + " \\\\", "\\midrule"]
    for cells in paper_cells(rows, columns, digits, style):
        lines.append(" & ".join(_latex_number(latex_escape(v)) for v in cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_paper_tables(
    folder: str | Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> list[str]:
    """``summary.md`` and ``summary.tex`` in ``folder``: the ``key_columns`` of ``rows`` (from
    the summary's ``columns``) as ``markdown_table`` and ``latex_table``, written atomically.
    Returns the file names."""
    keep = key_columns(rows, columns)
    folder = Path(folder)
    write_text(markdown_table(rows, keep), folder / "summary.md")
    write_text(latex_table(rows, keep), folder / "summary.tex")
    return ["summary.md", "summary.tex"]
