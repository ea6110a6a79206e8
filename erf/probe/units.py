"""Probed units: a target (module name, or None for the model output) and a position on its
feature map. Conventions: (row, col), the centre of an h x w map is (h // 2, w // 2); other
named positions (``POSITION_NAMES``) reproduce the peers' choices on even sides."""

from __future__ import annotations

from typing import Any

Unit = Any  # a target (module name or None), or a (target, position) pair


# Named positions: where the probed unit of an h x w map sits (on an even side the centre falls
# between two units, and the tools disagree on which one they take).
POSITION_NAMES = {
    "center": "(h // 2, w // 2): erf's centre; on an even side, the lower/right middle unit",
    "center_upper_left": "((h - 1) // 2, (w - 1) // 2): on even sides, the upper-left of the "
    "middle four units",
    "openerf_center": "OpenERF's (BMVC 2023) rule: (h // 2, w // 2) on maps, the upper-left of "
    "the middle four on token grids (token (6, 6) of 14 x 14)",
}


def named_position(name: str, h: int, w: int, tokens: bool = False) -> tuple[int, int]:
    """The unit a ``POSITION_NAMES`` name picks on an h x w map (``tokens``: a token grid)."""
    if name == "openerf_center":
        name = "center_upper_left" if tokens else "center"
    if name == "center":
        return h // 2, w // 2
    if name == "center_upper_left":
        return (h - 1) // 2, (w - 1) // 2
    raise ValueError(f"position must be one of {list(POSITION_NAMES)} or (row, col), got {name!r}")


def resolve_position(position, h: int, w: int, tokens: bool = False) -> tuple[int, int]:
    """A ``POSITION_NAMES`` name (``named_position``) or a (row, col) checked against the
    h x w map."""
    if isinstance(position, str):
        return named_position(position, h, w, tokens)
    row, col = (int(v) for v in position)
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position {(row, col)} is outside the {h}x{w} target feature map")
    return row, col


# Named unit sets of an atlas (``atlas_units``): which output units of an h x w map to probe.
UNIT_SETS = {
    "border": "the centre, the four edge midpoints and the four corners (9 units)",
    "row": "every unit of the middle row (h // 2, 0 .. w - 1)",
    "all": "every unit of the map (h x w)",
    "grid:N": "an N x N grid from corner to corner (rows and cols rounded from linspace)",
}


def atlas_units(spec: Any, h: int, w: int) -> list[tuple[int, int]]:
    """The (row, col) units of an ``h x w`` map that ``spec`` names (``UNIT_SETS``, or a list
    of ``[row, col]`` pairs, each checked against the map), without repeats, in row-major
    order. A one-line ValueError for anything else."""
    if isinstance(spec, str):
        if spec == "border":
            rows, cols = sorted({0, h // 2, h - 1}), sorted({0, w // 2, w - 1})
            return [(r, c) for r in rows for c in cols]
        if spec == "row":
            return [(h // 2, c) for c in range(w)]
        if spec == "all":
            return [(r, c) for r in range(h) for c in range(w)]
        if spec.startswith("grid:") and spec[5:].isdigit() and int(spec[5:]) >= 1:
            n = int(spec[5:])
            rows = sorted({round(i * (h - 1) / max(n - 1, 1)) for i in range(n)})
            cols = sorted({round(i * (w - 1) / max(n - 1, 1)) for i in range(n)})
            return [(r, c) for r in rows for c in cols]
        raise ValueError(
            f"units={spec!r} is not allowed: expected one of {', '.join(UNIT_SETS)} "
            "or a list of [row, col]"
        )
    try:
        pairs = [tuple(int(v) for v in p) for p in spec]
    except (TypeError, ValueError):
        pairs = None
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"units={spec!r} is not allowed: expected a non-empty list of [row, col]")
    return sorted({resolve_position(p, h, w) for p in pairs})


def as_unit(u: Unit) -> tuple[str | None, Any]:
    """A unit as (target, position); a bare target is probed at the centre."""
    if isinstance(u, tuple) and len(u) == 2 and (u[0] is None or isinstance(u[0], str)):
        return u[0], u[1] if isinstance(u[1], str) else tuple(int(v) for v in u[1])
    if u is None or isinstance(u, str):
        return u, "center"
    raise ValueError(f"a unit is a target (module name or None) or (target, position), got {u!r}")
