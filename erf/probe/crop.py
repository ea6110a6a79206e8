"""TRF crop: probe a unit on the window of the input it can see, not on the whole image.

A unit of a purely local network depends only on the input pixels of its receptive field, so
its value and its input gradient can be computed from a crop of the input, at a cost that
grows with the TRF instead of the image (layer1 of a ResNet at 1024 px: 35 x 35 pixels instead
of 1024 x 1024). ``plan_crop`` decides whether that is exact and where the window lies;
``erf.probe.measure`` feeds the window and puts the map back into full input coordinates (zeros
outside, which is what the gradient is there).

Why the crop changes nothing (per axis; rows and cols are independent). Let ``D_m`` be the
units of node ``m`` (every local node on a path from the input to the target) that the probed
unit depends on, clipped to ``m``'s map (``GraphRF.dependencies``: exact interval
back-propagation, clipping every intermediate map), ``S_m`` its effective stride and ``n_m``
its length. The window is ``[a, b]`` of the input, with ``a`` a multiple of every ``S_m``, so
the cropped network's node ``m`` has the original grid shifted by ``o_m = a / S_m`` whole units
(unit ``j`` starts at input pixel ``-P_m + j S_m``, and ``P_m``, ``S_m`` depend only on the
modules). If for every ``m``

    (1) ``D_m - o_m`` lies inside the cropped map ``[0, n'_m - 1]``, and
    (2) ``n'_m + o_m <= n_m`` (no cropped unit sits where the original has padding),

then, by induction from the input (where ``D`` is inside ``[a, b]`` by construction), every
unit of ``D_m`` computes the same value in both networks: each of its reads of a real unit of
the original is a unit of ``D_{m-1}`` (the clipped hull contains it), which (1) keeps real in
the crop and equal by induction; each read of padding in the original (index < 0 or >=
``n_{m-1}``) is padding in the crop too (index - o < 0, or >= ``n_{m-1} - o >= n'_{m-1}`` by
(2)). The probed unit is a function of the same window pixels through the same operations in
both networks, so its gradient with respect to them is the same, and every pixel outside the
window lies outside ``D_input``, where the original gradient is exactly zero.

This holds for operations whose output unit is a function of the input units in its window
and of which of those lie outside the map, the same function at every position:
convolutions (any stride, dilation, groups, zero padding), max/avg pooling (ceil_mode too),
eval-mode batch norm, pointwise activations, zero padding, adds/multiplies of aligned
branches (``ALLOWED_OPS``) and concatenation along channels. Anything else on a path to the
target refuses the crop: global ops (adaptive pooling, linear, means over the map), global
context (squeeze-excitation gates, Group/Instance/LayerNorm statistics over the map),
upsampling (fractional strides), circular or mirror padding, slicing relative to the map's
end, misaligned branches, and models torch.fx cannot trace; so does a unit that reads only
padding (no window: its gradient is zero everywhere). Conditions (1) and (2) are
checked on a second trace at the cropped shape (``b`` = the last pixel of ``D_input``, else
the image's last pixel); if they fail the crop is refused. The window is the hull over all
units probed in the same forward.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from erf.probe.units import resolve_position
from erf.rf.builder import crop_safe_ops
from erf.rf.graph import GraphRF, graph_rf

# Module classes and function/method names (erf.rf.graph's ``NodeRF.op``) the argument covers:
# the rule table's crop-safe entries (erf.rf.builder.OpRule.crop_safe).
ALLOWED_OPS = crop_safe_ops()


class CropRefused(ValueError):
    """The crop does not apply (the message says why)."""


@dataclass(frozen=True)
class CropPlan:
    """``rows``/``cols``: inclusive input window; ``units``: per probed unit, the target's
    full ``(C, h, w)``, its position in the full map and in the cropped map."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    units: tuple[tuple[tuple[int, ...], tuple[int, int], tuple[int, int]], ...]

    @property
    def window(self) -> tuple[int, int, int, int]:
        return (*self.rows, *self.cols)


def _trace(model: nn.Module, input_shape: Sequence[int]) -> GraphRF:
    try:
        return graph_rf(model, input_shape)
    except (ValueError, TypeError) as exc:
        raise CropRefused(f"graph analysis failed: {exc}") from None


def _channel_cat(g: GraphRF, name: str) -> bool:
    """A ``torch.cat`` along the channel dim (of [B, C, H, W] maps)."""
    node = g.fx_node(name)
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return g.nodes[name].op == "cat" and dim in (1, -3)


