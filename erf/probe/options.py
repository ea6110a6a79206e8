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

from erf import reductions
from erf.checks import (
    MAX_BATCH,
    MAX_SAMPLES,
    boolean,
    choice,
    int_at_least,
    int_between,
    optional,
    pair_of,
)
from erf.probe.layout import LAYOUTS, Grid, resolve_grid
from erf.settings import IGNORED, JOB, RECORDED, check_fields, is_unset, setting, settings_of
from erf.settings import fingerprint as settings_fingerprint
from erf.settings import from_config as settings_from_config

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
CROP_MODES = ("off", "auto", "on")
NONFINITE_MODES = ("skip", "raise")
SPEED_KEYS = ("fast", "channels_last", "compile", "crop")  # off unless asked for

# How the probed unit is seeded (the upstream gradient at the probed position; docs/concepts.md,
# "Unit seeding and peer protocols"): 1 on every channel; 1 on ``channel`` only; 1/C on every
# channel (OpenERF); 1 on the channels whose value is > 0, per image (RepLKNet); one backward
# per channel, each channel's map scaled to sum 1 and averaged over the live channels.
SEEDINGS = ("all_channels", "channel", "channel_mean", "relu_gated", "per_channel_normalised")
# Seedings that need one backward pass per channel of the target (engines may refuse them).
BATCHED_SEEDINGS = ("per_channel_normalised",)
# How the result's map is scaled (``ERFResult.map``): as measured, or to sum 1 (OpenERF's).
NORMALISE_MODES = ("none", "sum")

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

MAX_BOOTSTRAP_GROUPS = 1024  # each group is one more [H, W] float64 sum on the device


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


def _dtype_name(dtype: Any) -> Any:
    return str(dtype).replace("torch.", "") if isinstance(dtype, torch.dtype) else dtype


def _dtype(value: Any) -> Any:
    return DTYPES.get(value, value) if isinstance(value, str) else value


def _crop_mode(value: Any) -> Any:
    """YAML reads a bare off/on as false/true."""
    return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value


def _pair(value: Any) -> Any:
    return None if value is None else tuple(int(v) for v in value)


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _output_key(value: Any) -> Any:
    return value if value is None else str(value)


def _is_key_or_index(v: Any) -> bool:
    return v is None or (isinstance(v, (str, int)) and not isinstance(v, bool))


def _is_batch_size(v: Any) -> bool:
    return v == "auto" or int_between(1, MAX_BATCH)[0](v)


def _is_source(v: Any) -> bool:
    return v in ("gaussian", "uniform") if isinstance(v, str) else v is not None


