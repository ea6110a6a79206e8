"""``python -m erf.layers [key=value ...]``: list the probeable layers of a model with their TRF.

A thin entry point; the work is in ``erf.app.layers``.
"""

import sys

from erf.app.layers import main

if __name__ == "__main__":
    sys.exit(main())
