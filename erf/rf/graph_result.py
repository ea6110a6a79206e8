"""The result of the graph analysis: ``GraphRF`` (per-node TRFs) and ``NodeRF`` (one node).

``GraphRF`` runs the classification pass (erf.rf.builder) over a traced model and answers
queries by back-propagating boxes from a target unit to the input: the TRF of a node's centre
unit, the exact input box of any unit, the boxes every node contributes, alignment checks of
merges, path statistics and the layer table.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from torch import fx, nn

from erf.rf.boxes import (
    Box,
    BoxRule,
    box_hull,
    clip_box,
    full_box,
    mask_box,
    read_through,
    unit_box,
)
from erf.rf.builder import GraphBuilder
from erf.rf.node_values import NodeValue, common_period, flat_nodes, grid_hw, node_module
from erf.rf.trf import LOCAL_CONVENTION, TheoreticalRF

GLOBAL_NOTE = "global: every output unit sees the whole input (adaptive pooling / linear)"
OFFSET_NOTE = (
    "offset branches: merged paths are centred apart, but their hull moves by the same stride "
    "at every unit, so one (size, stride, padding) still describes every unit's box"
)
VARIES_NOTE = (
    "varies by unit: no single (size, stride, padding) describes this layer; size is the centre "
    "unit's span, size_range the smallest and largest, interval(unit) each unit's exact box"
)


@dataclass
class NodeRF:
    """One fx node: ``name``, ``module`` (module path, see ``node_module``), ``op`` (module
    class, function or method name), ``shape`` (output shape without batch, None for
    non-tensors), ``spatial`` (a [C, H, W] map derived from the input), ``trf`` (computed on
    first access; None for non-spatial nodes; raises ValueError for misaligned graphs)."""

    name: str
    module: str | None
    op: str
    shape: tuple[int, ...] | None
    spatial: bool
    _graph: GraphRF = field(repr=False, compare=False)

    @property
    def trf(self) -> TheoreticalRF | None:
        return self._graph.for_target(self.name) if self.spatial else None


class GraphRF:
    """Interval back-propagation over a traced model; build with ``graph_rf``.

    ``nodes``: a ``NodeRF`` per fx node (fx order, output node excluded); ``output``: the fx
    name of the model's single tensor output (None if it has several); ``module_calls``:
    module path -> fx names of the nodes its calls returned; ``graph_module``: the trace.
    """

    def __init__(
        self,
        model: nn.Module,
        gm: fx.GraphModule,
        module_calls: dict[str, list[str]],
        input_shape: tuple[int, int, int],
    ) -> None:
        self.model = model
        self.graph_module = gm
        self.input_shape = input_shape
        self._k = len(input_shape) - 1  # spatial axes: 1 (sequences), 2 (images), 3 (volumes)
        self.module_calls = {k: tuple(v) for k, v in module_calls.items()}
        b = GraphBuilder(gm)
        self._vals, self._edges, self._merges, self._notes = b.vals, b.edges, b.merges, b.notes
        self._irregular = b.irregular
        self._input = b.input
        fx_nodes = [n for n in gm.graph.nodes if n.op != "output"]
        self._fx = {n.name: n for n in fx_nodes}
        self._index = {n.name: i for i, n in enumerate(fx_nodes)}
        # nodes with back-edges (local maps) in topological order, and their (rows, cols)
        self._order = [n.name for n in fx_nodes if n.name in self._edges or n.name == b.input]
        self._pos = {name: i for i, name in enumerate(self._order)}
        self._hw: dict[str, tuple[int, int]] = {}
        for name in self._order:
            v = self._vals[name]
            if v.items is not None:  # a tuple: its units are its input's
                self._hw[name] = self._hw[self._edges[name][0][0]]
            else:
                self._hw[name] = grid_hw(GraphBuilder.shape(self._fx[name]), v)
        self._after_tokens: set[str] = set()  # nodes computed from a token sequence
        for n in fx_nodes:
            v = self._vals[n.name]
            if (v.kind == "tokens" or v.flat is not None or v.digits is not None) or any(
                a.name in self._after_tokens for a in n.all_input_nodes
            ):
                self._after_tokens.add(n.name)
        self.nodes = {n.name: self._node_rf(n, b) for n in fx_nodes}
        outs = flat_nodes(next(n for n in gm.graph.nodes if n.op == "output").args)
        self.output = outs[0].name if len(outs) == 1 else None
        self._outputs = [n.name for n in outs]
        self._cache: dict[str, TheoreticalRF] = {}
        self._reads: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._aligned: dict[str, str | None] = {}

    def _node_rf(self, n: fx.Node, b: GraphBuilder) -> NodeRF:
        shape, v = GraphBuilder.shape(n), self._vals[n.name]
        spatial = (
            shape is not None
            and len(shape) == 2 + self._k
            and (
                (v.kind == "global" and n.name not in self._after_tokens)  # else: attention heads
                or (v.kind == "local" and v.layout == tuple(range(2, 2 + self._k)))
            )
        )
        if n.op == "call_module":
            op = type(b.modules[n.target]).__name__
        else:
            op = "input" if n.name == b.input else _op_name(n)
        return NodeRF(n.name, node_module(n), op, shape[1:] if shape else None, spatial, self)

    # ---- targets

    def node_name(self, target: str | None) -> str:
        """fx node name of ``target``: None (the model output), a module path (its first call,
        the one the probe reads; ``_trf`` notes the others), or an fx node name."""
        if target is None:
            if self.output is None:
                raise ValueError(
                    f"the model has {len(self._outputs)} tensor outputs "
                    f"({', '.join(self._outputs)}); pass target= one of them"
                )
            return self.output
        if target in self.module_calls:
            return self.module_calls[target][0]  # the probe's hooks read the first call too
        if target in self.nodes:
            return target
        known = dict(self.model.named_modules())
        if target in known:
            raise ValueError(f"module {target!r} is never called with a tensor result in forward")
        raise ValueError(f"no module path or fx node named {target!r}")

    def for_target(self, target: str | None = None) -> TheoreticalRF:
        """TRF (with path statistics) of the centre unit of ``target`` (see ``node_name``)."""
        name = self.node_name(target)
        if name not in self._cache:
            self._cache[name] = self._trf(name, paths=True)
        return self._cache[name]

    def first_global(self, target: str | None) -> str | None:
        """The first node (fx order) among ``target``'s ancestors, itself included, whose every
        unit sees the whole input: its module path when it is a module call, else its fx node
        name; None when ``target`` is not global."""
        name = self.node_name(target)
        if self._vals[name].kind != "global":
            return None
        seen, stack = {name}, [name]
        while stack:
            for arg in self._fx[stack.pop()].all_input_nodes:
                if arg.name not in seen and arg.name in self._vals:
                    seen.add(arg.name)
                    stack.append(arg.name)
        first = min(
            (n for n in seen if self._vals[n].kind == "global"), key=self._index.__getitem__
        )
        return node_module(self._fx[first]) or first

    def token_stage(self) -> str | None:
        """Where the model first turns its map into a token sequence (the fx node, and its
        module when it has one), or None: the layer table lists [C, H, W] maps only."""
        name = next((n for n in self._fx if n in self._after_tokens), None)  # fx order
        if name is None:
            return None
        module = node_module(self._fx[name])
        return f"node {name!r}" + (f" (module {module!r})" if module else "")

    def unit_interval(self, target: str, unit: tuple[int, int], clipped: bool = False) -> Box:
        """Input box ``((r0, r1), (c0, c1))`` read by ``unit`` (row, col) of ``target``.

        Unclipped, units in padding extend it past the input (the TRF convention). Clipped, every
        intermediate map is clipped too: the exact bounding box of the input pixels the unit
        depends on (tighter than clipping the unclipped box when a strided slice or upsampling
        sits behind padding).
        """
        name = self.node_name(target)
        v = self._value(name)
        if v.kind == "global":
            return self._global_box(name)
        box = self._back(name, unit_box(unit), clip=clipped)
        if box is None:
            raise ValueError(f"unit {unit} of {name!r} reads no input pixel")
        return box

    def spatial_dims(self, target: str | None) -> tuple[int, int] | None:
        """Tensor dims (batch included) of ``target``'s output that hold the image rows and
        cols, as the analysis followed them through permutes and reshapes: (2, 3) for NCHW,
        (1, 2) for NHWC; None where it does not know (tokens, constants, tuples, global)."""
        v = self._vals.get(self.node_name(target))
        if v is None or v.kind != "local" or v.items is not None:
            return None
        return tuple(v.layout) if v.layout is not None else None

    def layer_table(self) -> list[dict[str, Any]]:
        """One row per module path (called once) whose output is a spatial [C, H, W] map."""
        rows = []
        for path, m in self.model.named_modules():
            calls = self.module_calls.get(path, ())
            if not path or len(calls) != 1 or not self.nodes[calls[0]].spatial:
                continue
            node = self.nodes[calls[0]]
            row = {"name": path, "type": type(m).__name__, "out_shape": list(node.shape)}
            try:
                trf = self._cache.get(node.name) or self._trf(node.name, paths=False)
                row.update(
                    trf_size=list(trf.size),
                    trf_stride=[s if isinstance(s, int) else float(s) for s in trf.stride],
                    trf_padding=list(trf.padding),
                    is_global=trf.is_global,
                    varies_by_unit=trf.varies_by_unit,
                    trf_size_range=[list(r) for r in trf.size_range] if trf.size_range else None,
                    note=next((n for n in trf.notes if n.startswith(("varies", "offset"))), ""),
                )
            except ValueError as e:
                row.update(trf_size=None, trf_stride=None, trf_padding=None, is_global=None)
                row["note"] = str(e)
            rows.append(row)
        return rows

    # ---- analysis

    def _value(self, name: str) -> NodeValue:
        v = self._vals[name]
        if v.kind in ("tokens", "refused"):
            raise ValueError(v.reason)
        if v.kind == "const":
            raise ValueError(f"node {name!r} does not depend on the input")
        if v.items is not None:
            raise ValueError(f"node {name!r} is a tuple; target one of its items")
        if v.digits is not None:
            raise ValueError(
                f"node {name!r} holds a map split into windows (its positions are not the "
                "map's units); target a layer after the windows are merged back"
            )
        return v

    def _trf(self, name: str, paths: bool) -> TheoreticalRF:
        v = self._value(name)
        hw_in = self.input_shape[1:]
        k = self._k
        if v.kind == "global":
            box = self._global_box(name)
            notes = (GLOBAL_NOTE, v.reason)
            if box != full_box(hw_in):
                spans = ", ".join(f"{a}-{b}" for a, b in box)
                notes += (
                    f"the whole input here is units {spans} per axis: the network never reads "
                    "the others",
                )
            return TheoreticalRF(
                size=tuple(b - a + 1 for a, b in box), stride=(0,) * k, padding=(0,) * k,
                input_shape=hw_in, out_shape=self._out_hw(name, v), is_global=True, target=name,
                notes=notes, graph=self, source="graph", global_from=self.first_global(name),
            )  # fmt: skip
        ancestors = self._ancestors(name)
        misaligned = [
            error
            for m in sorted((a for a in ancestors if a in self._merges), key=self._index.get)
            if (error := self._alignment(m))  # upstream merges first
        ]
        out_hw = self._out_hw(name, v)
        q = v.period
        c = tuple(n // 2 for n in out_hw)
        centre = self._unit_box(name, c)
        nxt = self._unit_box(name, tuple(u + p for u, p in zip(c, q)))
        zero = self._unit_box(name, (0,) * k)
        stride = tuple(_plain(Fraction(nxt[a][0] - centre[a][0], q[a])) for a in range(k))
        scan = bool(misaligned) or not self._irregular.isdisjoint(ancestors)
        ranges, regular = self._unit_spans(name, out_hw, c, q, stride, every_unit=scan)
        varies = not regular or any(lo != hi for lo, hi in ranges)
        notes = self._collect_notes(ancestors)
        calls = next((n for n in self.module_calls.values() if len(n) > 1 and n[0] == name), ())
        if calls:
            module = node_module(self._fx[name])
            notes = (
                f"module {module!r} is called {len(calls)} times in forward: this TRF, like the "
                f"probe, is of its first call (fx node {name!r}); erf.rf.graph_rf(...)."
                f"for_target takes the other calls' fx node names ({', '.join(calls[1:])})",
                *notes,
            )
        if misaligned and regular:  # e.g. ResNet-D: pooled and strided paths offset by pixels
            notes = (f"{OFFSET_NOTE}: {misaligned[0]}", *notes)
        if varies:
            why = misaligned[0] if misaligned else f"spans of {ranges[0]} rows, {ranges[1]} cols"
            notes = (f"{VARIES_NOTE}: {why}", *notes)
        extra: dict[str, Any] = {}
        if paths:
            extra = self._paths(name, unit_box(c))
        return TheoreticalRF(
            size=tuple(b - a + 1 for a, b in centre),
            stride=stride,
            padding=tuple(-a for a, _ in zero),
            input_shape=hw_in,
            out_shape=out_hw,
            global_context=v.context,
            convention=LOCAL_CONVENTION if v.context else "",
            varies_by_unit=varies,
            size_range=ranges,
            notes=notes,
            target=name,
            graph=self,
            source="graph",
            **extra,
        )

    def _unit_spans(
        self,
        name: str,
        hw: tuple[int, int],
        c: tuple[int, int],
        q: tuple[int, int],
        stride: Any,
        every_unit: bool,
    ) -> tuple[tuple[tuple[int, int], tuple[int, int]], bool]:
        """Per axis, the (smallest, largest) span over every unit of the map (unclipped; the
        row span of a unit does not depend on its column), and whether one (size, stride,
        padding) triple describes them all: start(u + q) = start(u) + q S and size(u + q) =
        size(u) for every unit, q the period, S the centre's stride. Without ``every_unit``
        (no irregular rule and no misaligned merge upstream: every rule moves one window by a
        fixed stride per period) one period from the centre holds every span there is."""
        ranges, regular = [], True
        for ax in range(len(hw)):
            spans = []
            units = range(hw[ax]) if every_unit else range(c[ax], c[ax] + q[ax] + 1)
            for u in units:
                unit = c[:ax] + (u,) + c[ax + 1 :]
                box = self._back(name, unit_box(unit))
                spans.append(None if box is None else box[ax])
            sizes = [b - a + 1 for a, b in (s for s in spans if s is not None)]
            ranges.append((min(sizes), max(sizes)))
            step = q[ax] * stride[ax]
            for u in range(len(spans) - q[ax]):
                a, b = spans[u], spans[u + q[ax]]
                if a is None or b is None or b[0] - a[0] != step or b[1] - b[0] != a[1] - a[0]:
                    regular = False
        return tuple(ranges), regular

    def _global_box(self, name: str) -> Box:
        """The input box every unit of global node ``name`` reads: the bounding box of the
        pixels the whole maps of its sources depend on (the whole input unless the network
        never reads some border rows or cols, e.g. a stride that does not divide). ValueError
        when they depend on none (maps of padding only, gated by held scalars)."""
        v = self._vals[name]
        if not v.sources:
            return full_box(self.input_shape[1:])
        mask = np.zeros(self._hw[self._input], dtype=bool)
        for src in v.sources:
            m = self._masks(src, full_box(self._hw[src])).get(self._input)
            if m is not None:
                mask |= m
        box = mask_box(mask)
        if box is None:  # its maps read only padding (gates and statistics held constant)
            raise ValueError(f"the global node {name!r} reads no input pixel")
        return box

    def _out_hw(self, name: str, v: NodeValue) -> tuple[int, ...] | None:
        """Units per spatial axis of the node's map (None for a global vector)."""
        shape = self.nodes[name].shape
        if v.kind == "global":
            k = self._k
            return tuple(shape[-k:]) if shape is not None and len(shape) == k + 1 else None
        return grid_hw((1, *shape), v)

    def _unit_box(self, name: str, unit: tuple[int, ...]) -> Box:
        box = self._back(name, unit_box(unit))
        if box is None:
            raise ValueError(f"unit {unit} of node {name!r} reads no input pixel")
        return box

    def _back(self, name: str, box: Box, clip: bool = False) -> Box | None:
        """Input box read by ``box`` of node ``name``.

        Unclipped: hulls of the interval rules in reverse topological order (units that exist
        only in padding extend the box past the map, the TRF convention). ``clip``: the exact
        bounding box of the input pixels the units depend on (``_masks``).
        """
        if clip:
            mask = self._masks(name, box).get(self._input)
            return None if mask is None else mask_box(mask)
        return self._back_all(name, box).get(self._input)

    def _back_all(self, name: str, box: Box) -> dict[str, Box]:
        """``_back``'s unclipped box at every node it reaches (hulls of the rules' boxes)."""
        boxes: dict[str, Box] = {name: box}
        for n in reversed(self._order[: self._pos[name] + 1]):
            b = boxes.get(n)
            if b is None:
                continue
            for arg, rule in self._edges.get(n, ()):
                nb = rule(b)
                if nb is not None:
                    boxes[arg] = box_hull(boxes.get(arg), nb)
        return boxes

    def _masks(self, name: str, box: Box) -> dict[str, np.ndarray]:
        """Exact dependence sets: per node reached, a boolean map (one dim per axis) of the units
        that ``box`` of node ``name`` depends on (clipped to the map first). Each edge maps a set
        through its per-axis reads matrices (``BoxRule.matrices``), so gaps between dilated
        taps, mirrored padding and wrapped rolls stay exact, and the union over paths is a set,
        not a hull of boxes."""
        hw = self._hw[name]
        start = np.zeros(hw, dtype=bool)
        clipped = clip_box(box, hw)
        if clipped is not None:
            start[tuple(slice(a, b + 1) for a, b in clipped)] = True
        masks: dict[str, np.ndarray] = {name: start}
        for n in reversed(self._order[: self._pos[name] + 1]):
            m = masks.get(n)
            if m is None or not m.any():
                continue
            for i, (arg, rule) in enumerate(self._edges.get(n, ())):
                read = read_through(m, self._matrices(n, i, arg, rule))
                masks[arg] = read if arg not in masks else masks[arg] | read
        return masks

    def _matrices(self, n: str, i: int, arg: str, rule: Any) -> tuple[np.ndarray, ...]:
        key = (n, i)
        if key not in self._reads:
            if not isinstance(rule, BoxRule):
                raise TypeError(f"the rule of node {n!r} into {arg!r} is not a BoxRule")
            self._reads[key] = rule.matrices(self._hw[n], self._hw[arg])
        return self._reads[key]

    def dependencies(self, target: str | None, unit: tuple[int, int]) -> dict[str, Box]:
        """Every local node on a path from the input to ``target`` (the input and the target
        included) -> the bounding box of its units that ``unit`` (row, col) of the target
        depends on (nodes where it depends on no unit are left out)."""
        name = self.node_name(target)
        self._value(name)
        masks = self._masks(name, unit_box(unit))
        boxes = {n: mask_box(m) for n, m in masks.items()}
        return {n: b for n, b in boxes.items() if b is not None}

    def input_mask(self, target: str | None, unit: tuple[int, ...]) -> np.ndarray:
        """The exact set of input pixels ``unit`` of ``target`` depends on, as a boolean map of
        the input's spatial shape (``_masks``: gaps between dilated taps, mirrored and wrapped
        padding stay exact). Every unit of a global target depends on the bounding box of
        what the network reads (``_global_box``). A unit that reads no pixel gives an
        all-False map."""
        name = self.node_name(target)
        v = self._value(name)
        hw = self._hw[self._input]
        if v.kind == "global":
            mask = np.zeros(hw, dtype=bool)
            mask[tuple(slice(a, b + 1) for a, b in self._global_box(name))] = True
            return mask
        found = self._masks(name, unit_box(unit)).get(self._input)
        return np.zeros(hw, dtype=bool) if found is None else found

    def node_grid(self, name: str) -> tuple[tuple[Any, Any], tuple[int, int]]:
        """Effective stride (rows, cols) of node ``name`` (an int, or a Fraction after
        upsampling) from the starts of units (0, 0) and (1, 1), and its map's (rows, cols)."""
        zero = self._back(name, unit_box((0,) * self._k))
        one = self._back(name, unit_box((1,) * self._k))
        if zero is None or one is None:
            raise ValueError(f"node {name!r} reads no input pixel")
        stride = tuple(_plain(Fraction(one[a][0] - zero[a][0])) for a in range(self._k))
        return stride, self._hw[name]

    def fx_node(self, name: str) -> fx.Node:
        """The traced torch.fx node called ``name``."""
        return self._fx[name]

    @property
    def input_node(self) -> str:
        """fx name of the input placeholder."""
        return self._input

    def notes_of(self, target: str | None) -> tuple[str, ...]:
        """Notes (global context, circular/mirror padding, ...) of ``target``'s ancestors."""
        return self._collect_notes(self._ancestors(self.node_name(target)))

    def _ancestors(self, name: str) -> set[str]:
        seen, stack = {name}, [name]
        while stack:
            for arg, _ in self._edges.get(stack.pop(), ()):
                if arg not in seen:
                    seen.add(arg)
                    stack.append(arg)
        return seen

    def _alignment(self, name: str) -> str | None:
        """None if the branches of merge node ``name`` agree on stride and centre, else the
        error message. Checked at units u and u + q, q the branches' common period (1, or 2
        after a x2 upsampling) and u the centre rounded down to a multiple of q (units where a
        nearest-upsampled grid coincides with the finer one)."""
        if name in self._aligned:
            return self._aligned[name]
        edges = self._merges[name]
        v = self._vals[name]
        q = common_period(self._vals[a] for a, _ in edges)
        hw = self._out_hw(name, v)
        u = tuple((n // 2) // p * p for n, p in zip(hw, q))
        units = (u, tuple(a + p for a, p in zip(u, q)))
        seen: list[tuple[str, tuple]] = []
        error = None
        for arg, rule in edges:
            boxes = []
            for unit in units:
                b = rule(unit_box(unit))
                boxes.append(None if b is None else self._back(arg, b))
            if None in boxes:
                continue
            centres = tuple((b[ax][0] + b[ax][1]) / 2 for b in boxes for ax in range(self._k))
            for other, other_centres in seen:
                if other_centres != centres:
                    error = self._misaligned(name, other, arg, other_centres, centres, units)
                    break
            if error:
                break
            seen.append((arg, centres))
        self._aligned[name] = error
        return error

    def _misaligned(self, name: str, a: str, b: str, ca: tuple, cb: tuple, units: tuple) -> str:
        def describe(x: str, c: tuple) -> str:
            module = node_module(self._fx[x])
            where = f"{x!r}" + (f" (module {module!r})" if module else "")
            return f"path via {where}: centres {c[:2]} at unit {units[0]}, {c[2:]} at {units[1]}"

        return (
            f"branches of {self.nodes[name].op} node {name!r} are not aligned (their effective "
            f"strides or centre offsets differ, so the receptive field is not shift-invariant): "
            f"{describe(a, ca)}; {describe(b, cb)} (input pixels, (rows, cols))"
        )

    def _paths(self, name: str, box: Box) -> dict[str, Any]:
        """Path-size distribution by dynamic programming: per node, a table {box of the
        target's centre unit seen through one path: (path count, example path suffix)}."""
        tables: dict[str, dict[Box, tuple[int, Any]]] = {name: {box: (1, (name, None))}}
        for n in reversed(self._order[: self._pos[name] + 1]):
            table = tables.get(n) if n == self._input else tables.pop(n, None)
            if not table:
                continue
            for arg, rule in self._edges.get(n, ()):
                dest = tables.setdefault(arg, {})
                for b, (count, example) in table.items():
                    nb = rule(b)
                    if nb is None:
                        continue
                    if nb in dest:
                        dest[nb] = (dest[nb][0] + count, dest[nb][1])
                    else:
                        dest[nb] = (count, (arg, example))
        final = tables.get(self._input, {})
        sizes: Counter = Counter()
        examples: dict[tuple[int, int], Any] = {}
        for b, (count, example) in final.items():
            size = tuple(hi - lo + 1 for lo, hi in b)
            sizes[size] += count
            examples.setdefault(size, example)
        if not sizes:
            return {}
        key = lambda s: (math.prod(s), s[0])  # noqa: E731
        small, large = min(sizes, key=key), max(sizes, key=key)
        return {
            "path_sizes": tuple(sorted(sizes.items())),
            "min_path": _unlink(examples[small]),
            "max_path": _unlink(examples[large]),
        }

    def _collect_notes(self, ancestors: set[str]) -> tuple[str, ...]:
        """Notes of the ancestors, grouped by text: "text (at node a, b, ...)"."""
        grouped: dict[str, list[str]] = {}
        for n in sorted(ancestors, key=self._index.__getitem__):
            for text in self._notes.get(n, ()):
                grouped.setdefault(text, []).append(n)
        out = []
        for text, names in grouped.items():
            more = f", ... ({len(names)} nodes)" if len(names) > 3 else ""
            out.append(f"{text} (at {', '.join(names[:3])}{more})")
        return tuple(out)


def _unlink(example: Any) -> tuple[str, ...]:
    out = []
    while example is not None:
        out.append(example[0])
        example = example[1]
    return tuple(out)


def _plain(s: Fraction | int) -> int | Fraction:
    return int(s) if isinstance(s, int) or s.denominator == 1 else s


def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return node.op


__all__ = ["GLOBAL_NOTE", "VARIES_NOTE", "GraphRF", "NodeRF"]
