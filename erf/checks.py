"""Argument checks shared by the Python API and the config rules: the documented upper
bounds and the finite-number test, so that ``erf.ConvStack(...)``, ``erf.ProbeOptions(...)``
and ``python -m erf.run key=value`` accept and refuse the same values.

Each check raises a one-line ``ValueError`` naming the argument, the value and what is allowed;
``erf.app.rules`` builds its config rules from the same predicates and bounds.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

# A rule: ``test(value)`` says whether a value is allowed, the text says in words what is
# (``erf.settings`` and the config checks turn a failed test into one line naming both).
Rule = tuple[Callable[[Any], bool], str]

# Upper bounds (docs/troubleshooting.md): beyond these a run would not finish or not fit
# in memory on any machine this lab targets; they are refused in one line instead of running
# until killed.
MAX_SIDE = 16_384  # pixels per side of a probe input (inputs.size)
MAX_SAMPLES = 100_000_000  # probe.n_samples
MAX_BATCH = 1_000_000  # probe.batch_size
MAX_LAYERS = 10_000  # model.depth / model.blocks
MAX_CHANNELS = 65_536  # model.channels / in_channels / inputs.channels
MAX_KERNEL = 1_025  # model.kernel_size
MAX_DRAWS = 100_000  # probe.draws
MAX_WEIGHTS = 2**31  # conv weights of one of our stacks (8 GiB in float32)


def conv_stack_weights(layers: int, channels: int, kernel_size: int, in_channels: int = 1) -> int:
    """About how many conv weights a stack of ``layers`` k x k convs of ``channels`` channels
    has (layers x C^2 x k^2, C the wider of channels and in_channels)."""
    c = max(int(channels), int(in_channels))
    return int(layers) * c * c * int(kernel_size) ** 2


def check_weights(layers: int, channels: int, kernel_size: int, in_channels: int = 1) -> None:
    """A one-line ValueError when ``conv_stack_weights`` exceeds ``MAX_WEIGHTS``."""
    weights = conv_stack_weights(layers, channels, kernel_size, in_channels)
    if weights > MAX_WEIGHTS:
        raise ValueError(
            f"channels={channels} with kernel_size={kernel_size} makes about {weights:.2e} "
            "weights (more than 2^31): lower the channels or the depth"
        )


def is_integer(v: Any) -> bool:
    """An integer (``int``, numpy's integers), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_finite_number(v: Any) -> bool:
    """An int or a finite float (not a bool, not NaN or +-Inf)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; else a one-line ValueError naming ``name``."""
    if not is_integer(value) or value < low or (high is not None and value > high):
        allowed = (
            f"an integer >= {low}" if high is None else f"an integer >= {low} (at most {high})"
        )
        raise ValueError(f"{name}={value!r} is not allowed: expected {allowed}")
    return int(value)


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite float > 0; else a one-line ValueError naming ``name``."""
    if not is_finite_number(value) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite number > 0")
    return float(value)


# --------------------------------------------------------------------------- rules


def int_at_least(low: int) -> Rule:
    return (lambda v: is_integer(v) and v >= low), f"an integer >= {low}"


def int_between(low: int, high: int) -> Rule:
    """An integer in [low, high]: ``high`` is one of the documented upper bounds
    (``erf.checks``), beyond which a run would not finish or not fit in memory."""
    return (lambda v: is_integer(v) and low <= v <= high), f"an integer >= {low} (at most {high})"


def positive() -> Rule:
    return (lambda v: is_finite_number(v) and v > 0), "a finite number > 0"


def choice(options: Sequence[str]) -> Rule:
    return (lambda v: v in options), f"one of {', '.join(map(str, options))}"


def optional(check: Rule) -> Rule:
    test, text = check
    return (lambda v: v is None or test(v)), f"null or {text}"


def pair_of(check: Rule) -> Rule:
    test, text = check
    return (lambda v: isinstance(v, list) and len(v) == 2 and all(map(test, v))), (
        f"a list of two values, each {text}"
    )


def int_or_list(low: int, high: int | None = None) -> Rule:
    test, text = int_at_least(low) if high is None else int_between(low, high)
    return (lambda v: test(v) or (isinstance(v, list) and v and all(map(test, v)))), (
        f"{text}, or a list of them (one per layer)"
    )


def boolean() -> Rule:
    return (lambda v: isinstance(v, bool)), "true or false"


__all__ = [
    "Rule",
    "boolean",
    "choice",
    "int_at_least",
    "int_between",
    "int_or_list",
    "optional",
    "pair_of",
    "positive",
    "MAX_BATCH",
    "MAX_CHANNELS",
    "MAX_DRAWS",
    "MAX_KERNEL",
    "MAX_LAYERS",
    "MAX_SAMPLES",
    "MAX_WEIGHTS",
    "MAX_SIDE",
    "check_int",
    "check_weights",
    "conv_stack_weights",
    "check_positive",
    "is_finite_number",
    "is_integer",
]
