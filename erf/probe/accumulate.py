"""Float64 running sums of one probed unit, and the settings fingerprint a checkpoint must match
to be resumed."""

from __future__ import annotations

import numpy as np
import torch

from erf.probe.layout import Grid, unit_in_input
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
    "layout",
    "grid",
    "prefix_tokens",
    "output",
)
# What a checkpoint written before a key existed meant by it.
FINGERPRINT_DEFAULTS = {
    "fast": False,
    "channels_last": False,
    "compile": False,
    "crop": "off",
    "layout": "auto",
    "grid": None,
    "prefix_tokens": None,
    "output": None,
}


class Accumulator:
    """Float64 running sums of one unit on the probe's device (inside the crop window, if
    any), optionally restored from a checkpoint."""

    def __init__(self, fingerprint: dict, device: torch.device, resume: ERFResult | None):
        self.fingerprint = fingerprint
        self.total = self.total_sq = None
        self.n_used = self.n_nonfinite = self.seen = 0
        self.position: tuple[int, int] | str | None = None
        self.seed_position: tuple[int, int] | str | None = None
        self.grid: Grid | None = None
        self.seed_index: tuple | None = None
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
        position = resume.position
        self.position = position if isinstance(position, str) else tuple(position)
        self.target_shape = tuple(resume.target_shape)
        self.seed_position = self.position

    def set_grid(self, grid: Grid) -> None:
        """First batch: the target's layout and grid (``erf.probe.layout``) decide where the
        unit gradient goes. Without a crop plan or a checkpoint, the position is resolved on
        the grid; with one, the grid must agree with the planned (or resumed) position."""
        self.grid = grid
        grid.check_channel(self.fingerprint["channel"])
        if self.window is not None and grid.layout != "NCHW":
            raise ValueError(f"crop needs a [B, C, H, W] target; the target is {grid.layout}")
        if self.position is None:
            self.target_shape = grid.shape
            self.position = self.seed_position = grid.position(self.fingerprint["position"])
        elif self.window is None and grid.position(self.position) != self.position:
            raise ValueError(f"the resumed position {self.position} is not on this target grid")
        self.seed_index = grid.index(self.seed_position, self.fingerprint["channel"])

    def seed(self, y: torch.Tensor) -> torch.Tensor:
        """The upstream gradient: 1 at the probed unit of every sample of ``y``, else 0."""
        seed_grad = torch.zeros_like(y)
        seed_grad[(Ellipsis, *self.seed_index)] = 1
        return seed_grad

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
        if self.grid is not None:
            meta.update(self.grid.describe(), grid=list(self.target_shape[1:]))
            where = unit_in_input(
                self.position, self.target_shape[1:], tuple(fp["input_shape"][1:])
            )
            meta["unit_in_input"] = None if where is None else [round(v, 3) for v in where]
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
