"""The one result type that flows from the probe to metrics, files and figures.

Pure numpy: no torch, no files. Maps are ``[H, W]`` float64 arrays in input pixel
coordinates, row-major, indexed (row, col).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# How each image's input gradient becomes its map (README "Reductions"): |g|, max(g, 0) and g²
# summed over input channels; clamp_after_mean: sum_c g, clamped only after averaging over
# images (``ERFResult.map``); clamp_per_image: max(mean_c g, 0) per image (OpenERF).
REDUCTIONS = ("abs", "relu", "clamp_after_mean", "clamp_per_image", "square")
LEGACY_REDUCTIONS = {"signed_clamp": "clamp_after_mean"}  # old names in saved results


@dataclass
class ERFResult:
    """An accumulated ERF measurement.

    ``total`` and ``total_sq`` are the float64 sums, over the ``n_samples`` probed inputs, of
    the per-sample map (the reduction of dy/dx summed over input channels) and of its square;
    they are what a resumed or distributed run adds up, and they give the standard error.

    Attributes:
        total: sum over samples of the per-sample map, ``[H, W]``.
        total_sq: sum over samples of the squared per-sample map, ``[H, W]``.
        n_samples: number of inputs that contributed (non-finite ones excluded).
        input_shape: probed input shape ``(C, H, W)``.
        target: module name that was probed, or ``None`` for the model output.
        target_shape: shape ``(C, h, w)`` of the target feature map (one sample).
        position: ``(row, col)`` of the probed unit in the target feature map.
        channel: probed channel, or ``None`` for a unit gradient on every channel.
        reduce: one of ``REDUCTIONS``.
        n_nonfinite: samples whose gradient held NaN/Inf and were skipped.
        meta: free-form provenance (device, dtype, seed, wall time, ...).
    """

    total: np.ndarray
    total_sq: np.ndarray
    n_samples: int
    input_shape: tuple[int, int, int]
    target: str | None
    target_shape: tuple[int, ...]
    position: tuple[int, int]
    channel: int | None
    reduce: str
    n_nonfinite: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        """Per-pixel mean of the per-sample map (before any clamp)."""
        if self.n_samples == 0:
            return np.full_like(self.total, np.nan)
        return self.total / self.n_samples

    @property
    def map(self) -> np.ndarray:
        """The ERF map ``[H, W]`` float64.

        For ``clamp_after_mean`` the signed mean is clamped at 0 *after* averaging over
        samples; every other reduction is already non-negative per sample (``clamp_per_image``,
        OpenERF's, clamps each sample's map). Results saved before the rename say
        ``signed_clamp`` (``LEGACY_REDUCTIONS``) and are read as what it meant. With
        ``meta["normalise"] == "sum"`` (``probe.normalise=sum``, OpenERF's) the map is scaled to
        sum 1 (a map that sums to 0 or NaN is left as it is); ``total``, ``mean`` and
        ``stderr`` stay unscaled.
        """
        m = self.mean
        if LEGACY_REDUCTIONS.get(self.reduce, self.reduce) == "clamp_after_mean":
            m = np.clip(m, 0.0, None)
        if self.meta.get("normalise") == "sum":
            mass = m.sum()
            if np.isfinite(mass) and mass > 0:
                m = m / mass
        return m

    @property
    def stderr(self) -> np.ndarray:
        """Per-pixel standard error of ``mean`` (sample std / sqrt(n)); NaN for n < 2."""
        n = self.n_samples
        if n < 2:
            return np.full_like(self.total, np.nan)
        var = (self.total_sq - self.total**2 / n) / (n - 1)
        return np.sqrt(np.clip(var, 0.0, None) / n)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the map."""
        return tuple(self.total.shape)  # type: ignore[return-value]

    def merged(self, other: ERFResult) -> ERFResult:
        """Sum of two measurements of the same probe (e.g. two shards of the samples)."""
        if (self.shape, self.target, self.position, self.channel, self.reduce) != (
            other.shape,
            other.target,
            other.position,
            other.channel,
            other.reduce,
        ):
            raise ValueError("cannot merge ERF results of different probes")
        return ERFResult(
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
            n_samples=self.n_samples + other.n_samples,
            input_shape=self.input_shape,
            target=self.target,
            target_shape=self.target_shape,
            position=self.position,
            channel=self.channel,
            reduce=self.reduce,
            n_nonfinite=self.n_nonfinite + other.n_nonfinite,
            meta=dict(self.meta),
        )
