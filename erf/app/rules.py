"""Rule helpers shared by the config checks (``erf.app.validate``, ``erf.app.train_rules``).

A rule is ``(test, allowed)``: ``test(value)`` says whether a value is allowed and ``allowed``
says in words what is; ``erf.app.validate.validate`` turns a failed test into one
``ConfigError`` line naming the key, the value and ``allowed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from erf.checks import is_finite_number, is_integer

Rule = tuple[Callable[[Any], bool], str]


class ConfigError(ValueError):
    """A config value or key that is not allowed; the message is one line."""


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool, NaN or +-Inf): ``erf.checks.is_finite_number``,
    the test the Python API applies too."""
    return is_finite_number(v)


def int_at_least(low: int) -> Rule:
    return (lambda v: is_integer(v) and v >= low), f"an integer >= {low}"


def int_between(low: int, high: int) -> Rule:
    """An integer in [low, high]: ``high`` is one of the documented upper bounds
    (``erf.checks``), beyond which a run would not finish or not fit in memory."""
    return (lambda v: is_integer(v) and low <= v <= high), f"an integer >= {low} (at most {high})"


def positive() -> Rule:
    return (lambda v: is_number(v) and v > 0), "a finite number > 0"


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


DROPOUT: Rule = (lambda v: is_number(v) and 0 <= v < 1, "a probability in [0, 1)")
ODD_KERNEL: Rule = (lambda v: int_at_least(1)[0](v) and v % 2 == 1, "an odd integer >= 1")
BLOCK_INDICES: Rule = (
    lambda v: isinstance(v, list) and all(int_at_least(0)[0](i) for i in v),
    "a list of block indices >= 0",
)
