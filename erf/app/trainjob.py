"""``python -m erf.trainjob SWEEP_DIR`` (``erf train-summary``): rebuild a trained-vs-untrained
sweep's summary; an alias of ``erf report SWEEP_DIR --study trained_vs_untrained``
(``erf.app.report.rebuild``; the study is ``erf.studies.trained_vs_untrained``). The training
job itself is ``erf.app.jobs.training``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from erf.app.report import rebuild

STUDY = "trained_vs_untrained"


def main(argv: Sequence[str] | None = None, prog: str = "python -m erf.trainjob") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rebuild summary.csv and before_after.png of a trained_vs_untrained sweep.",
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--scale", choices=["linear", "log"], default="linear")
    args = parser.parse_args(argv)
    return rebuild(args.sweep_dir, STUDY, scale=args.scale)


if __name__ == "__main__":
    sys.exit(main())
