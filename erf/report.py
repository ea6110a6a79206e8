"""``python -m erf.report SWEEP_DIR``: rebuild a sweep's summary table and figures.

A thin entry point; the work is in ``erf.app.report``, ``erf.io.sweep`` and ``erf.studies``.
"""

import sys

from erf.app.report import main

if __name__ == "__main__":
    sys.exit(main())
