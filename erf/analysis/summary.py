"""One measurement's numbers: ERF size metrics, Gaussian fit and TRF, as one flat dict.

Pure: takes an ERFResult and a TheoreticalRF, returns plain Python values (JSON-ready).
"""

from __future__ import annotations

import math
from typing import Any

from erf.analysis.fit import fit_gaussian
from erf.analysis.metrics import (
    area_ratios,
    is_degenerate,
    luo_size,
    mass_radius,
    moment_sigma,
    radial_mass,
)
from erf.result import ERFResult
from erf.rf import TheoreticalRF


def erf_metrics(
    result: ERFResult, trf: TheoreticalRF | None = None, r2_min: float = 0.9
) -> dict[str, Any]:
    """Metrics of ``result.map`` (pixels unless stated), with the TRF when given.

    - ``erf_size``: Luo et al.'s size, sqrt(#pixels > (1 - 0.9545)·value at the input pixel
      under the probed unit's TRF centre), i.e. the side of a square of equal area.
    - ``sigma_x``/``sigma_y``/``rotation``/``fit_r2``: elliptical Gaussian fit (x = column).
    - ``moment_sigma_row``/``_col``: second-moment std about the centre of mass.
    - ``mass_radius_50``/``_95``: radius of the smallest disk about the centre pixel holding
      50 % / 95.45 % of the total.
    - ``trf_size``: sqrt(TRF rows × TRF cols), comparable with ``erf_size``;
      ``erf_trf_ratio`` = erf_size / trf_size; ``trf_path_sizes``: [rows, cols, number of
      input-to-target paths with that RF] when the graph analysis counted paths.
      ``trf_clipped`` is True when the TRF of the probed unit does not fit inside the input
      (the ERF is then cut off). ``trf_source``: "closed_form", "graph" or "measured_support"
      (a lower bound, ``erf.probe.support``); ``trf_global_from``: the first global layer.
    - ``area_ratio_20/30/50/99``: RepLKNet's high-contribution area ratios (log10(x+1)
      scaling, centred squares; ``metrics.area_ratios``).
    - ``radial_mass``: fraction of the mass within r = 0, 1, 2, ... pixels of the centre pixel.
    - ``unit_in_input``: (row, col) of the probed unit in input pixels: the centre of its
      exact local TRF, else the probe's grid-scale estimate (``erf.probe.layout.unit_in_input``;
      None for a prefix token); ``unit_in_input_from`` says which. ``layout``, ``grid``,
      ``prefix_tokens``, ``layout_decided_by``: how the probe read the target tensor.
    - ``degenerate``: None, or why no size or fit is reported (e.g. an all-zero map).
    - ``fit_problem``: None, or why the Gaussian parameters should not be read as a size (no
      convergence, degenerate map, or R² below ``r2_min``).
    """
    erf_map = result.map
    center = _input_center(result, trf)
    degenerate = is_degenerate(erf_map)
    out: dict[str, Any] = {
        **{k: result.meta[k] for k in LAYOUT_KEYS if k in result.meta},
        **_unit_in_input(result, trf),
        "n_samples": result.n_samples,
        "n_nonfinite": result.n_nonfinite,
        "reduce": result.reduce,
        "input_h": result.shape[0],
        "input_w": result.shape[1],
        "center_row": center[0],
        "center_col": center[1],
        "degenerate": degenerate,
    }
    if degenerate is None:
        fit = fit_gaussian(erf_map)
        s_row, s_col = moment_sigma(erf_map)
        out.update(
            erf_size=luo_size(erf_map, center=center),
            moment_sigma_row=s_row,
            moment_sigma_col=s_col,
            mass_radius_50=mass_radius(erf_map, 0.5, center=center),
            mass_radius_95=mass_radius(erf_map, 0.9545, center=center),
            **{f"area_ratio_{round(t * 100)}": v for t, v in area_ratios(erf_map).items()},
            radial_mass=radial_mass(erf_map, center=center)[1].tolist(),
            fit_r2=fit.r_squared,
            fit_problem=fit.degenerate or _poor_fit(fit.r_squared, r2_min),
            **{k: getattr(fit, k) for k in ("sigma_x", "sigma_y", "rotation")},
            fit=fit.to_dict(),
        )
    else:
        nan = float("nan")
        out.update(erf_size=nan, sigma_x=nan, sigma_y=nan, fit_r2=nan, fit_problem=degenerate)
    if trf is not None:
        (r0, r1), (c0, c1) = trf.interval(result.position)
        h, w = result.shape
        out.update(
            trf_rows=trf.size[0],
            trf_cols=trf.size[1],
            trf_size=math.sqrt(trf.size[0] * trf.size[1]),
            trf_stride=list(trf.stride),
            trf_padding=list(trf.padding),
            trf_interval=[[r0, r1], [c0, c1]],
            trf_clipped=bool(r0 < 0 or c0 < 0 or r1 >= h or c1 >= w),
            trf_source=trf.source,
            trf_global_from=trf.global_from,
        )
        if trf.path_sizes:
            out["trf_path_sizes"] = [[int(r), int(c), int(n)] for (r, c), n in trf.path_sizes]
        out["erf_trf_ratio"] = out["erf_size"] / out["trf_size"]
    return out


LAYOUT_KEYS = ("layout", "grid", "prefix_tokens", "layout_decided_by")


def _unit_in_input(result: ERFResult, trf: TheoreticalRF | None) -> dict[str, Any]:
    """Where the probed unit sits in the input: the exact TRF's centre when it is local and
    exact, else the probe's estimate from the grid's scale (``meta["unit_in_input"]``)."""
    exact = trf is not None and not trf.is_global and trf.source != "measured_support"
    if exact and not isinstance(result.position, str):
        (r0, r1), (c0, c1) = trf.interval(result.position)
        return {"unit_in_input": [(r0 + r1) / 2, (c0 + c1) / 2], "unit_in_input_from": "TRF"}
    estimate = result.meta.get("unit_in_input")
    return {
        "unit_in_input": estimate,
        "unit_in_input_from": None if estimate is None else "grid scale",
    }


def _poor_fit(r2: float, r2_min: float) -> str | None:
    """A flag for a converged fit whose R² is below ``r2_min`` (the map is not Gaussian)."""
    if math.isfinite(r2) and r2 < r2_min:
        return f"poor Gaussian fit: R² {r2:.3f} < {r2_min:g}; sigma_x/sigma_y are not a size"
    return None


def _input_center(result: ERFResult, trf: TheoreticalRF | None) -> tuple[int, int]:
    """Input pixel under the probed unit (the reference of Luo's size and the mass radii):
    the centre of its exact local TRF; else (a global or measured TRF, none) the probe's
    estimate of where the unit sits (``meta["unit_in_input"]``: a ViT's centre token is its
    patch's centre, not the image's); else the map centre (H // 2, W // 2)."""
    h, w = result.shape
    unit = _unit_in_input(result, trf)["unit_in_input"]
    if unit is None:
        return h // 2, w // 2
    row, col = (math.floor(v) for v in unit)  # a half-pixel centre: the upper-left pixel
    return min(max(row, 0), h - 1), min(max(col, 0), w - 1)
