"""erf: measure effective receptive fields (ERFs) and compare them with theoretical ones."""

from erf.analysis.fit import GaussianFit, fit_gaussian
from erf.analysis.metrics import (
    area_ratios,
    erf_size,
    luo_size,
    mass_radius,
    moment_sigma,
    radial_mass,
)
from erf.nets.luo import ConvStack
from erf.probe.measure import measure_erf, measure_erfs
from erf.result import ERFResult
from erf.rf import TheoreticalRF, theoretical_rf
from erf.version import __version__ as __version__

__all__ = [
    "ConvStack",
    "ERFResult",
    "GaussianFit",
    "TheoreticalRF",
    "area_ratios",
    "erf_size",
    "fit_gaussian",
    "luo_size",
    "mass_radius",
    "measure_erf",
    "measure_erfs",
    "moment_sigma",
    "radial_mass",
    "theoretical_rf",
]
