"""``python -m erf.trainjob SWEEP_DIR``: rebuild a trained-vs-untrained sweep's summary.

A thin entry point; the work is in ``erf.app.trainjob`` and ``erf.io.trained``.
"""

import sys

from erf.app.trainjob import main

if __name__ == "__main__":
    sys.exit(main())