@dataclass(frozen=True)
class ProbeOptions:
    """Settings of one measurement: each field is declared once, with its default, the values
    it allows, its help text and how it enters the resume fingerprint (``erf.settings``); the
    config keys ``probe.*``, their validation, the shipped ``probe/default.yaml`` and the
    configuration reference are derived from these declarations
    (``erf.settings.reference_markdown("probe.", ProbeOptions)`` prints the reference).

    Construction checks every value against its rule and raises one-line ``ValueError``s; a
    config form is read as what it means (``dtype="float64"``, ``crop=True``: "on", ``grid``
    as a tuple). ``seeding=None`` is stored resolved ("channel" when ``channel`` is set, else
    "all_channels"), and so is ``channels_last=None`` (on with ``fast``).
    """

    n_samples: int = setting(
        32, int_between(1, MAX_SAMPLES), "inputs averaged over", config_default=64
    )
    batch_size: int | str = setting(
        16,
        (_is_batch_size, f"an integer >= 1 or auto (at most {MAX_BATCH})"),
        "inputs per forward/backward pass, or auto (the largest that fits; halved on OOM)",
        unset=lambda v: v != "auto",
    )
    output: str | int | None = setting(
        None,
        (_is_key_or_index, "null, a key or an index"),
        "the tensor to probe when the target returns a tuple/list/dict/dataclass: a key or "
        "index (e.g. out, 0)",
        from_config=_output_key,
    )
    layout: str = setting(
        "auto", choice(LAYOUTS), "how to read the target tensor (auto refuses ambiguous shapes)"
    )
    grid: tuple[int, int] | None = setting(
        None,
        optional(pair_of(int_at_least(1))),
        "[h, w] patch grid of a token sequence [B, N, C] (null: from the model / the input)",
        to_config=_listed,
        from_config=_pair,
    )
    prefix_tokens: int | None = setting(
        None,
        optional(int_at_least(0)),
        "class/distillation/register tokens before the patch tokens (null: "
        "model.num_prefix_tokens)",
    )
    channel: int | None = setting(
        None,
        optional(int_at_least(0)),
        "null = unit gradient on every channel, or a channel index (seeding: channel)",
    )
    seeding: str | None = setting(
        None,
        optional(choice(SEEDINGS)),
        "how the probed unit is seeded; null: channel if probe.channel is set, else "
        "all_channels (docs/concepts.md: Unit seeding)",
        unset=("all_channels", "channel"),  # "channel" comes with `channel`, refused as such
    )
    normalise: str = setting(
        "none",
        choice(NORMALISE_MODES),
        "sum: the map scaled to sum 1 (OpenERF; only area ratios change)",
        fingerprint=RECORDED,  # it scales the map only
    )
    reduce: str = setting(
        "abs",
        (lambda v: v in reductions.names(), f"one of {', '.join(reductions.names())}"),
        "how each image's input gradient becomes its map (docs/concepts.md: Reductions)",
    )
    dtype: torch.dtype = setting(
        torch.float32,
        choice(tuple(DTYPES)),
        "compute dtype (accumulation is float64)",
        to_config=_dtype_name,
        from_config=_dtype,
    )
    on_nonfinite: str = setting(
        "skip",
        choice(NONFINITE_MODES),
        "what to do with a sample whose gradient holds NaN/Inf",
        fingerprint=JOB,
    )
    checkpoint_every: int = setting(
        10,
        int_at_least(1),
        "batches between checkpoints of the partial sums (also saved on SIGINT/SIGTERM)",
        fingerprint=IGNORED,
    )
    fast: bool = setting(
        False, boolean(), "bf16 autocast + channels_last (GPU speed; float64 sums)"
    )
    channels_last: bool | None = setting(
        None,
        optional(boolean()),
        "channels_last memory format (null: with fast); true alone = float32 (CPU)",
        unset=(False,),
    )
    compile: bool = setting(False, boolean(), "torch.compile the forward truncated at the target")
    crop: str = setting(
        "off",
        (lambda v: v in CROP_MODES or isinstance(v, bool), "off, auto or on"),
        "feed only the probed unit's input window when provably exact",
        from_config=_crop_mode,
    )
    bootstrap_groups: int = setting(
        16,
        int_between(0, MAX_BOOTSTRAP_GROUPS),
        "K group sums (sample i in group i % K) for intervals over inputs; 0 = none",
    )
    inputs: str | Iterable = setting(
        "gaussian",
        (_is_source, "gaussian, uniform, a seeded source or an iterable of batches"),
        "the inputs: a random source by name or an iterable of batches (config: inputs group)",
        config=False,
        record=source_name,
    )
    device: str | torch.device = setting(
        "auto",
        (lambda v: isinstance(v, (str, torch.device)), "auto, cpu, cuda, cuda:N"),
        "where to probe (config: the top-level device)",
        config=False,
        fingerprint=IGNORED,
    )
    seed: int = setting(
        0,
        int_at_least(0),
        "random inputs are a pure function of (seed, sample index) (config: top-level seed)",
        config=False,
    )
    progress: bool | None = setting(
        None,
        optional(boolean()),
        "a progress bar (null: when there is more than one batch)",
        config=False,
        fingerprint=IGNORED,
    )

    def __post_init__(self) -> None:
        problem = seeding_problem(self.reduce, self.seeding, self.channel)
        if problem:
            raise ValueError(problem)
        check_fields(self)
        for name, meta in settings_of(self).items():
            object.__setattr__(self, name, meta.from_config(getattr(self, name)))
        if self.fast and self.dtype != torch.float32:
            raise ValueError("fast mode autocasts a float32 model to bfloat16; use dtype=float32")
        # channels_last=None follows fast; remembered so that ``of(fast=...)`` follows it too
        object.__setattr__(self, "_channels_last_follows_fast", self.channels_last is None)
        resolved = {
            "n_samples": int(self.n_samples),
            "batch_size": "auto" if self.batch_size == "auto" else int(self.batch_size),
            "channel": None if self.channel is None else int(self.channel),
            "seeding": self.seeding or ("all_channels" if self.channel is None else "channel"),
            "seed": int(self.seed),
            "checkpoint_every": int(self.checkpoint_every),
            "channels_last": bool(self.fast if self.channels_last is None else self.channels_last),
            "prefix_tokens": None if self.prefix_tokens is None else int(self.prefix_tokens),
            "bootstrap_groups": int(self.bootstrap_groups),
        }
        for key, value in resolved.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_config(cls, probe: dict[str, Any], **fixed: Any) -> ProbeOptions:
        """The options from the plain ``probe`` config group (keys it lacks take their config
        defaults; keys that are not options, such as ``target``, are ignored); ``fixed``: the
        options the config sets elsewhere (``inputs``, ``device``, ``seed``)."""
        return settings_from_config(cls, probe, **fixed)

    @classmethod
    def of(cls, options: ProbeOptions | None = None, **settings: Any) -> ProbeOptions:
        """``options`` (default: all defaults) with ``settings`` replaced; an unknown setting is
        a one-line TypeError naming it. A new ``channel`` without a ``seeding`` re-derives the
        seeding when it was the channel's default (all_channels or channel), and a new ``fast``
        re-derives ``channels_last`` when it was not given (so ``of(fast=True)`` equals
        ``ProbeOptions(fast=True)``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown probe option(s) {unknown}; known: {sorted(known)}")
        base = options or cls()
        rederive = base.seeding in ("all_channels", "channel") and "seeding" not in settings
        if "channel" in settings and rederive:
            settings = {**settings, "seeding": None}
        follows = getattr(base, "_channels_last_follows_fast", False)
        if "fast" in settings and "channels_last" not in settings and follows:
            settings = {**settings, "channels_last": None}  # as ProbeOptions(fast=...) does
        return replace(base, **settings)

    @property
    def auto_batch(self) -> bool:
        """batch_size="auto": the largest batch that fits, halved on out-of-memory errors."""
        return self.batch_size == "auto"

    def is_set(self, key: str) -> bool:
        """Whether setting ``key`` asks for something beyond the plain probe (its declared
        ``unset`` values; batch_size: only "auto" asks)."""
        return not is_unset(self, key)

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
        cannot be resumed; ``normalise`` is recorded, not compared); the unit's target and
        position are added by the engine."""
        return settings_fingerprint(self)

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
    # a signed per-image map (erf.reductions): a sum-to-1 scaling of it means nothing
    if seeding in BATCHED_SEEDINGS and reductions.is_signed(reduce):
        return (
            f"{prefix}seeding={seeding} scales each channel's map to sum 1, which needs a "
            f"non-negative map: {prefix}reduce={reduce} is signed; use abs, relu, square or "
            "clamp_per_image"
        )
    return None


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