def _check_ops(g: GraphRF, nodes: Sequence[str], target: str | None) -> None:
    for n in nodes:
        node = g.nodes[n]
        if node.op not in ALLOWED_OPS and node.op != "input" and not _channel_cat(g, n):
            where = f" (module {node.module!r})" if node.module else ""
            raise CropRefused(f"op {node.op} at node {n!r}{where} is not known to be crop-safe")
    notes = g.notes_of(target)
    if notes:
        raise CropRefused(f"the target is not purely local: {notes[0]}")


def plan_crop(
    model: nn.Module, input_shape: Sequence[int], units: Sequence[tuple[str | None, Any]]
) -> CropPlan:
    """The input window for probing ``units`` ((target, position) pairs) together.

    Raises:
        CropRefused: the crop is not provably exact for this model and these targets.
        ValueError: a position outside its target map.
    """
    c, height, width = (int(v) for v in input_shape)
    g = _trace(model, (c, height, width))
    deps: dict[str, Any] = {}
    full_units = []
    for target, position in units:
        try:
            trf = g.for_target(target)  # raises for misaligned branches, tokens, ...
        except ValueError as exc:
            raise CropRefused(str(exc)) from None
        if trf.is_global:
            raise CropRefused(f"the TRF of {target!r} is global (adaptive pooling / linear)")
        name = g.node_name(target)
        shape = g.nodes[name].shape
        tokens = len(set(g.spatial_dims(target) or ())) == 1  # rows and cols in one dim
        pos = resolve_position(position, *trf.out_shape, tokens=tokens)
        unit_deps = g.dependencies(target, pos)
        if trf.varies_by_unit:
            raise CropRefused(trf.notes[0])
        _check_ops(g, list(unit_deps), target)
        for n, box in unit_deps.items():
            old = deps.get(n)
            deps[n] = (
                box
                if old is None
                else tuple((min(o[0], b[0]), max(o[1], b[1])) for o, b in zip(old, box))
            )
        full_units.append((name, tuple(shape), pos))
    strides = {}
    for n in deps:
        stride, _ = g.node_grid(n)
        if not all(isinstance(s, int) and s > 0 for s in stride):
            raise CropRefused(f"node {n!r} has a fractional effective stride {stride}")
        strides[n] = stride
    if g.input_node not in deps:  # every unit reads padding only: its gradient is all zero
        raise CropRefused("the probed units see no input pixel (their windows lie in the padding)")
    period = [math.lcm(*(s[ax] for s in strides.values())) for ax in range(2)]
    seen = deps[g.input_node]
    starts = [seen[ax][0] // period[ax] * period[ax] for ax in range(2)]
    for ends in ([seen[0][1], seen[1][1]], [height - 1, width - 1]):
        window = ((starts[0], ends[0]), (starts[1], ends[1]))
        problem = _check_window(model, (c, height, width), g, deps, strides, window)
        if problem is None:
            break
    else:
        raise CropRefused(problem)
    offsets = [starts[ax] // strides[name][ax] for name, _, _ in full_units for ax in (0, 1)]
    return CropPlan(
        rows=window[0],
        cols=window[1],
        units=tuple(
            (shape, pos, (pos[0] - offsets[2 * i], pos[1] - offsets[2 * i + 1]))
            for i, (_, shape, pos) in enumerate(full_units)
        ),
    )


def _check_window(model, input_shape, g: GraphRF, deps, strides, window) -> str | None:
    """None if conditions (1) and (2) of the module docstring hold for ``window``, else why."""
    (r0, r1), (c0, c1) = window
    if (r0, r1, c0, c1) == (0, input_shape[1] - 1, 0, input_shape[2] - 1):
        return None  # the whole input: nothing changes
    cropped = _trace(model, (input_shape[0], r1 - r0 + 1, c1 - c0 + 1))
    for n, box in deps.items():
        if n not in cropped.nodes:
            return f"node {n!r} is missing from the trace at the cropped shape"
        full_hw, crop_hw = g.node_grid(n)[1], cropped.node_grid(n)[1]
        for ax, start in enumerate((r0, c0)):
            off = start // strides[n][ax]
            lo, hi = box[ax][0] - off, box[ax][1] - off
            if lo < 0 or hi > crop_hw[ax] - 1 or crop_hw[ax] + off > full_hw[ax]:
                axis = "rows" if ax == 0 else "cols"
                return (
                    f"the crop {window} would change node {n!r} ({axis}: needs units "
                    f"{box[ax]} of {full_hw[ax]}, the crop has {crop_hw[ax]} from unit {off})"
                )
    return None


__all__ = ["ALLOWED_OPS", "CropPlan", "CropRefused", "plan_crop"]
