"""Box rules: how one node of a graph maps a box of its units to the box of an input's units.

A box is ``((r0, r1), (c0, c1))``, inclusive units of one node's (rows, cols); a box rule is a
pair of one-axis interval rules (erf.rf.intervals), one per image axis. The graph analysis
stores one rule per back-edge of a node and takes hulls of the boxes where paths meet.
"""

from __future__ import annotations

from collections.abc import Callable

from erf.rf.intervals import Interval, hull

Box = tuple[Interval, Interval]  # ((r0, r1), (c0, c1)) inclusive units of one node
AxisRule = Callable[[Interval], "Interval | None"]
BoxRule = Callable[[Box], "Box | None"]
Edge = tuple[str, BoxRule]  # (input node name, rule: this node's box -> input node's box)


def identity(box: Box) -> Box:
    """The rule of an op that keeps every unit where it is."""
    return box


def box_rule(row: AxisRule | None, col: AxisRule | None) -> BoxRule:
    """Per-axis rules -> box rule (None = identity on that axis)."""
    if row is None and col is None:
        return identity

    def rule(box: Box) -> Box | None:
        r = box[0] if row is None else row(box[0])
        if r is None:
            return None
        c = box[1] if col is None else col(box[1])
        return None if c is None else (r, c)

    return rule


def box_hull(a: Box | None, b: Box) -> Box:
    """Smallest box holding both (``a`` None: nothing yet)."""
    if a is None:
        return b
    return (hull(a[0], b[0]), hull(a[1], b[1]))


def shift(offset: int) -> AxisRule:
    """Unit u reads unit u + offset."""
    return lambda iv: (iv[0] + offset, iv[1] + offset)


def clip_box(box: Box, hw: tuple[int, int]) -> Box | None:
    """``box`` clipped to a map of ``hw`` (rows, cols) units; None when they do not meet."""
    rows = (max(box[0][0], 0), min(box[0][1], hw[0] - 1))
    cols = (max(box[1][0], 0), min(box[1][1], hw[1] - 1))
    return (rows, cols) if rows[0] <= rows[1] and cols[0] <= cols[1] else None


__all__ = [
    "AxisRule",
    "Box",
    "BoxRule",
    "Edge",
    "box_hull",
    "box_rule",
    "clip_box",
    "identity",
    "shift",
]
