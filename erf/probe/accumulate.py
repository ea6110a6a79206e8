"""Float64 running sums of one probed unit, and the settings fingerprint a checkpoint must match
to be resumed."""

from __future__ import annotations

import math

import numpy as np
import torch

from erf import reductions
from erf.probe.layout import Grid, unit_in_input
from erf.probe.options import BATCHED_SEEDINGS, ProbeOptions
from erf.result import LEGACY_REDUCTIONS, ERFResult
from erf.settings import compared

# Settings that must match for a checkpoint to be resumed (they decide every sample's map).
FINGERPRINT_KEYS = ("input_shape", "target", "position", *compared(ProbeOptions))
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
    "bootstrap_groups": 0,  # no groups were kept
}


def group_count(bootstrap_groups: int, n_samples: int) -> int:
    """The number of bootstrap groups a run of ``n_samples`` keeps: ``bootstrap_groups``, or
    ``n_samples`` when there are fewer samples (one sample per group); 0 = none."""
    return max(0, min(int(bootstrap_groups), int(n_samples)))


def dead_warning(n_dead: int, n_used: int) -> str | None:
    """The probe warning (``meta["probe_warnings"]``) for inputs that gave an all-zero map,
    or None when there were none."""
    if not n_dead:
        return None
    return (
        f"{n_dead} of {n_used} inputs gave an all-zero map (a dead unit for those inputs); "
        "they count as zero maps in the mean"
    )


def _recorded(old: dict, key: str):
    """What a checkpoint's fingerprint ``old`` says for ``key``, reading older checkpoints as
    what they meant (no seeding: one channel when a channel was set, else every channel;
    reduce="signed_clamp": clamp_after_mean)."""
    if key == "seeding" and key not in old:
        return "all_channels" if old.get("channel") is None else "channel"
    if key == "reduce":
        return LEGACY_REDUCTIONS.get(old.get(key), old.get(key))
    return old.get(key, FINGERPRINT_DEFAULTS.get(key))


