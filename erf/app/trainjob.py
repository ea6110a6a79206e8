"""``python -m erf.trainjob SWEEP_DIR``: rebuild a trained-vs-untrained sweep's summary
(``summary.csv``, ``before_after.png``; ``erf.io.trained``). The training job itself is
``erf.app.jobs.training``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from erf.app.callbacks import write_report
from erf.io.store import CorruptJob
from erf.io.trained import format_summary, write_study_summary


def main(argv: Sequence[str] | None = None, prog: str = "python -m erf.trainjob") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rebuild summary.csv and before_after.png of a trained_vs_untrained sweep.",
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--scale", choices=["linear", "log"], default="linear")
    args = parser.parse_args(argv)
    try:
        rows = write_study_summary(args.sweep_dir, args.scale)
        write_report(args.sweep_dir)  # report.html, report.md
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (CorruptJob, OSError) as exc:  # a job's file is not whole; a full or read-only disk
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(format_summary(rows))
    print(f"results: {args.sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
