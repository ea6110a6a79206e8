"""State and helpers of the classification pass that the op rules share.

``BuilderCore`` holds what the pass has found so far (a ``NodeValue``, back-edges, merges and
notes per fx node) and the helpers the rules are written with: reading values and shapes,
recording a node, the errors for unsupported ops. The rules themselves are in
erf.rf.tensor_rules and erf.rf.spatial_rules; erf.rf.builder puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from torch import fx, nn

from erf.rf.boxes import AxisRule, Edge, box_rule, identity
from erf.rf.node_values import CONST, NodeOp, NodeValue, node_module


class BuilderCore:
    """Per-node results of the classification pass and the helpers its rules share.

    ``modules``: the trace's modules by path; per fx node name: ``vals`` (its value),
    ``edges`` (back-edges to its inputs), ``merges`` (the edges of nodes where aligned branches
    meet), ``notes``; ``irregular``: nodes whose rule is not one window moved by a fixed stride
    (per period), so spans after them are scanned unit by unit; ``input``: the fx name of the
    model input.
    """

    modules: dict[str, nn.Module]
    vals: dict[str, NodeValue]
    edges: dict[str, list[Edge]]
    merges: dict[str, list[Edge]]
    notes: dict[str, list[str]]
    irregular: set[str]
    input: str | None

    def val(self, x: Any) -> NodeValue:
        return self.vals[x.name] if isinstance(x, fx.Node) else CONST

    @staticmethod
    def shape(x: fx.Node) -> tuple[int, ...] | None:
        meta = x.meta.get("tensor_meta")
        return tuple(meta.shape) if hasattr(meta, "shape") else None

    def describe(self, node: fx.Node) -> str:
        module = node_module(node)
        return f"node {node.name!r}" + (f" (module {module!r})" if module else "")

    def unsupported(self, op: NodeOp, why: str = "") -> TypeError:
        kind = {"call_module": "module", "call_function": "function", "call_method": "method"}
        what = f"{kind.get(op.node.op, op.node.op)} {op.name}"
        return TypeError(
            f"unsupported op {what} at {self.describe(op.node)}: no receptive-field rule"
            + (f" ({why})" if why else "")
            + "; erf.rf.graph handles convolutions, pooling, padding, interpolation, pointwise and "
            "channel ops, reshapes that keep (rows, cols), add/mul/cat"
        )

    def set(
        self, op: NodeOp, val: NodeValue, edges: Sequence[Edge] = (), merge: bool = False
    ) -> None:
        self.vals[op.node.name] = val
        if edges:
            self.edges[op.node.name] = list(edges)
            if merge and len(edges) > 1:
                self.merges[op.node.name] = list(edges)

    def mark_irregular(self, op: NodeOp) -> None:
        """The op's units do not all read one window moved by a fixed stride (clamped borders,
        windows of varying size, pieces, wraps): spans downstream must be scanned per unit."""
        self.irregular.add(op.node.name)

    def note(self, op: NodeOp, text: str) -> None:
        self.notes.setdefault(op.node.name, []).append(text)

    def set_global(self, op: NodeOp, reason: str, scalar: bool = False) -> None:
        """Every unit of the node reads the whole maps of its inputs (``sources``); ``scalar``:
        the node holds per-sample scalars with no spatial extent left (a pooled vector), which
        gate or join local maps as context rather than as a read (``LOCAL_CONVENTION``)."""
        reason = f"{reason} at {self.describe(op.node)}"
        value = NodeValue("global", reason=reason, sources=self.sources(op.node), scalar=scalar)
        self.set(op, value)

    def sources(self, node: fx.Node) -> tuple[str, ...]:
        """The local nodes whose whole maps a global node made from ``node``'s inputs reads."""
        out: list[str] = []
        for n in node.all_input_nodes:
            v = self.val(n)
            for src in (n.name,) if v.kind == "local" else v.sources:
                if src not in out:
                    out.append(src)
        return tuple(out)

    def local_input(self, op: NodeOp) -> fx.Node:
        """The first tensor argument, which must be local."""
        x = op.args[0] if op.args else None
        if not isinstance(x, fx.Node) or self.val(x).kind != "local":
            raise self.unsupported(op, "its first argument is not the spatial feature map")
        if self.val(x).items is not None:
            raise self.unsupported(op, "its first argument is a tuple")
        return x

    def spatial_last(self, op: NodeOp, x: fx.Node) -> tuple[NodeValue, tuple[int, ...]]:
        """x's value and, per spatial axis, which of the last k tensor dims holds it (k the
        number of spatial axes; ``(0, 1)`` for NCHW, ``(1, 0)`` when rows are last): the op
        works on the last k tensor dims, which must be the spatial ones."""
        v, shape = self.val(x), self.shape(x)
        nd, k = len(shape), len(v.layout)
        if set(v.layout) != set(range(nd - k, nd)):
            raise self.unsupported(op, f"its input has the spatial dims at {v.layout}, not last")
        return v, tuple(d - (nd - k) for d in v.layout)

    def spatial(
        self,
        op: NodeOp,
        x: fx.Node,
        rules: tuple[AxisRule | None, ...],
        factors: tuple[Fraction, ...],
        context: bool = False,
    ) -> None:
        """An op on the last k tensor dims: ``rules``/``factors`` (nominal stride multipliers)
        are given per tensor dim and mapped to the spatial axes via the layout."""
        v, order = self.spatial_last(op, x)
        rules = tuple(rules[j] for j in order)
        factors = tuple(factors[j] for j in order)
        out = replace(v.scaled(factors), context=v.context or context)
        self.set(op, out, [(x.name, box_rule(*rules))])

    def same(
        self, op: NodeOp, x: fx.Node, layout: tuple[int, ...] | None = None, **kw: Any
    ) -> None:
        v = self.val(x)
        context = v.context or kw.get("context", False)
        out = replace(v, layout=layout or v.layout, context=context, items=None)
        self.set(op, out, [(x.name, kw.get("rule", identity))])

    def dims(self, op: NodeOp, dim: Any, ndim: int) -> list[int]:
        dims = list(dim) if isinstance(dim, (tuple, list)) else [dim]
        if not all(isinstance(d, int) for d in dims):
            raise self.unsupported(op, f"non-integer dim {dim!r}")
        return [d % ndim for d in dims]


__all__ = ["BuilderCore"]
