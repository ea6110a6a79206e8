"""Box rules: how one node of a graph maps a box of its units to the box of an input's units.

A box is ``((r0, r1), (c0, c1))``, inclusive units of one node's (rows, cols); a box rule is a
pair of one-axis rules, one per image axis. A one-axis rule maps an interval of output units to
the hull of the input units they read (erf.rf.intervals; virtual units past the map extrapolate,
the TRF convention); an ``AxisMap`` adds the exact set of input units each real unit reads
(``reads``), which the exact per-unit queries use where a hull would lose gaps (dilated taps,
transposed convs, mirrored or wrapped padding). The graph analysis stores one rule per
back-edge of a node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from erf.rf.intervals import Interval, hull

Box = tuple[Interval, Interval]  # ((r0, r1), (c0, c1)) inclusive units of one node
AxisRule = Callable[[Interval], "Interval | None"]
Taps = Callable[[int, int], Iterable[int]]  # (real output unit, input length) -> input units


class AxisMap:
    """A one-axis rule with exact taps: ``rule(iv)`` is the interval rule (hull of the input
    units read by the output units ``iv``); ``reads(u, n_in)`` the input units real output unit
    ``u`` reads, possibly outside ``[0, n_in)`` (zero padding: read nothing)."""

    def __init__(self, interval: AxisRule, taps: Taps) -> None:
        self.interval = interval
        self.taps = taps

    def __call__(self, iv: Interval) -> Interval | None:
        return self.interval(iv)

    def reads(self, u: int, n_in: int) -> Iterable[int]:
        return self.taps(u, n_in)


def axis_reads(rule: AxisRule | None, u: int, n_in: int) -> Iterable[int]:
    """Input units that real output unit ``u`` reads on one axis: an ``AxisMap``'s exact taps,
    else the interval rule's span of ``u`` alone (exact for ops whose single units read a
    contiguous run: plain convs and pools, adaptive pooling, resizing, crops, shuffles)."""
    if rule is None:
        return (u,)
    if isinstance(rule, AxisMap):
        return rule.reads(u, n_in)
    iv = rule((u, u))
    return () if iv is None else range(iv[0], iv[1] + 1)


def reads_matrix(rule: AxisRule | None, n_out: int, n_in: int) -> np.ndarray:
    """Boolean ``[n_out, n_in]``: output unit u reads input unit i (one axis, real units)."""
    m = np.zeros((n_out, n_in), dtype=bool)
    for u in range(n_out):
        taps = [i for i in axis_reads(rule, u, n_in) if 0 <= i < n_in]
        m[u, taps] = True
    return m


class BoxRule:
    """A box rule from per-axis rules (None = identity on that axis): ``rule(box)`` maps a box
    of this node's units to the hull of the input node's units (None when it reads none)."""

    def __init__(self, row: AxisRule | None = None, col: AxisRule | None = None) -> None:
        self.axes: tuple[AxisRule | None, AxisRule | None] = (row, col)

    def __call__(self, box: Box) -> Box | None:
        row, col = self.axes
        r = box[0] if row is None else row(box[0])
        if r is None:
            return None
        c = box[1] if col is None else col(box[1])
        return None if c is None else (r, c)

    def matrices(self, hw_out: Sequence[int], hw_in: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Per-axis ``reads_matrix`` for maps of ``hw_out`` and ``hw_in`` (rows, cols) units."""
        return tuple(reads_matrix(self.axes[a], hw_out[a], hw_in[a]) for a in range(2))


Edge = tuple[str, BoxRule]  # (input node name, rule: this node's box -> input node's box)

identity = BoxRule()  # the rule of an op that keeps every unit where it is


def box_rule(row: AxisRule | None, col: AxisRule | None) -> BoxRule:
    """Per-axis rules -> box rule (None = identity on that axis)."""
    if row is None and col is None:
        return identity
    return BoxRule(row, col)


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


def mask_box(mask: np.ndarray) -> Box | None:
    """Inclusive bounding box of the True units of a boolean (rows, cols) map; None if none."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not rows.size:
        return None
    return ((int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])))


__all__ = [
    "AxisMap",
    "AxisRule",
    "axis_reads",
    "reads_matrix",
    "Box",
    "BoxRule",
    "Edge",
    "box_hull",
    "box_rule",
    "clip_box",
    "identity",
    "mask_box",
    "shift",
]
