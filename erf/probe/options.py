"""How to probe: the one options type that every probe engine takes.

``ProbeOptions`` holds every setting of a measurement except the model, the probed units
(target module and position) and the run's callbacks (resume, checkpoint, stop requests). The
plain probe (``measure_erf``, ``measure_erfs``), the many-draws probe, the sharded probe, the
benchmark and the training job all take one; an engine that cannot honour a setting refuses it
in one line (``ProbeOptions.refuse``) instead of dropping it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from erf.checks import MAX_BATCH, MAX_SAMPLES, check_int, is_integer
from erf.probe.layout import LAYOUTS, Grid, resolve_grid
from erf.result import REDUCTIONS

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
CROP_MODES = ("off", "auto", "on")
NONFINITE_MODES = ("skip", "raise")
SPEED_KEYS = ("fast", "channels_last", "compile", "crop")  # off unless asked for

# How the probed unit is seeded (the upstream gradient at the probed position; README "Unit
# seeding and peer protocols"): 1 on every channel; 1 on ``channel`` only; 1/C on every channel
# (OpenERF); 1 on the channels whose value is > 0, per image (RepLKNet); one backward per
# channel, each channel's map scaled to sum 1 and averaged over the live channels.
SEEDINGS = ("all_channels", "channel", "channel_mean", "relu_gated", "per_channel_normalised")
# Seedings that need one backward pass per channel of the target (engines may refuse them).
BATCHED_SEEDINGS = ("per_channel_normalised",)
# How the result's map is scaled (``ERFResult.map``): as measured, or to sum 1 (OpenERF's).
NORMALISE_MODES = ("none", "sum")
# Reductions whose per-image map can be negative: a sum-to-1 scaling of it means nothing.
SIGNED_REDUCTIONS = ("clamp_after_mean",)

# The peers' protocols as measure_erf keywords (``measure_erf(model, shape, **PRESETS[name])``:
# ProbeOptions fields, and the probed position where the peer picks another unit than erf); the
# config presets ``probe=openerf`` / ``probe=replknet`` set the same values.
PRESETS: dict[str, dict[str, Any]] = {
    # OpenERF 0.6.1: d(channel mean at the centre)/dx, averaged over input channels, clamped
    # at 0 per image, summed over images (then scaled to sum 1: our metrics are scale-free).
    # Its unit on a token grid is the upper-left of the middle four (token (6, 6) of 14 x 14).
    "openerf": {
        "seeding": "channel_mean",
        "reduce": "clamp_per_image",
        "normalise": "sum",
        "position": "openerf_center",
    },
    # RepLKNet (erf/visualize_erf.py): d(sum of relu(centre))/dx, relu per image, summed over
    # input channels and images; 50 real images resized to 1024 x 1024 (inputs: set by the
    # caller).
    "replknet": {"seeding": "relu_gated", "reduce": "relu", "n_samples": 50},
}

# What "not set" means for each setting an engine may refuse (batch_size: only "auto" is).
_UNSET: dict[str, tuple[Any, ...]] = {
    "channel": (None,),
    "seeding": ("all_channels", "channel"),  # "channel" comes with `channel`, refused as such
    "normalise": ("none",),
    "inputs": ("gaussian",),
    "dtype": (torch.float32,),
    "on_nonfinite": ("skip",),
    "checkpoint_every": (10,),
    "fast": (False,),
    "channels_last": (False,),
    "compile": (False,),
    "crop": ("off",),
    "layout": ("auto",),
    "grid": (None,),
    "prefix_tokens": (None,),
    "output": (None,),
}
MAX_BOOTSTRAP_GROUPS = 1024  # each group is one more [H, W] float64 sum on the device


@dataclass(frozen=True)
class ProbeOptions:
    """Settings of one measurement (``erf.measure_erf`` documents each).

    ``n_samples`` inputs per unit, ``batch_size`` per forward/backward pass (or "auto"), ``channel``
    (None: a unit gradient on every channel of the probed position), ``seeding`` (``SEEDINGS``;
    None: "channel" when ``channel`` is set, else "all_channels"; stored resolved), ``normalise``
    ("none", or "sum": the map scaled to sum 1, OpenERF's; only ``ERFResult.map`` changes, not the
    sums), ``reduce`` (``erf.result.REDUCTIONS``), ``inputs`` ("gaussian", "uniform" or an iterable
    of batches), ``device``, ``dtype`` (compute dtype; sums are float64), ``seed`` (random inputs
    are a pure function of (seed, sample index)), ``on_nonfinite`` ("skip" or "raise"), ``progress``
    (None: a bar when there is more than one batch), ``checkpoint_every`` (batches between partial
    results), and the speed settings ``fast``, ``channels_last`` (None: on with ``fast``; stored
    resolved), ``compile`` and ``crop`` ("off", "auto", "on"), and how to read the target's output
    (``erf.probe.layout``): ``output`` (key or index of the tensor in a tuple/dict/dataclass
    output), ``layout`` ("auto", "NCHW", "NHWC", "tokens"), ``grid`` ((h, w) of a token sequence's
    patch grid) and ``prefix_tokens``.
    ``bootstrap_groups``: K sums of the per-sample map, sample ``i`` in group ``i % K``
    (``erf.analysis.bootstrap`` resamples them for intervals; 0 = none; fewer samples than K:
    one group per sample).

    Construction checks every value and raises one-line ``ValueError``s.
    """

    n_samples: int = 32
    batch_size: int | str = 16
    channel: int | None = None
    reduce: str = "abs"
    seeding: str | None = None
    normalise: str = "none"
    inputs: str | Iterable = "gaussian"
    device: str | torch.device = "auto"
    dtype: torch.dtype = torch.float32
    seed: int = 0
    on_nonfinite: str = "skip"
    progress: bool | None = None
    checkpoint_every: int = 10
    fast: bool = False
    channels_last: bool | None = None
    compile: bool = False
    crop: str = "off"
    layout: str = "auto"
    grid: tuple[int, int] | None = None
    prefix_tokens: int | None = None
    output: str | int | None = None
    bootstrap_groups: int = 16

    def __post_init__(self) -> None:
        problem = seeding_problem(self.reduce, self.seeding, self.channel)
        if problem:
            raise ValueError(problem)
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduce!r}; allowed: {list(REDUCTIONS)}")
        if self.normalise not in NORMALISE_MODES:
            raise ValueError(f"normalise must be 'none' or 'sum', got {self.normalise!r}")
        if self.on_nonfinite not in NONFINITE_MODES:
            raise ValueError(f"on_nonfinite must be 'skip' or 'raise', got {self.on_nonfinite!r}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {list(CROP_MODES)}, got {self.crop!r}")
        auto = self.batch_size == "auto"
        bad_batch = not auto and (not is_integer(self.batch_size) or int(self.batch_size) < 1)
        if not is_integer(self.n_samples) or int(self.n_samples) < 1 or bad_batch:
            raise ValueError(
                f"n_samples must be >= 1 and batch_size >= 1 or 'auto', got {self.n_samples}, "
                f"{self.batch_size}"
            )
        check_int("n_samples", self.n_samples, 1, MAX_SAMPLES)
        if not auto:
            check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_int("seed", self.seed, 0)
        check_int("bootstrap_groups", self.bootstrap_groups, 0, MAX_BOOTSTRAP_GROUPS)
        if self.channel is not None:
            check_int("channel", self.channel, 0)
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {self.layout!r}")
        grid = None if self.grid is None else tuple(int(v) for v in self.grid)
        if grid is not None and (len(grid) != 2 or min(grid) < 1):
            raise ValueError(f"grid must be (h, w) with positive sizes, got {self.grid}")
        if self.prefix_tokens is not None and int(self.prefix_tokens) < 0:
            raise ValueError(f"prefix_tokens must be >= 0, got {self.prefix_tokens}")
        for name in ("fast", "channels_last", "compile"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (name == "channels_last" and value is None)):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if self.fast and self.dtype != torch.float32:
            raise ValueError("fast mode autocasts a float32 model to bfloat16; use dtype=float32")
        resolved = {
            "n_samples": int(self.n_samples),
            "batch_size": "auto" if auto else int(self.batch_size),
            "channel": None if self.channel is None else int(self.channel),
            "seeding": self.seeding or ("all_channels" if self.channel is None else "channel"),
            "seed": int(self.seed),
            "checkpoint_every": int(self.checkpoint_every),
            "fast": bool(self.fast),
            "channels_last": bool(self.fast if self.channels_last is None else self.channels_last),
            "compile": bool(self.compile),
            "grid": grid,
            "prefix_tokens": None if self.prefix_tokens is None else int(self.prefix_tokens),
            "output": self.output if self.output is None else str(self.output),
            "bootstrap_groups": int(self.bootstrap_groups),
        }
        for key, value in resolved.items():
            object.__setattr__(self, key, value)

    @classmethod
    def of(cls, options: ProbeOptions | None = None, **settings: Any) -> ProbeOptions:
        """``options`` (default: all defaults) with ``settings`` replaced; an unknown setting is
        a one-line TypeError naming it. A new ``channel`` without a ``seeding`` re-derives the
        seeding when it was the channel's default (all_channels or channel)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown probe option(s) {unknown}; known: {sorted(known)}")
        base = options or cls()
        rederive = base.seeding in ("all_channels", "channel") and "seeding" not in settings
        if "channel" in settings and rederive:
            settings = {**settings, "seeding": None}
        return replace(base, **settings)

    @classmethod
    def among(cls, arguments: dict[str, Any]) -> ProbeOptions:
        """The options among a probe function's arguments (its ``locals()``), so that a public
        function whose signature spells the settings out builds them in one line."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})

    @property
    def auto_batch(self) -> bool:
        """batch_size="auto": the largest batch that fits, halved on out-of-memory errors."""
        return self.batch_size == "auto"

    def is_set(self, key: str) -> bool:
        """Whether setting ``key`` asks for something beyond the plain probe (batch_size: only
        "auto" does; others: any value but the default)."""
        if key == "batch_size":
            return self.auto_batch
        return getattr(self, key) not in _UNSET[key]

    def refuse(self, keys: Sequence[str], job: str, prefix: str = "") -> None:
        """ValueError naming every setting among ``keys`` that is set (``is_set``), for a
        ``job`` that cannot honour it: nothing is silently dropped. ``prefix`` names the
        settings as the caller knows them (``probe.`` for config keys)."""
        used = [k for k in keys if self.is_set(k)]
        if used:
            shown = ", ".join(prefix + _shown(k, getattr(self, k)) for k in used)
            raise ValueError(f"{shown} does not combine with {job}")

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide every sample's map (a checkpoint made with other values
        cannot be resumed); the unit's target and position are added by the engine."""
        inputs = source_name(self.inputs)
        return {
            "n_samples": self.n_samples,
            "batch_size": self.batch_size,
            "channel": self.channel,
            "seeding": self.seeding,
            "normalise": self.normalise,  # recorded, not compared: it scales the map only
            "reduce": self.reduce,
            "inputs": inputs,
            "dtype": str(self.dtype).replace("torch.", ""),
            "seed": self.seed,
            "fast": self.fast,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "crop": self.crop,
            "layout": self.layout,
            "grid": None if self.grid is None else list(self.grid),
            "prefix_tokens": self.prefix_tokens,
            "output": self.output,
            "bootstrap_groups": self.bootstrap_groups,
        }

    def read_grid(self, y: torch.Tensor, input_hw: tuple[int, int], **evidence: Any) -> Grid:
        """``erf.probe.layout.resolve_grid`` of ``y`` with these options' layout settings;
        ``evidence``: ``where``, ``module``, ``model``, ``graph_dims``."""
        return resolve_grid(
            y, input_hw, layout=self.layout, grid=self.grid, prefix_tokens=self.prefix_tokens,
            **evidence,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (for logging and records; values as they are, not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def seeding_problem(reduce: Any, seeding: Any, channel: Any, prefix: str = "") -> str | None:
    """The one-line reason why ``reduce`` / ``seeding`` / ``channel`` do not go together, or
    None (other bad values are left to the checks of each setting). ``prefix`` names the
    settings as the caller knows them (``probe.`` for config keys)."""
    if reduce == "signed_clamp":
        return (
            f"{prefix}reduce=signed_clamp was renamed: use {prefix}reduce=clamp_after_mean (its "
            f"meaning: the signed mean over images, clamped at 0 afterwards) or "
            f"{prefix}reduce=clamp_per_image (OpenERF: each image's map clamped at 0)"
        )
    if seeding is None:
        return None
    if seeding not in SEEDINGS:
        return f"{prefix}seeding={seeding} is not known; choose one of {', '.join(SEEDINGS)}"
    if seeding == "channel" and channel is None:
        return f"{prefix}seeding=channel needs {prefix}channel=K (the channel to seed)"
    if seeding != "channel" and channel is not None:
        return (
            f"{prefix}channel={channel} seeds one channel: it needs {prefix}seeding=channel "
            f"(or null), not {prefix}seeding={seeding}"
        )
    if seeding in BATCHED_SEEDINGS and reduce in SIGNED_REDUCTIONS:
        return (
            f"{prefix}seeding={seeding} scales each channel's map to sum 1, which needs a "
            f"non-negative map: {prefix}reduce={reduce} is signed; use abs, relu, square or "
            "clamp_per_image"
        )
    return None


def source_name(inputs: Any) -> str:
    """How an input source is recorded in a fingerprint: a random source by name, a seeded
    source (a frozen dataclass such as ``PhotoSource``) by its full settings (photos,
    normalisation), so a checkpoint made with other inputs is refused; other iterables by
    their type (a DataLoader's order is its own)."""
    if isinstance(inputs, str):
        return inputs
    if dataclasses.is_dataclass(inputs) and not isinstance(inputs, type):
        return repr(inputs)
    return type(inputs).__name__


def _shown(key: str, value: Any) -> str:
    return key if isinstance(value, bool) else f"{key}={value}"


__all__ = [
    "BATCHED_SEEDINGS",
    "CROP_MODES",
    "DTYPES",
    "NORMALISE_MODES",
    "PRESETS",
    "ProbeOptions",
    "SEEDINGS",
    "SPEED_KEYS",
    "seeding_problem",
    "source_name",
]
