"""Studies (layer 5, between ``erf.io`` and ``erf.app``): one module per study, each holding
that study's statistics, files and figures and registering itself (``@register_study``);
``erf.analysis`` and ``erf.io`` keep what several studies or the plain sweep share.

A study is chosen by name: ``study=NAME`` in the ``SweepSummary`` Hydra callback of an
experiment config, or ``erf report DIR --study NAME`` afterwards. Importing this package
imports every study module below, so the registry (``study_names()``) is complete. Adding a
study is one module here that registers one entry, plus its import below and its tests
(``tests/studies/test_<name>.py``).
"""

# Each module registers its study when imported, in this order: the order of study_names(),
# of --study's choices and of the "allowed" list of an unknown study.
# isort: off
from erf.studies import growth, shape, paths, cross_arch, skip_scale, trained_vs_untrained

# isort: on
from erf.studies.registry import Study, get_study, register_study, study_names, write_study

__all__ = [
    "Study", "cross_arch", "get_study", "growth", "paths", "register_study", "shape",
    "skip_scale", "study_names", "trained_vs_untrained", "write_study",
]  # fmt: skip
