"""Box rules: how one node of a graph maps a box of its units to the box of an input's units.

A box is one inclusive interval of units per spatial axis: ``((r0, r1), (c0, c1))`` for a 2-D
map's (rows, cols), ``((t0, t1),)`` for a 1-D sequence, ``((d0, d1), (r0, r1), (c0, c1))`` for
a volume; a box rule is one one-axis rule per axis. A one-axis rule maps an interval of output
units to the hull of the input units they read (erf.rf.intervals; virtual units past the map
extrapolate, the TRF convention); an ``AxisMap`` adds the exact set of input units each real
unit reads (``reads``), which the exact per-unit queries use where a hull would lose gaps
(dilated taps, transposed convs, mirrored or wrapped padding). The graph analysis stores one
rule per back-edge of a node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from erf.rf.intervals import Interval, hull

Box = tuple[Interval, ...]  # one inclusive interval per spatial axis: ((r0, r1), (c0, c1)) in 2-D
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


def taps_map(taps: Taps, n_out: int, n_in: int) -> AxisMap:
    """An ``AxisMap`` from exact taps alone: the interval of a box of output units is the hull
    of the taps of its real units (units past the ``n_out``-unit map read nothing)."""

    def interval(iv: Interval) -> Interval | None:
        units = [t for u in range(max(iv[0], 0), min(iv[1], n_out - 1) + 1) for t in taps(u, n_in)]
        return (min(units), max(units)) if units else None

    return AxisMap(interval, taps)


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
    """A box rule from per-axis rules (None, or an axis past the given ones = identity on that
    axis): ``rule(box)`` maps a box of this node's units to the hull of the input node's units
    (None when it reads none). Boxes have one interval per spatial axis (1, 2 or 3)."""

    def __init__(self, *axes: AxisRule | None) -> None:
        self.axes: tuple[AxisRule | None, ...] = axes

    def axis(self, a: int) -> AxisRule | None:
        return self.axes[a] if a < len(self.axes) else None

    def __call__(self, box: Box) -> Box | None:
        out = []
        for a, iv in enumerate(box):
            rule = self.axis(a)
            got = iv if rule is None else rule(iv)
            if got is None:
                return None
            out.append(got)
        return tuple(out)

    def matrices(self, hw_out: Sequence[int], hw_in: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Per-axis ``reads_matrix`` for maps of ``hw_out`` and ``hw_in`` units per axis."""
        return tuple(reads_matrix(self.axis(a), hw_out[a], hw_in[a]) for a in range(len(hw_out)))


Edge = tuple[str, BoxRule]  # (input node name, rule: this node's box -> input node's box)

identity = BoxRule()  # the rule of an op that keeps every unit where it is


def box_rule(*axes: AxisRule | None) -> BoxRule:
    """Per-axis rules -> box rule (None = identity on that axis)."""
    if all(a is None for a in axes):
        return identity
    return BoxRule(*axes)


def box_hull(a: Box | None, b: Box) -> Box:
    """Smallest box holding both (``a`` None: nothing yet)."""
    if a is None:
        return b
    return tuple(hull(x, y) for x, y in zip(a, b))


def shift(offset: int) -> AxisRule:
    """Unit u reads unit u + offset."""
    return lambda iv: (iv[0] + offset, iv[1] + offset)


def clip_box(box: Box, hw: Sequence[int]) -> Box | None:
    """``box`` clipped to a map of ``hw`` units per axis; None when they do not meet."""
    out = tuple((max(lo, 0), min(hi, n - 1)) for (lo, hi), n in zip(box, hw))
    return out if all(lo <= hi for lo, hi in out) else None


def unit_box(unit: Sequence[int]) -> Box:
    """The box of one unit (one index per spatial axis)."""
    return tuple((int(u), int(u)) for u in unit)


def full_box(hw: Sequence[int]) -> Box:
    """The box of every unit of a map of ``hw`` units per axis."""
    return tuple((0, int(n) - 1) for n in hw)


def mask_box(mask: np.ndarray) -> Box | None:
    """Inclusive bounding box of the True units of a boolean map (one dim per axis)."""
    out = []
    for a in range(mask.ndim):
        idx = np.flatnonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a)))
        if not idx.size:
            return None
        out.append((int(idx[0]), int(idx[-1])))
    return tuple(out)


def read_through(mask: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """The input units a set of output units reads: ``mask`` (output units, one dim per axis)
    through per-axis reads matrices ``[n_out, n_in]`` (a boolean tensor product)."""
    r = mask.astype(np.float32)
    for a, m in enumerate(matrices):
        r = np.moveaxis(np.tensordot(m.T.astype(np.float32), r, axes=(1, a)), 0, a)
    return r > 0


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
    "full_box",
    "identity",
    "mask_box",
    "read_through",
    "shift",
    "taps_map",
    "unit_box",
]
