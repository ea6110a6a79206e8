"""``python -m erf.trainjob SWEEP_DIR``: rebuild a trained-vs-untrained sweep's summary.

A thin entry point, an alias of ``python -m erf.report SWEEP_DIR --study
trained_vs_untrained``; the work is in ``erf.app.trainjob`` and
``erf.studies.trained_vs_untrained``.
"""

import sys

from erf.app.trainjob import main

if __name__ == "__main__":
    sys.exit(main())
