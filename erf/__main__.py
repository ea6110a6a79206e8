"""``python -m erf <command> [arguments]``: the ``erf`` command (``erf.cli``)."""

import sys

from erf.cli import main

if __name__ == "__main__":
    sys.exit(main())
