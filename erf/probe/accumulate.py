"""Float64 running sums of one probed unit, and the settings fingerprint a checkpoint must match
to be resumed."""

from __future__ import annotations

import numpy as np
import torch

from erf.probe.units import check_feature_map, resolve_position
from erf.result import ERFResult

# Settings that must match for a checkpoint to be resumed (they decide every sample's map).
FINGERPRINT_KEYS = (
    "input_shape",
    "n_samples",
    "batch_size",
    "target",
    "position",
    "channel",
    "reduce",
    "inputs",
    "dtype",
    "seed",
    "fast",
    "channels_last",
    "compile",
    "crop",
)
# What a checkpoint written before a key existed meant by it.
FINGERPRINT_DEFAULTS = {"fast": False, "channels_last": False, "compile": False, "crop": "off"}


class Accumulator:
    """Float64 running sums of one unit on the probe's device (inside the crop window, if
    any), optionally restored from a checkpoint."""

    def __init__(self, fingerprint: dict, device: torch.device, resume: ERFResult | None):
        self.fingerprint = fingerprint
        self.total = self.total_sq = None
        self.n_used = self.n_nonfinite = self.seen = 0
        self.position: tuple[int, int] | None = None
        self.seed_position: tuple[int, int] | None = None
        self.target_shape: tuple[int, ...] = ()
        self.window: tuple[int, int, int, int] | None = None
        self.crop_meta: dict | None = None
        if resume is None:
            return
        old = resume.meta.get("fingerprint", {})
        differ = [
            k for k in FINGERPRINT_KEYS if old.get(k, FINGERPRINT_DEFAULTS.get(k)) != fingerprint[k]
        ]
        if differ:
            changes = ", ".join(
                f"{k}: {old.get(k, FINGERPRINT_DEFAULTS.get(k))!r} -> {fingerprint[k]!r}"
                for k in differ
            )
            raise ValueError(f"checkpoint was made with other settings ({changes})")
        self.total = torch.as_tensor(resume.total, dtype=torch.float64, device=device)
        self.total_sq = torch.as_tensor(resume.total_sq, dtype=torch.float64, device=device)
        self.n_used, self.n_nonfinite = resume.n_samples, resume.n_nonfinite
        self.seen = int(resume.meta["samples_seen"])
        self.position, self.target_shape = tuple(resume.position), tuple(resume.target_shape)
        self.seed_position = self.position

    def set_target(self, y: torch.Tensor, where: str) -> None:
        """First batch without a crop plan: check the target map, resolve the position."""
        check_feature_map(y, where)
        self.target_shape = tuple(y.shape[1:])
        position = self.fingerprint["position"]
        self.position = resolve_position(position, y.shape[2], y.shape[3])
        self.seed_position = self.position
        channel = self.fingerprint["channel"]
        if channel is not None and not 0 <= channel < y.shape[1]:
            raise ValueError(f"channel {channel} is outside 0..{y.shape[1] - 1}")

    def set_window(self, window: tuple[int, int, int, int]) -> None:
        """Accumulate inside ``window`` (r0, r1, c0, c1) of the input from now on."""
        self.window = window
        r0, r1, c0, c1 = window
        if self.total is not None:  # resumed: keep the window of the sums
            self.total = self.total[r0 : r1 + 1, c0 : c1 + 1]
            self.total_sq = self.total_sq[r0 : r1 + 1, c0 : c1 + 1]

    def add(self, per_sample: torch.Tensor, n_bad: int, n_seen: int) -> None:
        batch_sum, batch_sq = per_sample.sum(0), per_sample.square().sum(0)
        self.total = batch_sum if self.total is None else self.total + batch_sum
        self.total_sq = batch_sq if self.total_sq is None else self.total_sq + batch_sq
        self.n_used += per_sample.shape[0]
        self.n_nonfinite += n_bad
        self.seen += n_seen

    def _full(self, sums: torch.Tensor) -> np.ndarray:
        arr = sums.cpu().numpy().astype(np.float64)
        if self.window is None:
            return arr
        r0, r1, c0, c1 = self.window
        full = np.zeros(tuple(self.fingerprint["input_shape"][1:]), dtype=np.float64)
        full[r0 : r1 + 1, c0 : c1 + 1] = arr
        return full

    def result(self, extra: dict | None = None) -> ERFResult:
        total, total_sq = self._full(self.total), self._full(self.total_sq)
        fp = self.fingerprint
        meta = {
            "fingerprint": dict(fp),
            "samples_seen": self.seen,
            "dtype": fp["dtype"],
            "seed": fp["seed"],
            "inputs": fp["inputs"],
            **(extra or {}),
        }
        if self.crop_meta is not None:
            meta["crop"] = self.crop_meta
        return ERFResult(
            total=total,
            total_sq=total_sq,
            n_samples=self.n_used,
            input_shape=tuple(fp["input_shape"]),
            target=fp["target"],
            target_shape=self.target_shape,
            position=self.position,
            channel=fp["channel"],
            reduce=fp["reduce"],
            n_nonfinite=self.n_nonfinite,
            meta=meta,
        )
