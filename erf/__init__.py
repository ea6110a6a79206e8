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
from erf.probe.options import PRESETS, ProbeOptions
from erf.probe.support import SupportResult, first_global_layer, measured_support, trf_or_support
from erf.result import ERFResult
from erf.rf import TheoreticalRF, register_rule, theoretical_rf
from erf.version import __version__ as __version__

__all__ = [
    "ConvStack",
    "ERFResult",
    "GaussianFit",
    "PRESETS",
    "ProbeOptions",
    "SupportResult",
    "TheoreticalRF",
    "area_ratios",
    "erf_size",
    "first_global_layer",
    "fit_gaussian",
    "luo_size",
    "mass_radius",
    "measure_erf",
    "measure_erfs",
    "measured_support",
    "moment_sigma",
    "radial_mass",
    "register_rule",
    "theoretical_rf",
    "trf_or_support",
]
