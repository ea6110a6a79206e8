"""``python -m erf.run [experiment=NAME] [key=value ...]``: one measurement, or a sweep.

A thin entry point; the work is in ``erf.app.run`` and the jobs of ``erf.app.jobs``.
"""

from erf.app.run import cli

if __name__ == "__main__":
    cli()
