"""Digit layouts: where the units of each image axis sit when a map is split into windows.

A window partition (Swin: ``view(B, H/w, w, W/w, w, C)``, a permute, a view that moves the
window index into the batch dim) or a space-to-depth (Swin's patch merging) writes each unit's
row as two digits, ``row = w * outer + inner``, and puts the digits in different tensor dims.
A ``Digits`` value records, per tensor dim, the factors it holds, most significant first: a
``Digit(axis, place, radix)`` of an image axis (the unit's coordinate on ``axis``, in units of
the map where the split began, contributes ``place * value``, ``0 <= value < radix``), or a
``Digit(OTHER, 0, size)`` of batch or channels. Every factor a dim holds multiplies to its size.

A node's units on an axis are the values of that axis's digits it still holds, read as one
mixed-radix number (most significant first): the unit index. An op that mixes along a dim (a
linear layer or norm over the channels, a softmax or a matrix product over a window's tokens)
turns the axis digits there into channels: each unit of its output reads every value of those
digits, e.g. the whole window. ``axis_reads`` gives those reads between two nodes. Pure
integer arithmetic: no torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from typing import NamedTuple

OTHER = -1  # the axis of a batch or channel factor


class Digit(NamedTuple):
    """One factor of a tensor dim: a digit of image ``axis`` worth ``place`` units of the map
    where the split began, with ``radix`` values; or (``OTHER``, 0, size) for batch/channels.
    ``spent``: an op mixed over it since, so all its values read the same units (a digit that
    may also count as channels: ``exit_dims``)."""

    axis: int
    place: int
    radix: int
    spent: bool = False


Digits = tuple[tuple[Digit, ...], ...]  # per tensor dim, its factors, most significant first


def from_layout(shape: Sequence[int], layout: Sequence[int]) -> Digits:
    """The digits of a map whose axis ``a`` is tensor dim ``layout[a]`` (one digit each)."""
    axis_of = {d: a for a, d in enumerate(layout)}
    return normalise(
        tuple(
            (Digit(axis_of[d], 1, n),) if d in axis_of else (Digit(OTHER, 0, n),)
            for d, n in enumerate(shape)
        )
    )


def from_flat(shape: Sequence[int], dim: int, hw: Sequence[int]) -> Digits:
    """The digits of a map flattened row-major into tensor dim ``dim`` (no prefix tokens)."""
    grid = tuple(Digit(a, 1, n) for a, n in enumerate(hw))
    return normalise(
        tuple(grid if d == dim else (Digit(OTHER, 0, n),) for d, n in enumerate(shape))
    )


def normalise(digits: Digits) -> Digits:
    """Drop one-valued factors and join neighbours that are one factor: adjacent batch/channel
    factors, and adjacent digits of one axis whose places continue (``place = place' * radix'``)."""
    out = []
    for dim in digits:
        joined: list[Digit] = []
        for f in dim:
            if f.radix == 1:
                continue
            last = joined[-1] if joined else None
            if last is not None and last.axis == f.axis == OTHER:
                joined[-1] = Digit(OTHER, 0, last.radix * f.radix)
            elif (
                last is not None
                and (last.axis, last.spent) == (f.axis, f.spent)
                and last.place == f.place * f.radix
            ):
                joined[-1] = f._replace(radix=last.radix * f.radix)
            else:
                joined.append(f)
        out.append(tuple(joined))
    return tuple(out)


def regroup(digits: Digits, out_shape: Sequence[int]) -> Digits | None:
    """The digits after a reshape to ``out_shape`` (row-major, as torch's view): the factors in
    order, cut into the new dims' sizes, splitting a factor where a size divides it; None when
    a size cuts a factor unevenly (the units of the new dim are not whole digits)."""
    queue = [f for dim in digits for f in dim]
    queue.reverse()  # pop() takes the most significant factor left
    out: list[tuple[Digit, ...]] = []
    for size in out_shape:
        dim: list[Digit] = []
        have = 1
        while have < size:
            if not queue:
                return None
            f = queue.pop()
            if size % (have * f.radix) == 0:
                dim.append(f)
                have *= f.radix
                continue
            need = size // have
            if size % have or f.radix % need:
                return None
            low = f.radix // need
            if f.axis == OTHER:
                dim.append(Digit(OTHER, 0, need))
                queue.append(Digit(OTHER, 0, low))
            else:
                dim.append(f._replace(place=f.place * low, radix=need))
                queue.append(f._replace(radix=low))
            have = size
        out.append(tuple(dim))
    if any(f.radix != 1 for f in queue):
        return None
    return normalise(tuple(out))


def axis_digits(digits: Digits, axis: int) -> list[Digit]:
    """The digits of ``axis``, most significant first."""
    return sorted((f for dim in digits for f in dim if f.axis == axis), key=lambda f: -f.place)


def grid(digits: Digits, k: int) -> tuple[int, ...]:
    """Units per image axis (``k`` axes): the product of each axis's digit radices."""
    return tuple(math.prod(f.radix for f in axis_digits(digits, a)) for a in range(k))


def spatial_dims(digits: Digits) -> set[int]:
    """The tensor dims that hold a digit of some image axis."""
    return {d for d, dim in enumerate(digits) if any(f.axis != OTHER for f in dim)}


def as_channels(digits: Digits, dims: Sequence[int], shape: Sequence[int]) -> Digits:
    """``digits`` after an op that mixes along ``dims`` and gives them the sizes in ``shape``.
    A dim of image digits only that keeps its size keeps them, spent (output position j is
    still the unit of digit value j, now reading every value: a norm, a softmax or a linear
    layer across a window's tokens, which a reshape may put back in place); any other mixed
    dim holds channels (a linear layer over a patch merge's channels, a keepdim reduction).
    Every value of a spent digit reads the same units, so the choice never changes a box."""
    out = []
    for d, dim in enumerate(digits):
        kept = all(f.axis != OTHER for f in dim) and math.prod(f.radix for f in dim) == shape[d]
        if d not in dims:
            out.append(dim)
        elif kept:
            out.append(tuple(f._replace(spent=True) for f in dim))
        else:
            out.append((Digit(OTHER, 0, shape[d]),))
    return normalise(tuple(out))


def exit_dims(digits: Digits, k: int) -> tuple[int, ...] | None:
    """Per image axis the one tensor dim that holds all its digits and no other axis's (the
    map is an ordinary map again: ``layout``; batch or channel factors beside the digits there
    become parts of the unit index, like a pixel shuffle's), or None. Where that fails, spent
    digits are tried as channels (a linear layer over a patch merge's channels that kept their
    number)."""
    for spent_as_channels in (False, True):
        dims = []
        for a in range(k):
            mine = [
                d
                for d, dim in enumerate(digits)
                if any(f.axis == a and not (spent_as_channels and f.spent) for f in dim)
            ]
            if len(mine) != 1 or any(
                f.axis not in (a, OTHER) and not (spent_as_channels and f.spent)
                for f in digits[mine[0]]
            ):
                break
            dims.append(mine[0])
        else:
            return tuple(dims)
    return None


def index_digits(dim: Sequence[Digit], axis: int) -> list[Digit]:
    """The factors of one tensor dim that indexes ``axis``, most significant first, as digits:
    batch/channel factors become opaque digits (place <= 0) that no input holds."""
    return [f if f.axis == axis else Digit(axis, -j, f.radix) for j, f in enumerate(dim)]


def _refine(ds: Sequence[Digit], cuts: set[int]) -> list[Digit]:
    """Each digit cut at the places in ``cuts`` that fall inside it, most significant first."""
    out = []
    for f in ds:
        if f.place <= 0:  # opaque (``index_digits``): never cut
            out.append(f)
            continue
        inner = sorted((c for c in cuts if f.place < c < f.place * f.radix), reverse=True)
        top = f.place * f.radix
        for c in [*inner, f.place]:
            out.append(f._replace(place=c, radix=top // c))
            top = c
    return out


def axis_reads(
    out: Sequence[Digit], arg: Sequence[Digit], mixed: Collection[Digit] = ()
) -> list[list[int]]:
    """Per unit of a node whose digits on one axis are ``out``, the units of its input (digits
    ``arg``; same axis and origin) that it reads: those that agree with it on every digit of
    ``arg`` that the output holds too, every value of the others. Both lists are in the order
    of the node's unit index, most significant first (opaque digits of ``index_digits``
    allowed). ``mixed``: digits of ``arg`` the op sums or mixes over (a matrix product's
    contracted dim), which read every value even where the output holds an equal digit
    (attention's keys: the same window digits as its queries). Digits only the output holds
    do not constrain the input."""
    cuts = {c for f in (*out, *arg) if f.place > 0 for c in (f.place, f.place * f.radix)}
    o = _refine(out, cuts)
    pieces = [(g, f in mixed) for f in arg for g in _refine((f,), cuts)]
    i = [g for g, _ in pieces]
    shared = [g for g, m in pieces if not m and g in o]
    free = [g for g, m in pieces if m or g not in o]
    i_weight, o_weight = _weights(i), _weights(o)
    offsets = [
        sum(v * i_weight[f] for f, v in zip(free, values))
        for values in itertools.product(*(range(f.radix) for f in free))
    ]
    reads = []
    for u in range(math.prod(f.radix for f in o)):
        base = sum(((u // o_weight[f]) % f.radix) * i_weight[f] for f in shared)
        reads.append(sorted(base + off for off in offsets))
    return reads


def _weights(ds: Sequence[Digit]) -> dict[Digit, int]:
    """Mixed-radix weight of each digit in the unit index (``ds`` most significant first)."""
    w, out = 1, {}
    for f in reversed(ds):
        out[f] = w
        w *= f.radix
    return out


__all__ = [
    "OTHER",
    "Digit",
    "Digits",
    "as_channels",
    "axis_digits",
    "axis_reads",
    "from_flat",
    "from_layout",
    "grid",
    "normalise",
    "regroup",
    "exit_dims",
    "index_digits",
    "spatial_dims",
]
