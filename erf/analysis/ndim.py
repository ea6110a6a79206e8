"""Sizes and Gaussian fits of sequence and volume ERF maps. Pure numpy/scipy, no torch.

A sequence model's map is ``[L]`` (index t), a volume model's ``[D, H, W]`` (index
(d, h, w)); all lengths are in input samples / voxels. The 2-D metrics (``erf.analysis.metrics``,
the size-metric registry) stay as they are; these are their generalisations per axis:

- ``nd_center``: the centre sample/voxel, as ``erf_center`` picks it (the unit's input
  position rounded half up, else ``n // 2`` per axis);
- ``luo_size_nd``: Luo et al. 2016's count of entries above (1 - 0.9545) x the centre value,
  as the side of the cube of that volume: ``count ** (1 / ndim)`` (the 2-D ``luo_size`` is the
  square root; in 1-D the count itself, a length);
- ``luo_axis_sizes``: Luo's size along each axis: the entries above the same threshold on the
  line through the centre along that axis. For a separable map ``f(d) g(h) k(w)`` (uniform
  weights: the outer product of three n-fold box convolutions) it is exactly the 1-D Luo size
  of each axis' profile, so it grows as sqrt(n) per axis;
- ``moment_sigmas``: the standard deviation of the (non-negative) map about its centre of mass
  along each axis (uniform weights: exactly sqrt(n (k² - 1) / 12), Luo's variance);
- ``fit_gaussian_1d`` (centre, sigma, amplitude, offset) and ``fit_gaussian_nd`` (a Gaussian with
  a full covariance matrix, any number of axes; for volumes the 3 x 3 covariance).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from erf.analysis.metrics import LUO_FRACTION, is_degenerate
from erf.result import ERFResult

NAN = float("nan")
MAX_EVALUATIONS = 4000  # least-squares function evaluations of one fit


def as_nd_map(m: Any) -> np.ndarray:
    """``m`` (an array, or an ``ERFResult``: its ``map``) as a float64 array with 1 or 3 axes
    (a 2-D map belongs to ``erf.analysis.metrics``); ValueError otherwise."""
    if isinstance(m, ERFResult):
        m = m.map
    m = np.asarray(m, dtype=np.float64)
    if m.ndim not in (1, 3):
        raise ValueError(f"expected a sequence [L] or volume [D, H, W] map, got shape {m.shape}")
    return m


def nd_center(shape: Sequence[int], unit: Sequence[float] | None = None) -> tuple[int, ...]:
    """The centre entry of a map of ``shape``: ``unit`` (where the probed unit sits in the
    input, per axis, possibly fractional) rounded half up and clipped to the map, else
    ``n // 2`` per axis (``erf.analysis.metrics.erf_center``'s rule, per axis)."""
    if unit is None:
        return tuple(int(n) // 2 for n in shape)
    return tuple(min(max(math.floor(float(u) + 0.5), 0), int(n) - 1) for u, n in zip(unit, shape))


def _threshold(m: np.ndarray, center: tuple[int, ...]) -> float | None:
    """Luo's threshold (1 - 0.9545) x the centre value, or None for a centre <= 0 or NaN."""
    peak = float(m[center])
    if not np.isfinite(peak) or peak <= 0:
        return None
    return (1.0 - LUO_FRACTION) * peak


def luo_size_nd(m: Any, center: Sequence[int] | None = None) -> float:
    """``count ** (1 / ndim)`` of the entries above (1 - 0.9545) x the value at ``center``
    (default ``nd_center``): the side of the cube holding as many entries; NaN for a centre
    value <= 0 or not finite. On a 2-D map this is Luo's size exactly."""
    m = np.asarray(m.map if isinstance(m, ERFResult) else m, dtype=np.float64)
    center = nd_center(m.shape) if center is None else tuple(center)
    t = _threshold(m, center)
    if t is None:
        return NAN
    return float(np.count_nonzero(m > t) ** (1.0 / m.ndim))


def luo_axis_sizes(m: Any, center: Sequence[int] | None = None) -> tuple[float, ...]:
    """Luo's size along each axis: the number of entries above (1 - 0.9545) x the centre
    value on the line through ``center`` along that axis (NaN for a centre <= 0)."""
    m = as_nd_map(m)
    center = nd_center(m.shape) if center is None else tuple(center)
    t = _threshold(m, center)
    if t is None:
        return (NAN,) * m.ndim
    sizes = []
    for axis in range(m.ndim):
        line = tuple(slice(None) if a == axis else c for a, c in enumerate(center))
        sizes.append(float(np.count_nonzero(m[line] > t)))
    return tuple(sizes)


def moment_sigmas(m: Any) -> tuple[float, ...]:
    """Standard deviation along each axis of the map's non-negative part, as a mass about
    its centre of mass (entries); NaN for a map without positive mass."""
    w = np.clip(as_nd_map(m), 0.0, None)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return (NAN,) * w.ndim
    out = []
    for axis in range(w.ndim):
        marginal = w.sum(axis=tuple(a for a in range(w.ndim) if a != axis))
        x = np.arange(len(marginal), dtype=np.float64)
        mean = (marginal * x).sum() / total
        out.append(float(math.sqrt(max((marginal * (x - mean) ** 2).sum() / total, 0.0))))
    return tuple(out)


def centre_of_mass(m: Any) -> tuple[float, ...]:
    """Centre of mass of the map's non-negative part, one coordinate per axis."""
    w = np.clip(as_nd_map(m), 0.0, None)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return (NAN,) * w.ndim
    grids = np.indices(w.shape)
    return tuple(float((w * g).sum() / total) for g in grids)


# --------------------------------------------------------------------------- Gaussian fits


@dataclass(frozen=True)
class GaussianNDFit:
    """A Gaussian ``offset + A exp(-(x - c)ᵀ Σ⁻¹ (x - c) / 2)`` fitted to a map with one or
    more axes (``fit_gaussian_nd``). Lengths in entries (samples, voxels); ``center`` and the
    rows of ``covariance`` are in axis order ((t,) or (d, h, w)). ``degenerate`` is None for
    a usable fit, else why the parameters are NaN."""

    amplitude: float
    center: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    offset: float
    r_squared: float
    converged: bool
    degenerate: str | None

    @property
    def sigmas(self) -> tuple[float, ...]:
        """Standard deviation along each axis: the square roots of the covariance diagonal."""
        return tuple(math.sqrt(self.covariance[i][i]) for i in range(len(self.center)))

    @property
    def principal_sigmas(self) -> tuple[float, ...]:
        """Standard deviations along the principal axes, largest first."""
        values = np.linalg.eigvalsh(np.asarray(self.covariance, dtype=np.float64))
        return tuple(float(math.sqrt(max(v, 0.0))) for v in sorted(values, reverse=True))

    @property
    def sigma(self) -> float:
        """Geometric mean of the principal sigmas (``det(Σ) ** (1 / 2n)``)."""
        return float(np.prod(self.principal_sigmas) ** (1.0 / len(self.center)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict with ``sigmas`` and ``principal_sigmas`` added (lists, floats)."""
        out = asdict(self)
        out["center"] = list(self.center)
        out["covariance"] = [list(row) for row in self.covariance]
        ok = self.degenerate is None
        out["sigmas"] = list(self.sigmas) if ok else [NAN] * len(self.center)
        out["principal_sigmas"] = list(self.principal_sigmas) if ok else [NAN] * len(self.center)
        return out

    @classmethod
    def failed(cls, reason: str, n_axes: int) -> GaussianNDFit:
        nan_row = (NAN,) * n_axes
        return cls(NAN, nan_row, (nan_row,) * n_axes, NAN, NAN, False, reason)


def _unpack(p: np.ndarray, n: int, with_offset: bool):
    """(amplitude, centre, Cholesky factor of the precision, offset) of a parameter vector:
    amplitude, n centre coordinates, the n log-diagonal then the lower off-diagonal entries of
    the factor, [offset]."""
    amplitude, center = p[0], p[1 : 1 + n]
    diag = p[1 + n : 1 + 2 * n]
    low = np.zeros((n, n))
    low[np.diag_indices(n)] = np.exp(diag)
    below = np.tril_indices(n, -1)
    k = 1 + 2 * n + len(below[0])
    low[below] = p[1 + 2 * n : k]
    offset = p[k] if with_offset else 0.0
    return amplitude, center, low, offset


def _model(p: np.ndarray, points: np.ndarray, with_offset: bool) -> np.ndarray:
    n = points.shape[0]
    amplitude, center, low, offset = _unpack(p, n, with_offset)
    z = low.T @ (points - center[:, None])  # precision = L Lᵀ: quadratic form = |Lᵀ (x - c)|²
    return offset + amplitude * np.exp(-0.5 * (z**2).sum(0))


def _start(m: np.ndarray, with_offset: bool) -> np.ndarray:
    """Starting parameters from the moments of the map above its floor."""
    n = m.ndim
    offset = float(m.min()) if with_offset else 0.0
    center = np.asarray(centre_of_mass(m - offset))
    sig = np.asarray(moment_sigmas(m - offset))
    if not (np.isfinite(center).all() and np.isfinite(sig).all()):
        center = (np.asarray(m.shape) - 1) / 2
        sig = np.asarray(m.shape) / 4
    sig = np.maximum(sig, 0.5)
    p = [float(m.max()) - offset, *center, *(-np.log(sig)), *[0.0] * (n * (n - 1) // 2)]
    return np.asarray(p + ([offset] if with_offset else []), dtype=np.float64)


def fit_gaussian_nd(m: Any, *, with_offset: bool = True) -> GaussianNDFit:
    """Least-squares fit of a Gaussian with a full covariance matrix (module docstring) to a
    map with any number of axes (``[L]``, ``[D, H, W]``; a 2-D map works too). The precision
    matrix is parametrised by its Cholesky factor, so the covariance is always positive
    definite. Never raises on bad maps: all-zero, constant, NaN/Inf or too-small maps give
    NaN parameters and ``degenerate`` set to the reason. R² = 1 - SS_res / SS_tot over all
    entries; the map is scaled to a peak of 1 for the fit and scaled back after."""
    m = np.asarray(m.map if isinstance(m, ERFResult) else m, dtype=np.float64)
    n = m.ndim
    reason = is_degenerate(m)
    n_params = 1 + 2 * n + n * (n - 1) // 2 + int(with_offset)
    if reason is None and m.size <= n_params:
        reason = f"too few entries ({m.size}) for {n_params} parameters"
    if reason is not None:
        return GaussianNDFit.failed(reason, n)
    scale = float(np.abs(m).max())
    z = (m / scale).ravel()
    points = np.indices(m.shape).reshape(n, -1).astype(np.float64)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = least_squares(
                lambda p: _model(p, points, with_offset) - z,
                _start(m / scale, with_offset),
                max_nfev=MAX_EVALUATIONS,
            )
    except (ValueError, np.linalg.LinAlgError):
        return GaussianNDFit.failed("fit did not converge", n)
    if not np.isfinite(fit.x).all() or fit.status <= 0:
        return GaussianNDFit.failed("fit did not converge", n)
    amplitude, center, low, offset = _unpack(fit.x, n, with_offset)
    covariance = np.linalg.inv(low @ low.T)
    ss_res = float((fit.fun**2).sum())
    ss_tot = float(((z - z.mean()) ** 2).sum())
    if ss_tot <= 0:
        return GaussianNDFit.failed("constant map", n)
    return GaussianNDFit(
        amplitude=float(amplitude) * scale,
        center=tuple(float(c) for c in center),
        covariance=tuple(tuple(float(v) for v in row) for row in covariance),
        offset=float(offset) * scale,
        r_squared=1.0 - ss_res / ss_tot,
        converged=True,
        degenerate=None,
    )


def fit_gaussian_1d(profile: Any, *, with_offset: bool = True) -> GaussianNDFit:
    """``fit_gaussian_nd`` of a profile ``[L]``: ``center[0]`` and ``sigmas[0]`` are the
    fitted centre and standard deviation (samples)."""
    profile = np.asarray(profile.map if isinstance(profile, ERFResult) else profile)
    if profile.ndim != 1:
        raise ValueError(f"expected a profile [L], got shape {profile.shape}")
    return fit_gaussian_nd(profile, with_offset=with_offset)


__all__ = [
    "GaussianNDFit",
    "as_nd_map",
    "centre_of_mass",
    "fit_gaussian_1d",
    "fit_gaussian_nd",
    "luo_axis_sizes",
    "luo_size_nd",
    "moment_sigmas",
    "nd_center",
]
