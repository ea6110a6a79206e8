"""erf: measure effective receptive fields (ERFs) and compare them with theoretical ones.

The public names load on first use (PEP 562 ``__getattr__``): ``import erf`` and the ``erf``
command's ``--help``, ``--version`` and ``experiments`` do not import torch; ``erf.measure_erf``
(or ``from erf import measure_erf``) imports its module then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from erf.version import __version__ as __version__

# Each public name and the module that defines it (one table: __all__ and the lazy loader).
_HOMES = {
    "ConvStack": "erf.nets.luo",
    "ERFMonitor": "erf.monitor",
    "ERFResult": "erf.result",
    "GaussianFit": "erf.analysis.fit",
    "PRESETS": "erf.probe.options",
    "ProbeOptions": "erf.probe.options",
    "SupportResult": "erf.probe.support",
    "TheoreticalRF": "erf.rf",
    "area_ratios": "erf.analysis.metrics",
    "atlas_rows": "erf.analysis.atlas",
    "erf_size": "erf.analysis.sizes",
    "first_global_layer": "erf.probe.support",
    "fit_gaussian": "erf.analysis.fit",
    "luo_size": "erf.analysis.metrics",
    "mass_radius": "erf.analysis.metrics",
    "measure_atlas": "erf.probe.atlas",
    "measure_erf": "erf.probe.measure",
    "measure_erfs": "erf.probe.measure",
    "measured_support": "erf.probe.support",
    "moment_sigma": "erf.analysis.metrics",
    "radial_mass": "erf.analysis.metrics",
    "register_rule": "erf.rf",
    "theoretical_rf": "erf.rf",
    "trf_or_support": "erf.probe.support",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import the module that defines the public ``name`` on first use and cache the value."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'erf' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # static checkers and IDEs see the names directly (explicit re-exports)
    from erf.analysis.atlas import atlas_rows as atlas_rows
    from erf.analysis.fit import GaussianFit as GaussianFit
    from erf.analysis.fit import fit_gaussian as fit_gaussian
    from erf.analysis.metrics import area_ratios as area_ratios
    from erf.analysis.metrics import luo_size as luo_size
    from erf.analysis.metrics import mass_radius as mass_radius
    from erf.analysis.metrics import moment_sigma as moment_sigma
    from erf.analysis.metrics import radial_mass as radial_mass
    from erf.analysis.sizes import erf_size as erf_size
    from erf.monitor import ERFMonitor as ERFMonitor
    from erf.nets.luo import ConvStack as ConvStack
    from erf.probe.atlas import measure_atlas as measure_atlas
    from erf.probe.measure import measure_erf as measure_erf
    from erf.probe.measure import measure_erfs as measure_erfs
    from erf.probe.options import PRESETS as PRESETS
    from erf.probe.options import ProbeOptions as ProbeOptions
    from erf.probe.support import SupportResult as SupportResult
    from erf.probe.support import first_global_layer as first_global_layer
    from erf.probe.support import measured_support as measured_support
    from erf.probe.support import trf_or_support as trf_or_support
    from erf.result import ERFResult as ERFResult
    from erf.rf import TheoreticalRF as TheoreticalRF
    from erf.rf import register_rule as register_rule
    from erf.rf import theoretical_rf as theoretical_rf
