"""The config checks' error type and the rules shared by ``erf.app.validate`` and
``erf.app.train_rules`` (the rule builders live in ``erf.checks``, with the Python API's checks).

A rule is ``(test, allowed)``: ``test(value)`` says whether a value is allowed and ``allowed``
says in words what is; ``erf.app.validate.validate`` turns a failed test into one
``ConfigError`` line naming the key, the value and ``allowed``.
"""

from __future__ import annotations

from typing import Any

from erf.checks import Rule, int_at_least, is_finite_number


class ConfigError(ValueError):
    """A config value or key that is not allowed; the message is one line."""


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool, NaN or +-Inf): ``erf.checks.is_finite_number``,
    the test the Python API applies too."""
    return is_finite_number(v)


DROPOUT: Rule = (lambda v: is_number(v) and 0 <= v < 1, "a probability in [0, 1)")
ODD_KERNEL: Rule = (lambda v: int_at_least(1)[0](v) and v % 2 == 1, "an odd integer >= 1")
BLOCK_INDICES: Rule = (
    lambda v: isinstance(v, list) and all(int_at_least(0)[0](i) for i in v),
    "a list of block indices >= 0",
)
