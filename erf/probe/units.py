"""Probed units: a target (module name, or None for the model output) and a position on its
feature map. Conventions: (row, col), the centre of an h x w map is (h // 2, w // 2)."""

from __future__ import annotations

from typing import Any

Unit = Any  # a target (module name or None), or a (target, position) pair


def resolve_position(position, h: int, w: int) -> tuple[int, int]:
    """ "center" -> (h // 2, w // 2); (row, col) checked against the h x w map."""
    if isinstance(position, str):
        if position != "center":
            raise ValueError(f"position must be 'center' or (row, col), got {position!r}")
        return h // 2, w // 2
    row, col = (int(v) for v in position)
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position {(row, col)} is outside the {h}x{w} target feature map")
    return row, col


def as_unit(u: Unit) -> tuple[str | None, Any]:
    """A unit as (target, position); a bare target is probed at the centre."""
    if isinstance(u, tuple) and len(u) == 2 and (u[0] is None or isinstance(u[0], str)):
        return u[0], u[1] if isinstance(u[1], str) else tuple(int(v) for v in u[1])
    if u is None or isinstance(u, str):
        return u, "center"
    raise ValueError(f"a unit is a target (module name or None) or (target, position), got {u!r}")
