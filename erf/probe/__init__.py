"""The gradient probe (layer 3, torch): ERF maps by back-propagating a unit gradient from probed
units to the input. No files and no config: settings arrive as one ``ProbeOptions``, partial
results leave through callbacks. Modules, bottom up: ``options``, ``units``, ``inputs``,
``batches``, ``forward``, ``accumulate``, ``crop``, ``measure`` (the engine), ``held`` (gates
and norm statistics held constant in the support's copy), ``support`` (measured support: the
TRF where the graph analysis cannot say), then ``draws``
(many weight draws in one pass), ``distributed`` (samples sharded over processes),
``bench`` (the speed benchmark) and ``atlas`` (many units of one map, sharing backward
passes where their exact TRFs are disjoint)."""

from erf.probe.draws import DrawsInterrupted, measure_erf_draws
from erf.probe.measure import ProbeInterrupted, measure_erf, measure_erfs, probe_units
from erf.probe.options import PRESETS, ProbeOptions

__all__ = [
    "DrawsInterrupted",
    "PRESETS",
    "ProbeInterrupted",
    "ProbeOptions",
    "measure_erf",
    "measure_erf_draws",
    "measure_erfs",
    "probe_units",
]
