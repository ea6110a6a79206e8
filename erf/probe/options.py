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

from erf.nets.checks import MAX_BATCH, MAX_SAMPLES, check_int, is_integer
from erf.probe.layout import LAYOUTS, Grid, resolve_grid
from erf.result import REDUCTIONS

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
CROP_MODES = ("off", "auto", "on")
NONFINITE_MODES = ("skip", "raise")
SPEED_KEYS = ("fast", "channels_last", "compile", "crop")  # off unless asked for

# What "not set" means for each setting an engine may refuse (batch_size: only "auto" is).
_UNSET: dict[str, tuple[Any, ...]] = {
    "channel": (None,),
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

    ``n_samples`` inputs per unit, ``batch_size`` per forward/backward pass (or "auto"),
    ``channel`` (None: a unit gradient on every channel of the probed position), ``reduce``
    (``erf.result.REDUCTIONS``), ``inputs`` ("gaussian", "uniform" or an iterable of
    batches), ``device``, ``dtype`` (compute dtype; sums are float64), ``seed`` (random inputs
    are a pure function of (seed, sample index)), ``on_nonfinite`` ("skip" or "raise"),
    ``progress`` (None: a bar when there is more than one batch), ``checkpoint_every``
    (batches between partial results), and the speed settings ``fast``, ``channels_last``
    (None: on with ``fast``; stored resolved), ``compile`` and ``crop`` ("off", "auto", "on"),
    and how to read the target's output (``erf.probe.layout``): ``output`` (key or index of
    the tensor in a tuple/dict/dataclass output), ``layout`` ("auto", "NCHW", "NHWC",
    "tokens"), ``grid`` ((h, w) of a token sequence's patch grid) and ``prefix_tokens``.
    ``bootstrap_groups``: K sums of the per-sample map, sample ``i`` in group ``i % K``
    (``erf.analysis.bootstrap`` resamples them for intervals; 0 = none; fewer samples than K:
    one group per sample).

    Construction checks every value and raises one-line ``ValueError``s.
    """

    n_samples: int = 32
    batch_size: int | str = 16
    channel: int | None = None
    reduce: str = "abs"
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
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduce!r}; allowed: {list(REDUCTIONS)}")
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
        if self.fast and self.dtype != torch.float32:
            raise ValueError("fast mode autocasts a float32 model to bfloat16; use dtype=float32")
        resolved = {
            "n_samples": int(self.n_samples),
            "batch_size": "auto" if auto else int(self.batch_size),
            "channel": None if self.channel is None else int(self.channel),
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
        a one-line TypeError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown probe option(s) {unknown}; known: {sorted(known)}")
        return replace(options or cls(), **settings)

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


__all__ = ["CROP_MODES", "DTYPES", "ProbeOptions", "SPEED_KEYS", "source_name"]
