"""Receptive-field rules that users register for their own modules and functions.

``register_rule(MyModule, rule)`` or ``register_rule("my_function", rule)`` enters a rule into
the graph analysis' one rule table (erf.rf.builder.RULES), beside the built-in ones, without
editing erf. A rule is one of:

- ``"pointwise"``: each output unit reads the same unit of the first input (activations, norms
  with per-pixel statistics, channel mixing);
- ``"global"``: every output unit reads the whole input;
- a callable ``rule(call, box) -> box``: ``call`` is an ``OpCall`` (the module, the call's
  arguments, the first input's and the output's (rows, cols)); ``box`` an inclusive box
  ``((r0, r1), (c0, c1))`` of output units (possibly outside the map: units a later op's padding
  invents); it returns the inclusive box of the first input's units those output units read,
  or None when they read none. Rows of the result must depend only on the rows asked for and
  cols only on the cols (every built-in spatial op is separable this way); each single unit is
  taken to read a contiguous window. A result that is not two ordered integer pairs is refused
  in one line naming the rule.

A module type's rule covers that exact type (the tracer keeps it as a leaf); a function name's
rule covers call_function nodes whose target has that ``__name__`` (wrap the function with
``torch.fx.wrap`` so the trace keeps the call) and tensor methods of that name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import nn

from erf.rf.boxes import Box
from erf.rf.builder import RULES, GraphBuilder, OpRule, add_rule
from erf.rf.intervals import Interval
from erf.rf.node_values import NodeOp

UserRule = Callable[["OpCall", Box], "Box | None"]


@dataclass(frozen=True)
class OpCall:
    """What a user rule sees of one call: ``module`` (None for functions), ``args``/``kwargs``
    (tensors as torch.fx nodes, other values as they were passed), ``in_hw`` the first input's
    (rows, cols) and ``out_hw`` the output's."""

    module: nn.Module | None
    args: tuple
    kwargs: dict
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]


def register_rule(key: type | str, rule: str | UserRule) -> None:
    """Enter ``rule`` (see the module docstring) for module type or function name ``key``.

    Raises:
        TypeError: ``key`` is neither an ``nn.Module`` subclass nor a function name, or
            ``rule`` is neither "pointwise", "global" nor a callable.
    """
    if isinstance(key, type):
        if not issubclass(key, nn.Module):
            raise TypeError(f"register_rule: {key.__name__} is a class but not an nn.Module")
    elif not (isinstance(key, str) and key.isidentifier()):
        raise TypeError(
            f"register_rule takes an nn.Module subclass or a function name, got {key!r}"
        )
    if rule == "pointwise":
        apply = GraphBuilder.pointwise
    elif rule == "global":
        apply = _global_rule
    elif callable(rule):
        apply = _user_box_rule(rule)
    else:
        raise TypeError(
            f"register_rule: the rule for {_key_name(key)} must be 'pointwise', 'global' or a "
            f"callable rule(call, box) -> box, got {rule!r}"
        )
    add_rule(key, OpRule(apply, source="user"))


def unregister_rule(key: type | str) -> None:
    """Remove a user rule (built-in rules cannot be removed); no-op when there is none."""
    entry = RULES.get(key)
    if entry is not None and entry.source == "user":
        del RULES[key]


def _key_name(key: type | str) -> str:
    return key.__name__ if isinstance(key, type) else repr(key)


def _rule_name(rule: Any) -> str:
    return getattr(rule, "__qualname__", None) or repr(rule)


def _global_rule(b: GraphBuilder, op: NodeOp) -> None:
    b.local_input(op)
    b.set_global(op, f"user rule 'global' for {op.name}")


def _user_box_rule(rule: UserRule) -> Callable[[GraphBuilder, NodeOp], None]:
    """A builder rule that asks ``rule`` for boxes, one axis at a time, and checks them."""

    def apply(b: GraphBuilder, op: NodeOp) -> None:
        x = b.local_input(op)
        in_hw, out_hw = tuple(b.shape(x)[-2:]), tuple(b.shape(op.node)[-2:])
        call = OpCall(op.module, op.args, op.kwargs, in_hw, out_hw)
        where = f"user rule {_rule_name(rule)} for {op.name} at {b.describe(op.node)}"
        centre = ((out_hw[0] // 2,) * 2, (out_hw[1] // 2,) * 2)

        def axis_rule(ax: int) -> Callable[[Interval], Interval | None]:
            def one_axis(iv: Interval) -> Interval | None:
                box = (iv, centre[1]) if ax == 0 else (centre[0], iv)
                got = _checked(rule(call, box), where)
                return None if got is None else got[ax]

            return one_axis

        factors = tuple(Fraction(a, c) for a, c in zip(in_hw, out_hw))
        b.mark_irregular(op)  # nothing is known of its windows: scan the units
        b.spatial(op, x, (axis_rule(0), axis_rule(1)), factors)  # tensor dims (-2, -1)

    return apply


def _checked(box: Any, where: str) -> Box | None:
    """``box`` when it is None or ``((r0, r1), (c0, c1))`` with ordered integer pairs."""
    if box is None:
        return None
    try:
        (r0, r1), (c0, c1) = box
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (r0, r1, c0, c1))
    except (TypeError, ValueError):
        ok = False
    if not ok or r0 > r1 or c0 > c1:
        raise ValueError(
            f"{where} returned a malformed box {box!r}: expected ((r0, r1), (c0, c1)) with "
            "integers r0 <= r1 and c0 <= c1, or None"
        )
    return ((r0, r1), (c0, c1))


__all__ = ["OpCall", "UserRule", "register_rule", "unregister_rule"]
