"""Elliptical, rotated 2-D Gaussian fit of an ERF map. Pure numpy/scipy, no torch.

Model, in pixels, with x = column axis and y = row axis (pointing down):

    f(row, col) = offset + A * exp(-0.5 * (a**2 / sigma_x**2 + b**2 / sigma_y**2))
    a =  (x - cx) * cos(t) + (y - cy) * sin(t)
    b = -(x - cx) * sin(t) + (y - cy) * cos(t)

so ``sigma_x`` is the standard deviation along the principal direction (cos t, sin t) in
(x=col, y=row) coordinates and ``sigma_y`` along the orthogonal one. The reported rotation t is
normalised to |t| <= pi/4: ``sigma_x`` is the axis nearest the column axis (it need not be the
larger one). A positive t turns the sigma_x axis from +col towards +row (clockwise on screen).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from erf.analysis.metrics import as_map, center_of_mass, is_degenerate, moment_sigma

MAXFEV = 5000
NAN = float("nan")


@dataclass(frozen=True)
class GaussianFit:
    """Result of :func:`fit_gaussian`. Lengths in pixels, rotation in radians.

    ``degenerate`` is None for a usable fit, else the reason the parameters are NaN.
    """

    amplitude: float
    center_row: float
    center_col: float
    sigma_x: float
    sigma_y: float
    rotation: float
    offset: float
    r_squared: float
    converged: bool
    degenerate: str | None

    @property
    def center(self) -> tuple[float, float]:
        """Fitted centre (row, col) in pixels."""
        return self.center_row, self.center_col

    @property
    def sigma(self) -> float:
        """Geometric mean sqrt(sigma_x * sigma_y) in pixels."""
        return math.sqrt(self.sigma_x * self.sigma_y)

    def to_dict(self) -> dict:
        """Plain-Python dict (floats, bool, str/None); NaN stays float nan."""
        return asdict(self)

    @classmethod
    def failed(cls, reason: str) -> GaussianFit:
        return cls(NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, False, reason)


def gaussian2d(rc, amplitude, center_row, center_col, sigma_x, sigma_y, rotation, offset=0.0):
    """The model above at points ``rc`` = (rows, cols) (arrays of equal shape)."""
    dx, dy = rc[1] - center_col, rc[0] - center_row
    cos, sin = np.cos(rotation), np.sin(rotation)
    a = dx * cos + dy * sin
    b = -dx * sin + dy * cos
    return offset + amplitude * np.exp(-0.5 * ((a / sigma_x) ** 2 + (b / sigma_y) ** 2))


def _normalise_axes(sx: float, sy: float, t: float) -> tuple[float, float, float]:
    """Make sigmas positive, t in (-pi/2, pi/2], then |t| <= pi/4 by swapping axes."""
    sx, sy = abs(sx), abs(sy)
    t = math.pi / 2 - (math.pi / 2 - t) % math.pi  # (-pi/2, pi/2]
    if t > math.pi / 4:
        sx, sy, t = sy, sx, t - math.pi / 2
    elif t < -math.pi / 4:
        sx, sy, t = sy, sx, t + math.pi / 2
    return sx, sy, t


def _initial_guess(m: np.ndarray, with_offset: bool) -> list[float]:
    """Amplitude, centre, axes and angle from the moments of the map above its floor."""
    h, w = m.shape
    offset = float(m.min()) if with_offset else 0.0
    mass = m - offset
    r0, c0 = center_of_mass(mass)
    sr, sc = moment_sigma(mass)
    if not all(np.isfinite([r0, c0, sr, sc])):  # e.g. no positive mass without offset
        r0, c0, sr, sc = (h - 1) / 2, (w - 1) / 2, h / 4, w / 4
    wts = np.clip(mass, 0.0, None)
    rows, cols = np.indices(m.shape)
    cxy = (wts * (rows - r0) * (cols - c0)).sum() / max(wts.sum(), 1e-300)
    cxx, cyy = sc**2, sr**2
    t = 0.5 * math.atan2(2 * cxy, cxx - cyy)
    cos, sin = math.cos(t), math.sin(t)
    vx = cxx * cos**2 + 2 * cxy * sin * cos + cyy * sin**2
    vy = cxx * sin**2 - 2 * cxy * sin * cos + cyy * cos**2
    sx, sy = math.sqrt(max(vx, 0.25)), math.sqrt(max(vy, 0.25))
    p0 = [float(m.max()) - offset, r0, c0, sx, sy, t]
    return p0 + [offset] if with_offset else p0


def _warm(start: GaussianFit, scale: float) -> list[float]:
    """``start``'s parameters as a starting point for a map scaled by 1 / ``scale``."""
    return [
        start.amplitude / scale, start.center_row, start.center_col, start.sigma_x,
        start.sigma_y, start.rotation, start.offset / scale,
    ]  # fmt: skip


def fit_gaussian(m, *, with_offset: bool = True, start: GaussianFit | None = None) -> GaussianFit:
    """Least-squares fit of a rotated elliptical 2-D Gaussian (see module docstring).

    ``m`` is an ``[H, W]`` map indexed (row, col). Never raises on bad maps: all-zero, constant,
    NaN/Inf-containing or too-small maps give NaN parameters, ``converged=False`` and
    ``degenerate`` set to the reason; an optimiser failure gives "fit did not converge".
    R² = 1 - SS_res / SS_tot over all pixels. Without offset, ``offset`` is reported as 0.
    ``start``: a fit of a similar map (a bootstrap replicate's full-map fit) to start from
    instead of the moments (a warm start: fewer iterations, the same optimum); a failed
    ``start`` (``degenerate`` set) is ignored.
    """
    m = as_map(m)
    reason = is_degenerate(m)
    n_params = 7 if with_offset else 6
    if reason is None and m.size <= n_params:
        reason = f"too few pixels ({m.size}) for {n_params} parameters"
    if reason is not None:
        return GaussianFit.failed(reason)

    # Fit the map scaled to a peak of 1: a 1e-170 map (a deep float64 sigmoid stack) would
    # underflow in the squares of R² and a 1e200 map overflow; the fit is scale-free, so
    # amplitude and offset are scaled back afterwards.
    scale = float(np.abs(m).max())
    m = m / scale
    rows, cols = np.indices(m.shape)
    rc = np.stack([rows.ravel(), cols.ravel()]).astype(np.float64)
    z = m.ravel()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            warm = start is not None and start.degenerate is None
            p0 = _warm(start, scale) if warm else _initial_guess(m, with_offset)
            p, _ = curve_fit(gaussian2d, rc, z, p0=p0[: 7 if with_offset else 6], maxfev=MAXFEV)
    except (RuntimeError, ValueError, TypeError, np.linalg.LinAlgError):
        return GaussianFit.failed("fit did not converge")
    if not np.isfinite(p).all() or p[3] == 0 or p[4] == 0:
        return GaussianFit.failed("fit did not converge")

    amplitude, r0, c0, sx, sy, t = (float(v) for v in p[:6])
    offset = float(p[6]) if with_offset else 0.0
    sx, sy, t = _normalise_axes(sx, sy, t)
    with np.errstate(all="ignore"):
        ss_res = float(((z - gaussian2d(rc, *p)) ** 2).sum())
        ss_tot = float(((z - z.mean()) ** 2).sum())
    if not (np.isfinite(ss_res) and np.isfinite(ss_tot)) or ss_tot <= 0:
        return GaussianFit.failed("constant map")  # no variance left to explain
    r2 = 1.0 - ss_res / ss_tot
    return GaussianFit(amplitude * scale, r0, c0, sx, sy, t, offset * scale, r2, True, None)
