"""What the classification pass records per torch.fx node, and small readers of fx nodes.

``NodeValue`` is a node's kind (local, global, const, tokens; see erf.rf.graph) with the layout,
nominal stride and period of its (rows, cols); ``NodeOp`` is the node being classified, with its
arguments resolved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from torch import fx, nn

from erf.rf.boxes import BoxRule
from erf.rf.digits import Digits, grid


@dataclass
class NodeValue:
    """Forward classification of one fx node (the kinds: see erf.rf.graph).

    ``layout``: tensor dims (batch included) holding the spatial axes, in the input's order
    (rows and cols of an image; the one axis of a sequence; depth, rows, cols of a volume);
    ``stride``: nominal input pixels per unit per axis (Fractions); ``period``: units after
    which the span pattern repeats (1, or the upsampling factor: start(u + period) =
    start(u) + period * stride);
    ``context``: a global path modulates it; ``items``: for tuple outputs (chunk/split), each
    item's value and its rule into this node's units; ``sources``: for a global node, the local
    nodes whose whole maps it reads; ``flat``: ``(prefix, rows, cols)`` when the image axes are
    flattened row-major into the one tensor dim both ``layout`` entries name, after ``prefix``
    tokens that hold no grid unit (a ViT's class and register tokens); ``scalar``: a global
    node of per-sample scalars with no spatial extent of its own (pooled vectors and what is
    computed from them only: gates), as opposed to a global map (attention's output);
    ``digits``: for a map split into windows (erf.rf.digits), the factors each tensor dim holds
    (``layout`` is then None; the units are the digit values, ``stride`` and ``period`` those
    of the map where the split began); ``pieces``: for a value whose channels (or another
    non-spatial dim) do not all read the same box, a label per position
    (erf.rf.channel_pieces.Pieces), else None.
    """

    kind: str
    layout: tuple[int, ...] | None = None
    stride: tuple[Fraction, ...] = (Fraction(1), Fraction(1))
    period: tuple[int, ...] = (1, 1)
    context: bool = False
    reason: str = ""
    items: tuple[tuple[NodeValue, BoxRule], ...] | None = None
    sources: tuple[str, ...] = ()
    flat: tuple[int, int, int] | None = None
    scalar: bool = False
    digits: Digits | None = None
    pieces: Any = None

    def scaled(self, factors: Sequence[Fraction]) -> NodeValue:
        """After an op where one output unit steps ``factor`` input units (per image axis)."""
        stride = tuple(s * f for s, f in zip(self.stride, factors))
        period = tuple(
            p * f.denominator // math.gcd(p * f.denominator, f.numerator)
            for p, f in zip(self.period, factors)
        )
        return replace(self, stride=stride, period=period, items=None)


CONST = NodeValue("const")


@dataclass
class NodeOp:
    """One node being classified: resolved args (tensors stay fx Nodes) and its module."""

    node: fx.Node
    args: tuple
    kwargs: dict
    module: nn.Module | None
    name: str  # canonical op name (module class name, function or method name)

    def arg(self, i: int, key: str, default: Any = None) -> Any:
        if key in self.kwargs:
            return self.kwargs[key]
        return self.args[i] if i < len(self.args) else default


def common_period(vals: Any) -> tuple[int, ...]:
    """Period of a merge: the least common multiple of its branches' periods, per axis."""
    return tuple(math.lcm(*axis) for axis in zip(*(v.period for v in vals)))


def flat_nodes(x: Any) -> list[fx.Node]:
    """The fx nodes in a nest of args (tuples, lists, dicts), in order."""
    out: list[fx.Node] = []
    fx.node.map_aggregate(x, lambda a: out.append(a) if isinstance(a, fx.Node) else None)
    return out


def grid_hw(shape: Sequence[int], v: NodeValue) -> tuple[int, ...]:
    """Units per spatial axis of a local value: its flattened grid, its digits' values
    (windows), else ``spatial_hw``."""
    if v.digits is not None:
        return grid(v.digits, len(v.stride))
    return v.flat[1:] if v.flat is not None else spatial_hw(shape, v.layout)


def spatial_hw(shape: Sequence[int], layout: Sequence[int]) -> tuple[int, ...]:
    """Units per spatial axis ((rows, cols) of a map): the sizes of the dims ``layout`` names."""
    return tuple(shape[d] for d in layout)


def node_module(node: fx.Node) -> str | None:
    """The module path that made the node: its target for call_module, else the innermost
    module whose forward was traced through to create it (None at the top level)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    return next(reversed(stack.values()))[0] or None


__all__ = [
    "CONST",
    "NodeOp",
    "NodeValue",
    "common_period",
    "flat_nodes",
    "grid_hw",
    "node_module",
    "spatial_hw",
]
