"""``python -m erf.report SWEEP_DIR``: rebuild a sweep's summary (``erf.io.sweep``).

Reads every job's ``metrics.json`` and ``erf.npz`` under SWEEP_DIR and writes
``summary.csv`` (one row per job), ``slopes.json`` (log-log slopes per group),
``erf_grid.png`` (all heatmaps) and ``trf_vs_erf.png`` (sizes against depth, log-log).
``--study NAME`` also writes a registered study's files (``erf.studies``; the choices come
from the registry); a study that writes its own summary (``trained_vs_untrained``) replaces
the plain one, and ``erf train-summary DIR`` (``erf.app.trainjob``) is that study's alias.
Figures are drawn from those saved results only, so ``plot.format=pdf`` (or
``plot.format=[png,pdf,svg]``) and ``plot.dpi=300`` after SWEEP_DIR re-render any sweep in
other formats (``erf.app.figures``).
The report page (``report.html``, ``report.md``; ``erf.io.report_page``) is rebuilt too.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from erf.app.callbacks import write_report
from erf.app.figures import output_of, parse_overrides
from erf.io.figure_style import FigureOutput, figure_output
from erf.io.store import CorruptJob
from erf.io.sweep import collect, format_slopes, write_summary
from erf.studies import get_study, study_names, write_study

DEFAULT_X, DEFAULT_GROUP_BY = "depth", ["init", "activation"]


def _unknown_setting(sweep_dir: Path, x: str | None, group_by: list[str] | None) -> str | None:
    """One line naming a ``--x`` / ``--group-by`` setting that no job of the sweep records
    (with the closest ones it does), or None. The defaults are not checked: a sweep without a
    depth simply has no depth axis."""
    asked = [("--x", x)] if x else []
    asked += [("--group-by", k) for k in group_by or ()]
    if not asked:
        return None
    known = {k for row in collect(sweep_dir) for k in row if not k.startswith("_")}
    for flag, key in asked:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            return f"{flag} {key}: no job in {sweep_dir} records {key!r}{hint}"
    return None


def _epilog() -> str:
    """The figure output keys, and one entry per registered study (name: help)."""
    plot = (
        "Figure output, anywhere on the line: plot.format=png|pdf|svg or [png,pdf] (one file "
        "per format), plot.dpi=N (raster formats; default 200), plot.scale=linear|log."
    )
    studies = [
        textwrap.fill(f"{name}: {get_study(name).help}", 79, initial_indent="  ",
                      subsequent_indent="      ")
        for name in study_names()
    ]  # fmt: skip
    return "\n".join([textwrap.fill(plot, 79), "", "studies (--study NAME):", *studies])


def main(argv: Sequence[str] | None = None, prog: str = "python -m erf.report") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Sweep summary: ``python -m erf.report SWEEP_DIR`` (also run by Hydra at "
        "the end of a sweep).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--x", help="setting on the x axis (default: depth)")
    parser.add_argument("--group-by", nargs="*", help="settings that make a line")
    parser.add_argument(
        "--scale", choices=["linear", "log"], default="linear", help="heatmap scale"
    )
    parser.add_argument(
        "--study",
        choices=study_names(),
        help="also write a registered study's files and print its summary (see below)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    plot_args = [a for a in argv if a.lstrip("+").startswith("plot.")]
    args = parser.parse_args([a for a in argv if a not in plot_args])
    try:
        plot = parse_overrides(plot_args)
        output = output_of(plot)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.scale = plot.get("scale", args.scale)
    if args.scale not in ("linear", "log"):
        print(f"error: plot.scale {args.scale!r}; allowed: linear, log", file=sys.stderr)
        return 2
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    problem = _unknown_setting(args.sweep_dir, args.x, args.group_by)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    args.x = args.x or DEFAULT_X
    args.group_by = DEFAULT_GROUP_BY if args.group_by is None else args.group_by
    return rebuild(args.sweep_dir, args.study, args.x, args.group_by, args.scale, output)


def rebuild(
    sweep_dir: Path,
    study: str | None,
    x: str = DEFAULT_X,
    group_by: Sequence[str] = tuple(DEFAULT_GROUP_BY),
    scale: str = "linear",
    output: FigureOutput | None = None,
) -> int:
    """Write the sweep summary (unless ``study`` writes its own), ``study``'s files and the
    report page, print the slopes, the study's text and the folder; return the exit status
    (2: no job results; 1: a job's file is not whole, or the disk refused a write)."""
    entry = get_study(study) if study else None
    slopes = []
    try:
        with figure_output(output or output_of(None)):
            if entry is None or entry.sweep_summary:
                slopes = write_summary(sweep_dir, x, group_by, scale)
            text = entry and write_study(sweep_dir, entry.name, x, group_by, scale)
            write_report(sweep_dir)  # report.html, report.md
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (CorruptJob, OSError) as exc:  # a job's file is not whole; a full or read-only disk
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if slopes:
        print(format_slopes(slopes, group_by))
    if entry:
        print(text)
    print(f"results: {sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
