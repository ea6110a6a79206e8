"""Reductions: how each image's input gradient g = dy/dx ``[B, C_in, H, W]`` becomes that
image's map ``[B, H, W]``, before the mean over images. One registry entry per reduction.

A reduction is one function registered with ``@reduction(name, label=..., help=...)``; its
name is then a valid ``probe.reduce`` / ``measure_erf(reduce=...)`` value, its label titles
figures, and ``signed=True`` says its per-image map can be negative (the map is then the mean
clamped at 0 *after* averaging: ``ERFResult.map``; seedings that scale each map to sum 1
refuse it). The functions use tensor methods only, so this module needs no torch import.

Adding one is one entry here plus its test (``tests/test_reductions.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PerImage = Callable[[Any], Any]  # dy/dx [B, C_in, H, W] -> per-image map [B, H, W]


@dataclass(frozen=True)
class Reduction:
    """One registered reduction: its ``name``, figure ``label``, one-line ``help``, whether its
    per-image map is ``signed``, and the ``per_image`` function."""

    name: str
    label: str
    help: str
    signed: bool
    per_image: PerImage


_REGISTRY: dict[str, Reduction] = {}
# Names saved results and checkpoints may still carry, and what they meant.
LEGACY_NAMES = {"signed_clamp": "clamp_after_mean"}


def reduction(
    name: str, *, label: str, help: str, signed: bool = False
) -> Callable[[PerImage], PerImage]:
    """Register the decorated function as reduction ``name`` (a name taken twice is a
    ValueError)."""

    def register(per_image: PerImage) -> PerImage:
        if name in _REGISTRY or name in LEGACY_NAMES:
            raise ValueError(f"reduction {name!r} is already registered")
        _REGISTRY[name] = Reduction(name, label, help, signed, per_image)
        return per_image

    return register


def names() -> tuple[str, ...]:
    """The registered reductions, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Reduction:
    """The reduction ``name`` (a legacy name reads as what it meant); a one-line ValueError
    naming the registered ones when there is none."""
    found = _REGISTRY.get(LEGACY_NAMES.get(name, name))
    if found is None:
        raise ValueError(f"unknown reduction {name!r}; allowed: {list(_REGISTRY)}")
    return found


def is_signed(name: str) -> bool:
    """Whether reduction ``name``'s per-image map can be negative (False for unknown names)."""
    found = _REGISTRY.get(LEGACY_NAMES.get(name, name))
    return bool(found and found.signed)


@reduction("abs", label="mean |∂y/∂x|", help="Σ_c |g_c| (Luo et al.)")
def _abs(g: Any) -> Any:
    return g.abs().sum(1)


@reduction(
    "relu", label="mean max(∂y/∂x, 0)", help="Σ_c max(g_c, 0) (RepLKNet, with seeding=relu_gated)"
)
def _relu(g: Any) -> Any:
    return g.clamp(min=0).sum(1)


@reduction(
    "clamp_after_mean",
    label="max(mean ∂y/∂x, 0)",
    help="Σ_c g_c, and the mean over images is clamped at 0 (nobody we know of)",
    signed=True,
)
def _clamp_after_mean(g: Any) -> Any:
    return g.sum(1)


@reduction(
    "clamp_per_image",
    label="mean max(Σ_c ∂y/∂x_c / C, 0)",
    help="max(Σ_c g_c / C_in, 0) per image (OpenERF 0.6.1, with seeding=channel_mean)",
)
def _clamp_per_image(g: Any) -> Any:
    return g.mean(1).clamp(min=0)


@reduction("square", label="mean (∂y/∂x)²", help="Σ_c g_c² (Luo's variance analysis)")
def _square(g: Any) -> Any:
    return g.square().sum(1)


@reduction(
    "max_abs",
    label="mean max_c |∂y/∂x_c|",
    help="max_c |g_c| (Simonyan et al. 2014's saliency map)",
)
def _max_abs(g: Any) -> Any:
    return g.abs().amax(1)


__all__ = ["LEGACY_NAMES", "Reduction", "get", "is_signed", "names", "reduction"]
