"""``python -m erf.report SWEEP_DIR``: rebuild a sweep's summary (``erf.io.sweep``).

Reads every job's ``metrics.json`` and ``erf.npz`` under SWEEP_DIR and writes
``summary.csv`` (one row per job), ``slopes.json`` (log-log slopes per group),
``erf_grid.png`` (all heatmaps) and ``trf_vs_erf.png`` (sizes against depth, log-log).
Figures are drawn from those saved results only, so ``plot.format=pdf`` (or
``plot.format=[png,pdf,svg]``) and ``plot.dpi=300`` after SWEEP_DIR re-render any sweep in
other formats (``erf.app.figures``).
The report page (``report.html``, ``report.md``; ``erf.io.report_page``) is rebuilt too.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from erf.app.callbacks import write_report
from erf.app.figures import output_of, parse_overrides
from erf.io.figure_style import figure_output
from erf.io.store import CorruptJob
from erf.io.sweep import STUDIES, collect, format_slopes, write_study, write_summary

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


def main(argv: Sequence[str] | None = None, prog: str = "python -m erf.report") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Sweep summary: ``python -m erf.report SWEEP_DIR`` (also run by Hydra at "
        "the end of a sweep).",
        epilog="Figure output, anywhere on the line: plot.format=png|pdf|svg or [png,pdf] (one "
        "file per format), plot.dpi=N (raster formats; default 200), plot.scale=linear|log.",
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--x", help="setting on the x axis (default: depth)")
    parser.add_argument("--group-by", nargs="*", help="settings that make a line")
    parser.add_argument(
        "--scale", choices=["linear", "log"], default="linear", help="heatmap scale"
    )
    parser.add_argument(
        "--study",
        choices=STUDIES,
        help="also write a study's outputs: Luo et al.'s growth, shape, paths; cross_arch",
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
    try:
        with figure_output(output):
            slopes = write_summary(args.sweep_dir, args.x, args.group_by, args.scale)
            study = args.study and write_study(args.sweep_dir, args.study, args.x, args.group_by)
            write_report(args.sweep_dir)  # report.html, report.md
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (CorruptJob, OSError) as exc:  # a job's file is not whole; a full or read-only disk
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if slopes:
        print(format_slopes(slopes, args.group_by))
    if args.study:
        print(study)
    print(f"results: {args.sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
