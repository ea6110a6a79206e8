"""Numbers from maps (layer 2, numpy and scipy only, no torch): ERF size metrics (``metrics``),
Gaussian fits (``fit``), a job's metric summary (``summary``), intervals over draws and seeds
(``repeats``, ``draw_stats``, ``bands``). Maps are [H, W] float64 arrays, (row, col), in input
pixels. Each study's own statistics live in its module of ``erf.studies``."""

from erf.analysis.fit import GaussianFit, fit_gaussian
from erf.analysis.metrics import (
    area_ratios,
    loglog_slope,
    luo_size,
    mass_radius,
    moment_sigma,
    radial_mass,
)
from erf.analysis.sizes import erf_size

__all__ = [
    "GaussianFit",
    "area_ratios",
    "erf_size",
    "fit_gaussian",
    "loglog_slope",
    "luo_size",
    "mass_radius",
    "moment_sigma",
    "radial_mass",
]
