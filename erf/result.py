"""The one result type that flows from the probe to metrics, files and figures.

Pure numpy: no torch, no files. Maps are ``[H, W]`` float64 arrays in input pixel
coordinates, row-major, indexed (row, col); a sequence model's map is ``[L]`` (index t) and a
volume model's ``[D, H, W]`` (index (d, h, w)), with one entry per spatial axis in every shape
and position below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from erf import reductions

# How each image's input gradient becomes its map: the registered reductions (``erf.reductions``)
# as they stood when this module was imported, and the old names saved results may carry.
REDUCTIONS = reductions.names()
LEGACY_REDUCTIONS = reductions.LEGACY_NAMES


@dataclass
class ERFResult:
    """An accumulated ERF measurement.

    ``total`` and ``total_sq`` are the float64 sums, over the ``n_samples`` probed inputs, of
    the per-sample map (the reduction of dy/dx summed over input channels) and of its square;
    they are what a resumed or distributed run adds up, and they give the standard error.

    Attributes:
        total: sum over samples of the per-sample map, ``[H, W]`` (``[L]``, ``[D, H, W]``).
        total_sq: sum over samples of the squared per-sample map, same shape.
        n_samples: number of inputs that contributed (non-finite ones excluded).
        input_shape: probed input shape ``(C, H, W)`` (``(C, L)``, ``(C, D, H, W)``).
        target: module name that was probed, or ``None`` for the model output.
        target_shape: shape ``(C, h, w)`` of the target feature map (one sample; ``(C, l)``,
            ``(C, d, h, w)``).
        position: ``(row, col)`` of the probed unit in the target feature map (``(t,)``,
            ``(d, h, w)``).
        channel: probed channel, or ``None`` for a unit gradient on every channel.
        reduce: one of ``REDUCTIONS``.
        n_nonfinite: samples whose gradient held NaN/Inf and were skipped.
        meta: free-form provenance (device, dtype, seed, wall time, ...).
        groups: ``[K, H, W]`` (``[K, *map shape]``) float64 sums of the per-sample map over
            the samples of each bootstrap group (sample ``i``, its index in the whole run, is
            in group ``i % K``), or None (``bootstrap_groups=0``, or a file written before
            groups existed).
            ``groups.sum(0)`` equals ``total`` up to summation order.
        group_n: ``[K]`` sample counts of the groups (None with ``groups``).
        n_dead: samples whose per-sample map was exactly zero everywhere (a dead unit for
            that input, e.g. one seeded ReLU channel that is off). They are counted in
            ``n_samples`` and added to the sums as zeros, which scales ``map`` by
            (n - n_dead) / n but leaves the map normalised to unit sum unchanged.
    """

    total: np.ndarray
    total_sq: np.ndarray
    n_samples: int
    input_shape: tuple[int, ...]
    target: str | None
    target_shape: tuple[int, ...]
    position: tuple[int, ...]
    channel: int | None
    reduce: str
    n_nonfinite: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    groups: np.ndarray | None = None
    group_n: np.ndarray | None = None
    n_dead: int = 0

    @property
    def mean(self) -> np.ndarray:
        """Per-pixel mean of the per-sample map (before any clamp)."""
        if self.n_samples == 0:
            return np.full_like(self.total, np.nan)
        return self.total / self.n_samples

    @property
    def map(self) -> np.ndarray:
        """The ERF map ``[H, W]`` float64 (``[L]``, ``[D, H, W]``).

        For ``clamp_after_mean`` the signed mean is clamped at 0 *after* averaging over
        samples; every other reduction is already non-negative per sample (``clamp_per_image``,
        OpenERF's, clamps each sample's map). Results saved before the rename say
        ``signed_clamp`` (``LEGACY_REDUCTIONS``) and are read as what it meant. With
        ``meta["normalise"] == "sum"`` (``probe.normalise=sum``, OpenERF's) the map is scaled to
        sum 1 (a map that sums to 0 or NaN is left as it is); ``total``, ``mean`` and
        ``stderr`` stay unscaled.
        """
        m = self.mean
        if reductions.is_signed(self.reduce):
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
    def shape(self) -> tuple[int, ...]:
        """``(H, W)`` of the map (``(L,)``, ``(D, H, W)``)."""
        return tuple(self.total.shape)

    @property
    def ndim(self) -> int:
        """Number of spatial axes of the map: 2 for images, 1 for sequences, 3 for volumes."""
        return self.total.ndim

    def merged(self, other: ERFResult) -> ERFResult:
        """Sum of two measurements of the same probe (e.g. two shards of the samples).

        The bootstrap groups add group by group (a shard's samples keep their run-wide
        indices, so group ``g`` of each part holds the samples ``i % K == g``); they are None
        when either part has none. Parts with different group counts are a ValueError."""
        if (self.shape, self.target, self.position, self.channel, self.reduce) != (
            other.shape,
            other.target,
            other.position,
            other.channel,
            other.reduce,
        ):
            raise ValueError("cannot merge ERF results of different probes")
        groups = group_n = None
        if self.groups is not None and other.groups is not None:
            if self.groups.shape != other.groups.shape:
                raise ValueError(
                    f"cannot merge {len(self.groups)} and {len(other.groups)} bootstrap groups: "
                    "measure both with the same probe.bootstrap_groups"
                )
            groups = self.groups + other.groups
            group_n = self.group_n + other.group_n
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
            groups=groups,
            group_n=group_n,
            n_dead=self.n_dead + other.n_dead,
        )