def _clamp_warning(
    total: np.ndarray, total_sq: np.ndarray, position, target_shape: tuple[int, ...]
) -> str | None:
    """clamp_after_mean: the pixels the unit's gradient reaches (some sample nonzero) whose mean
    is <= 0, so the clamped map is 0 there; None when there are none. Names the pixel under
    the unit when it is one of them (the grid-scale estimate of
    ``erf.probe.layout.unit_in_input``, and for the grid's centre unit also the map centre
    (H // 2, W // 2), where an exact TRF usually puts it): Luo's size, relative to the centre
    value, is then NaN while the map is not degenerate."""
    reached = total_sq > 0
    zeroed = reached & ~(total > 0)
    if not zeroed.any():
        return None
    sizes = total.shape
    candidates = []
    grid = tuple(target_shape[1:])
    where = None if len(grid) != len(sizes) else unit_in_input(position, grid, sizes)
    if where is not None:
        candidates.append(tuple(min(max(math.floor(v), 0), n - 1) for v, n in zip(where, sizes)))
        if tuple(position) == tuple(n // 2 for n in grid):
            candidates.append(tuple(n // 2 for n in sizes))
    hit = [
        "(" + ", ".join(map(str, p)) + ")" for p in dict.fromkeys(candidates) if zeroed[tuple(p)]
    ]
    centre = ""
    if hit:
        centre = (
            f", the pixel {' or '.join(hit)} under the probed unit among them (a size relative "
            "to the centre value there, Luo's, is NaN)"
        )
    return (
        f"reduce=clamp_after_mean: the mean gradient is <= 0 on {int(zeroed.sum())} of the "
        f"{int(reached.sum())} pixels the unit's gradient reaches, so the map is 0 there"
        f"{centre}; clamp_per_image (OpenERF) clamps each image instead"
    )


class Accumulator:
    """Float64 running sums of one unit on the probe's device (inside the crop window, if
    any), optionally restored from a checkpoint.

    Besides ``total`` and ``total_sq`` it keeps ``K`` bootstrap group sums (``groups``
    ``[K, h, w]``, ``group_n`` ``[K]``; ``K = group_count(fingerprint["bootstrap_groups"],
    fingerprint["n_samples"])``): sample ``i`` (its index in this run's sample stream,
    counting skipped non-finite samples) goes to group ``i % K``, and ``n_dead`` counts the
    samples whose map is exactly zero everywhere."""

    def __init__(self, fingerprint: dict, device: torch.device, resume: ERFResult | None):
        self.fingerprint = fingerprint
        self.total = self.total_sq = None
        self.n_used = self.n_nonfinite = self.seen = self.n_dead = 0
        self.n_groups = group_count(
            fingerprint.get("bootstrap_groups", 0), fingerprint.get("n_samples", 0)
        )
        self.groups: torch.Tensor | None = None
        self.group_n = np.zeros(self.n_groups, dtype=np.int64)
        self.position: tuple[int, int] | str | None = None
        self.seed_position: tuple[int, int] | str | None = None
        self.grid: Grid | None = None
        self.warnings: list[str] = []  # what makes this map suspect (meta["probe_warnings"])
        # why the map can only be rounding noise (meta["noise_only"]: no size is reported)
        self.noise_only: str | None = None
        self.seed_index: tuple | None = None
        self.target_shape: tuple[int, ...] = ()
        self.window: tuple[int, int, int, int] | None = None
        self.crop_meta: dict | None = None
        self.seeding: str = fingerprint.get("seeding", "all_channels")
        self.alive: torch.Tensor | None = None  # per_channel_normalised: channels seen alive
        self.dead_before: list[int] | None = None  # ... and those dead in a resumed checkpoint
        if resume is None:
            return
        if self.batched:
            self.dead_before = list(resume.meta.get("dead_channels", []))
        old = resume.meta.get("fingerprint", {})
        differ = [k for k in FINGERPRINT_KEYS if _recorded(old, k) != fingerprint[k]]
        if differ:
            changes = ", ".join(f"{k}: {_recorded(old, k)!r} -> {fingerprint[k]!r}" for k in differ)
            raise ValueError(f"checkpoint was made with other settings ({changes})")
        self.total = torch.as_tensor(resume.total, dtype=torch.float64, device=device)
        self.total_sq = torch.as_tensor(resume.total_sq, dtype=torch.float64, device=device)
        self.n_used, self.n_nonfinite = resume.n_samples, resume.n_nonfinite
        self.n_dead = int(resume.n_dead)
        self.seen = int(resume.meta["samples_seen"])
        if self.n_groups:
            if resume.groups is None or len(resume.groups) != self.n_groups:
                raise ValueError(
                    f"the checkpoint holds no {self.n_groups} bootstrap groups; resume with "
                    "the probe.bootstrap_groups it was made with"
                )
            self.groups = torch.as_tensor(resume.groups, dtype=torch.float64, device=device)
            self.group_n = np.asarray(resume.group_n, dtype=np.int64).copy()
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
        if self.batched and self.alive is None:
            self.alive = torch.zeros(grid.channels, dtype=torch.bool)
            if self.dead_before is not None:  # resumed: alive = every channel not dead so far
                self.alive[:] = True
                self.alive[self.dead_before] = False

    @property
    def batched(self) -> bool:
        """Whether the seeding needs one backward per channel (``seed(y, channels)``)."""
        return self.seeding in BATCHED_SEEDINGS

    def seed(self, y: torch.Tensor, channels: range | None = None) -> torch.Tensor:
        """The upstream gradient at the probed position of every sample of ``y`` (0 elsewhere),
        by ``seeding``: 1 on every channel (``all_channels``) or on the probed one
        (``channel``); 1/C on every channel (``channel_mean``, OpenERF); 1 on the channels whose
        value there is > 0, per sample (``relu_gated``, RepLKNet). For
        ``per_channel_normalised``, a batch of seeds ``[len(channels), *y.shape]``: seed j is 1
        on channel ``channels[j]`` only (default: every channel), for ``torch.autograd.grad(...,
        is_grads_batched=True)``. ``y``'s leading dims (batch, weight draws) are kept."""
        index = (Ellipsis, *self.seed_index)
        if self.batched:
            chans = range(self.grid.channels) if channels is None else channels
            seeds = y.new_zeros((len(chans), *y.shape))
            one_hot = torch.eye(self.grid.channels, dtype=y.dtype, device=y.device)
            lead = y.ndim - len(self.seed_index)  # batch dims before the sample's own dims
            shape = (len(chans), *([1] * lead), self.grid.channels)
            seeds[(slice(None), *index)] = one_hot[chans.start : chans.stop].view(shape)
            return seeds
        seed_grad = torch.zeros_like(y)
        if self.seeding == "channel_mean":
            seed_grad[index] = 1.0 / self.grid.channels
        elif self.seeding == "relu_gated":
            seed_grad[index] = (y.detach()[index] > 0).to(y.dtype)
        else:
            seed_grad[index] = 1
        return seed_grad

    def note_alive(self, alive: torch.Tensor) -> None:
        """per_channel_normalised: ``alive`` [C] marks the channels whose map was not all zero
        in some finite sample of a batch; the others stay counted as dead."""
        self.alive |= alive.to(self.alive.device)

    def seeding_meta(self, total: np.ndarray, total_sq: np.ndarray) -> tuple[dict, list[str]]:
        """What the seeding and reduction add to the result's meta (the full-input sums
        ``total``, ``total_sq``), and their warnings: the seeding, the map's normalisation (read
        by ``ERFResult.map``), the dead channels (``n_dead_channels``, ``dead_channels``) of
        per_channel_normalised, and clamp_after_mean's zeroed pixels (``_clamp_warning``)."""
        meta: dict = {
            "seeding": self.seeding,
            "normalise": self.fingerprint.get("normalise", "none"),
        }
        if self.alive is not None:
            dead = torch.nonzero(~self.alive).flatten().tolist()
            meta.update(n_dead_channels=len(dead), dead_channels=dead)
        warnings = []
        if reductions.is_signed(self.fingerprint["reduce"]) and self.n_used:
            warning = _clamp_warning(total, total_sq, self.position, self.target_shape)
            if warning:
                warnings.append(warning)
        return meta, warnings

    def set_window(self, window: tuple[int, int, int, int]) -> None:
        """Accumulate inside ``window`` (r0, r1, c0, c1) of the input from now on."""
        self.window = window
        r0, r1, c0, c1 = window
        if self.total is not None:  # resumed: keep the window of the sums
            self.total = self.total[r0 : r1 + 1, c0 : c1 + 1]
            self.total_sq = self.total_sq[r0 : r1 + 1, c0 : c1 + 1]
        if self.groups is not None:
            self.groups = self.groups[:, r0 : r1 + 1, c0 : c1 + 1]

    def add(self, per_sample: torch.Tensor, keep: torch.Tensor) -> None:
        """Add one batch: ``per_sample`` ``[B, h, w]`` float64 maps of the batch's samples in
        stream order (the next ``B`` sample indices from ``seen`` on), ``keep`` ``[B]`` bool:
        False for the samples skipped as non-finite (counted, never summed; their indices
        stay theirs, so the groups of the others do not shift)."""
        n_seen = per_sample.shape[0]
        kept = keep.cpu().numpy().astype(bool)
        maps = per_sample[keep]
        batch_sum, batch_sq = maps.sum(0), maps.square().sum(0)
        self.total = batch_sum if self.total is None else self.total + batch_sum
        self.total_sq = batch_sq if self.total_sq is None else self.total_sq + batch_sq
        self.n_used += maps.shape[0]
        self.n_nonfinite += int(n_seen - kept.sum())
        if maps.shape[0]:
            self.n_dead += int((maps == 0).flatten(1).all(1).sum())
        if self.n_groups:
            if self.groups is None:
                self.groups = maps.new_zeros((self.n_groups, *per_sample.shape[1:]))
            which = (self.seen + np.arange(n_seen))[kept] % self.n_groups
            # One [K, B] @ [B, h*w] product adds every sample to its group (one kernel, no
            # atomics: the same batches give bitwise the same sums, on resume too).
            member = np.zeros((self.n_groups, len(which)))
            member[which, np.arange(len(which))] = 1.0
            member_t = torch.from_numpy(member).to(device=maps.device, dtype=maps.dtype)
            self.groups += (member_t @ maps.flatten(1)).view(self.groups.shape)
            self.group_n += np.bincount(which, minlength=self.n_groups)
        self.seen += n_seen

    def _full(self, sums: torch.Tensor) -> np.ndarray:
        """Sums (``[..., h, w]``, in the crop window) as float64 numpy arrays over the input."""
        arr = sums.cpu().numpy().astype(np.float64)
        if self.window is None:
            return arr
        r0, r1, c0, c1 = self.window
        full = np.zeros((*arr.shape[:-2], *self.fingerprint["input_shape"][1:]), np.float64)
        full[..., r0 : r1 + 1, c0 : c1 + 1] = arr
        return full

    def result(self, extra: dict | None = None) -> ERFResult:
        total, total_sq = self._full(self.total), self._full(self.total_sq)
        groups = group_n = None
        if self.groups is not None:
            groups, group_n = self._full(self.groups), self.group_n.copy()
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
        seeding, seed_warnings = self.seeding_meta(total, total_sq)
        meta.update(seeding)
        dead = dead_warning(self.n_dead, self.n_used)
        warnings = [*self.warnings, *seed_warnings, *([dead] if dead else [])]
        if warnings:
            meta["probe_warnings"] = warnings
        if self.noise_only:
            meta["noise_only"] = self.noise_only
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
            groups=groups,
            group_n=group_n,
            n_dead=self.n_dead,
        )
