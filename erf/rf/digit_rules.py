"""Rules for maps split into windows: window attention (Swin), patch merging, space-to-depth.

A reshape that cuts an image axis into digits (``view(B, H/w, w, W/w, w, C)``) puts the map
into a digit layout (erf.rf.digits): each node records which factors of which axis every tensor
dim holds. Reshapes and permutes move the digits; pointwise ops keep them; an op that mixes
along a dim (a linear layer or norm over it, a softmax, a reduction, a matrix product or
attention over it) makes each unit read every value of the digits there. Attention over a
window's tokens thus reads the window, and a linear layer over a patch merge's channels reads
the 2 x 2 patch. When every axis is one digit alone in its dim again (``window_reverse``), the
node is an ordinary map with the stride the digits left it. Any other op on a digit layout is
refused in one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from torch import fx

from erf.rf.boxes import BoxRule, Edge, identity, taps_map
from erf.rf.digits import (
    OTHER,
    Digit,
    Digits,
    as_channels,
    axis_digits,
    axis_reads,
    exit_dims,
    from_flat,
    from_layout,
    index_digits,
    normalise,
    regroup,
    spatial_dims,
)
from erf.rf.node_values import NodeOp, flat_nodes, grid_hw
from erf.rf.tensor_rules import GATE_NOTE, TensorRules, expand_index


def _meet(
    op: NodeOp, b: DigitRules, have: tuple[Digit, ...] | None, new: tuple[Digit, ...]
) -> tuple[Digit, ...]:
    """The digits of one dim where two arguments of an elementwise op meet: the same digits,
    spent only where both are (a spent digit's values all read what an unspent one's
    values read together)."""
    if have is None:
        return new
    if [f._replace(spent=False) for f in have] != [f._replace(spent=False) for f in new]:
        raise b.unsupported(op, "its arguments split the map differently")
    return tuple(f._replace(spent=f.spent and g.spent) for f, g in zip(have, new))


class DigitRules(TensorRules):
    """Entering, moving and mixing digit layouts; ``digit_*`` rules run where an input of the
    node has one (see erf.rf.builder's ``DIGIT_RULES``)."""

    # ---- entering: a reshape the plain rules cannot follow

    def reshape(self, op: NodeOp) -> None:
        """A reshape that splits an image axis into digits enters the digit layout; the rest is
        the plain rule (erf.rf.tensor_rules)."""
        super().reshape(op)
        if self.vals[op.node.name].kind != "tokens":
            return
        x = self.local_input(op)
        v, shape = self.val(x), self.shape(x)
        if v.flat is None:
            digits = from_layout(shape, v.layout)
        elif v.flat[0] == 0:
            digits = from_flat(shape, v.layout[0], v.flat[1:])
        else:
            return  # prefix tokens before the grid: stays refused
        self._regroup(op, x, digits, stay_refused=True)

    def _regroup(self, op: NodeOp, x: fx.Node, digits: Digits, stay_refused: bool = False) -> None:
        out = regroup(digits, self.shape(op.node))
        if out is None:
            if stay_refused:
                return
            raise self.unsupported(op, "a reshape that cuts a window's digits unevenly")
        self.settle(op, out, [(x, digits, ())])

    # ---- attention along one axis while another sits in the batch dims

    def matmul_maps(self, op: NodeOp) -> None:
        """A product of two maps: where a map holds one image axis in the batch dims and
        another in the matrix dims (attention within windows of one row or column), each unit
        reads its own line only (``digit_matmul``); else the plain rule."""
        if self._batched_axis(op, (op.args[0], op.arg(1, "other")), also_in_matrix=True):
            self.digit_matmul(op)
        else:
            super().matmul_maps(op)

    def attention(self, op: NodeOp) -> None:
        """scaled_dot_product_attention: per window when an image axis sits in the batch dims
        (``digit_attention``; all of them: each query reads its own key and value), else the
        plain rule."""
        if self._batched_axis(op, op.args[:3], also_in_matrix=False):
            self.digit_attention(op)
        else:
            super().attention(op)

    def _batched_axis(self, op: NodeOp, args: Sequence[Any], also_in_matrix: bool) -> bool:
        """Some map argument holds an image axis in a batch dim (before the last two) and,
        with ``also_in_matrix``, another in the last two dims."""
        for t in args:
            v = self.val(t) if isinstance(t, fx.Node) else None
            if v is None or v.kind != "local" or v.items is not None or (v.flat or (0,))[0]:
                continue
            nd = len(self.shape(t))
            inside = [d >= nd - 2 for d in v.layout]
            if not all(inside) and (not also_in_matrix or any(inside)):
                return True
        return False

    # ---- leaving: a node's value from its digits

    def settle(
        self, op: NodeOp, out: Digits, inputs: Sequence[tuple[fx.Node, Digits, Sequence[int]]]
    ) -> None:
        """Record the node from its digits ``out`` and, per input, (node, its digits, the
        dims of it the op mixes over): an ordinary map when each axis's digits sit in one dim
        of their own (``exit_dims``; its units are then that dim's positions), a flattened grid
        when one dim holds one digit of each axis in order, else a digit layout. Each edge
        reads, per axis, the input units that agree with the unit on the digits both hold
        (``erf.rf.digits.axis_reads``)."""
        base = self.val(inputs[0][0])
        k = len(base.stride)
        if not any(f.axis != OTHER for dim in out for f in dim):
            self.set_global(op, f"{op.name} mixes every digit of the map")
            return
        units, dims, flat = self._units(out, k)
        edges: list[Edge] = []
        for t, digits, mixed_dims in inputs:
            mixed = {f for d in mixed_dims for f in digits[d]}
            rule = self._digit_rule(units, digits, mixed)
            if rule is not identity:
                self.mark_irregular(op)
            edges.append((t.name, rule))
        if base.digits is None:  # entering: the digits' places count this map's units
            base = replace(base, layout=None, flat=None)
        if flat is not None or dims is not None:
            extent = [max(f.place * f.radix for f in axis_digits(out, a)) for a in range(k)]
            n = [math.prod(f.radix for f in u) for u in units]
            scale = tuple(Fraction(e, m) for e, m in zip(extent, n))
            if any(len(u) != 1 for u in units):
                self.mark_irregular(op)
            layout = (flat,) * k if flat is not None else dims
            hw = (0, *n) if flat is not None else None
            value = replace(base.scaled(scale), layout=layout, flat=hw, digits=None)
        else:
            value = replace(base, layout=None, flat=None, digits=out, items=None)
        merge = sum(rule is identity for _, rule in edges) > 1
        self.set(op, replace(value, context=any(self.val(t).context for t, *_ in inputs)), edges)
        if merge:
            self.merges[op.node.name] = [e for e in edges if e[1] is identity]

    def _units(
        self, out: Digits, k: int
    ) -> tuple[list[list[Digit]], tuple[int, ...] | None, int | None]:
        """The digits that index a node's units per axis, in index order, with the dims it
        leaves the digit layout by (``exit_dims``) or its flattened-grid dim, when it does."""
        dims, flat = exit_dims(out, k), self._flat_dim(out, k)
        if flat is None and dims is not None:
            return [index_digits(out[d], a) for a, d in enumerate(dims)], dims, None
        return [axis_digits(out, a) for a in range(k)], dims, flat

    @staticmethod
    def _flat_dim(out: Digits, k: int) -> int | None:
        """The dim that holds exactly one digit per axis, rows first (a flattened grid)."""
        for d, dim in enumerate(out):
            in_order = len(dim) == k and [f.axis for f in dim] == list(range(k))
            if in_order and all(len(axis_digits(out, a)) == 1 for a in range(k)):
                return d
        return None

    @staticmethod
    def _digit_rule(
        units: Sequence[Sequence[Digit]],
        arg: Digits,
        mixed: set[Digit],
        arg_units: Sequence[Sequence[Digit]] | None = None,
    ) -> BoxRule:
        """Per axis: identity where the unit digits are the input's (``arg``'s, or its unit
        digits ``arg_units`` in the order of its unit index) and none is mixed, else the reads
        of ``axis_reads``."""
        rules = []
        for a, o in enumerate(units):
            i = list(arg_units[a]) if arg_units is not None else axis_digits(arg, a)
            if list(o) == i and not (set(i) & mixed):
                rules.append(None)
                continue
            reads, n_in = axis_reads(o, i, mixed), math.prod(f.radix for f in i)
            rules.append(taps_map(lambda u, _n, r=reads: r[u], len(reads), n_in))
        return identity if all(r is None for r in rules) else BoxRule(*rules)

    # ---- the rules on a digit layout

    def _digits(self, op: NodeOp, t: Any) -> Digits | None:
        """The digits of tensor argument ``t`` (None for a constant); other kinds refused."""
        v = self.val(t)
        if v.kind == "const":
            return None
        if v.kind == "global":
            raise self.unsupported(op, "a global value meets a map split into windows")
        if v.items is not None:
            raise self.unsupported(op, "tuple argument")
        if v.digits is not None:
            return v.digits
        if v.flat is not None:
            if v.flat[0]:
                raise self.unsupported(op, "prefix tokens meet a map split into windows")
            return from_flat(self.shape(t), v.layout[0], v.flat[1:])
        return from_layout(self.shape(t), v.layout)

    def _input(self, op: NodeOp) -> tuple[fx.Node, Digits]:
        x = op.args[0] if op.args else None
        digits = self._digits(op, x) if isinstance(x, fx.Node) else None
        if digits is None:
            raise self.unsupported(op, "its first argument is not the map split into windows")
        return x, digits

    def digit_same(self, op: NodeOp) -> None:
        """Pointwise: the digits stay."""
        x, digits = self._input(op)
        self.settle(op, digits, [(x, digits, ())])

    def digit_reshape(self, op: NodeOp) -> None:
        x, digits = self._input(op)
        self._regroup(op, x, digits)

    def digit_permute(self, op: NodeOp) -> None:
        x, digits = self._input(op)
        order = self.dim_order(op, len(digits))
        self.settle(op, tuple(digits[d] for d in order), [(x, digits, ())])

    def digit_elementwise(self, op: NodeOp) -> None:
        """add/mul/...: the output holds, per dim, the digits of the split arguments that are
        not broadcast there (they must agree); an argument broadcast along a dim (size 1: a
        window mean added back) reads the same unit for every value there. An ordinary map
        among them (one that left the digit layout: a window mean of a whole window row) meets
        them position by position (``_positional``). Constants broadcast freely; a per-sample
        gate is context."""
        out_shape = self.shape(op.node)
        nd = len(out_shape)
        split, plain, context = [], [], False
        out: list[tuple[Digit, ...] | None] = [None] * nd
        for t in flat_nodes((op.args, op.kwargs)):
            v = self.val(t)
            if v.kind == "const":
                continue
            if v.kind == "global" and v.scalar:
                context = True
                self.note(op, GATE_NOTE)
                continue
            digits = self._digits(op, t)
            if v.digits is None:
                plain.append(t)
                continue
            padded = ((),) * (nd - len(digits)) + digits
            for d in spatial_dims(padded):
                out[d] = _meet(op, self, out[d], padded[d])
            split.append((t, digits, ()))
        full = normalise(
            tuple(
                dim if dim is not None else (Digit(OTHER, 0, n),) for dim, n in zip(out, out_shape)
            )
        )
        self.settle(op, full, split)
        edges = self.edges[op.node.name]
        for t in plain:
            units = self._positional(op, t, full)
            k = len(units)
            rule = self._digit_rule(self._units(full, k)[0], (), set(), units)
            edges.append((t.name, rule))
            self.mark_irregular(op)
        self.merges.pop(op.node.name, None)
        identities = [e for e in edges if e[1] is identity]
        if len(identities) > 1:
            self.merges[op.node.name] = identities
        if context:
            self.vals[op.node.name] = replace(self.vals[op.node.name], context=True)

    def _positional(self, op: NodeOp, t: fx.Node, out: Digits) -> list[list[Digit]]:
        """Per axis, the digits of ``out`` whose values are the units of ordinary map ``t``
        in an elementwise op (positions meet positions), in the order of its unit index: the
        dim that holds an axis of ``t`` must hold digits of that axis only in ``out`` (of rows
        then cols for a flattened grid); a dim of one unit in ``t`` reads that unit."""
        v, shape = self.val(t), self.shape(t)
        nd = len(out)
        k = len(v.stride)
        units: list[list[Digit]] = []
        for a in range(k):
            d = v.layout[a] + nd - len(shape)
            if shape[v.layout[a]] == 1:
                units.append([])
                continue
            dim = out[d]
            mine = [f for f in dim if f.axis == a]
            if v.flat is not None:
                axes = [f.axis for f in dim]
                ok = all(x in range(k) for x in axes) and axes == sorted(axes)
            else:
                ok = len(mine) == len(dim)
            if not ok or math.prod(f.radix for f in mine) != grid_hw(shape, v)[a]:
                raise self.unsupported(op, "an ordinary map meets a map split into windows")
            units.append(mine)
        return units

    def _mix(self, op: NodeOp, dims: Sequence[int], keep: bool = True) -> None:
        """An op that mixes along ``dims``: kept (``erf.rf.digits.as_channels``) or dropped;
        each unit reads every value of the digits there."""
        x, digits = self._input(op)
        out_shape = self.shape(op.node)
        if out_shape is None:
            raise self.unsupported(op, "non-tensor result")
        if keep:
            out = as_channels(digits, dims, out_shape)
        else:
            out = tuple(dim for d, dim in enumerate(digits) if d not in dims)
        self.settle(op, out, [(x, digits, dims)])

    def digit_linear(self, op: NodeOp) -> None:
        """nn.Linear / F.linear over the last dim (a 1-D constant drops it); a product of two
        maps is ``digit_matmul``."""
        if op.name == "matmul" and self.val(op.arg(1, "other")).kind != "const":
            self.digit_matmul(op)
            return
        nd = len(self.shape(op.args[0]))
        self._mix(op, [nd - 1], keep=len(self.shape(op.node)) == nd)

    def digit_layer_norm(self, op: NodeOp) -> None:
        if op.module is not None:
            n = len(op.module.normalized_shape)
        else:
            shape = op.arg(1, "normalized_shape")
            n = len(shape) if isinstance(shape, (tuple, list)) else 1
        nd = len(self.shape(op.args[0]))
        self._mix(op, range(nd - n, nd))

    def digit_softmax(self, op: NodeOp) -> None:
        nd = len(self.shape(op.args[0]))
        dim = self.softmax_dim(op)
        if dim is None:
            raise self.unsupported(op, "softmax without a dim")
        self._mix(op, self.dims(op, dim, nd))

    def digit_reduction(self, op: NodeOp) -> None:
        if self.is_pairwise(op):
            self.digit_elementwise(op)
            return
        nd = len(self.shape(op.args[0]))
        dim = self.reduced_dim(op)
        if dim is None or self.shape(op.node) is None:
            raise self.unsupported(op, "a reduction over all dims or with several results")
        dims = self.dims(op, dim, nd)
        self._mix(op, dims, keep=len(self.shape(op.node)) == nd)

    def digit_matmul(self, op: NodeOp) -> None:
        """A @ B: each output unit reads A's units with its batch and row digits, and B's units
        with its batch digits (the contracted dim, and B's columns where A's rows are the
        units, read whole)."""
        a, b = op.args[0], op.arg(1, "other")
        out_shape = self.shape(op.node)
        nd = len(out_shape)
        da = self._digits(op, a) if isinstance(a, fx.Node) else None
        db = self._digits(op, b) if isinstance(b, fx.Node) else None
        if any(d is not None and len(d) < 2 for d in (da, db)):
            raise self.unsupported(op, "a matrix product with a vector")
        pa = ((),) * (nd - len(da)) + da if da is not None else ((),) * nd
        pb = ((),) * (nd - len(db)) + db if db is not None else ((),) * nd
        out = []
        for d in range(nd - 2):
            sa, sb = spatial_dims((pa[d],)), spatial_dims((pb[d],))
            if sa and sb and pa[d] != pb[d]:
                raise self.unsupported(op, "its operands split the map into windows differently")
            out.append(pa[d] if sa else pb[d] if sb else (Digit(OTHER, 0, out_shape[d]),))
        rows = pa[nd - 2] if spatial_dims((pa[nd - 2],)) else (Digit(OTHER, 0, out_shape[-2]),)
        cols = pb[nd - 1]
        keep_cols = not spatial_dims((pa[nd - 2],)) and spatial_dims((cols,))
        if not keep_cols:
            cols = (Digit(OTHER, 0, out_shape[-1]),)
        out += [rows, cols]
        inputs = []
        if da is not None:
            inputs.append((a, da, [len(da) - 1]))
        if db is not None:  # its columns are read whole unless they are the output's units
            inputs.append((b, db, [len(db) - 2] if keep_cols else [len(db) - 2, len(db) - 1]))
        self.settle(op, normalise(tuple(out)), inputs)

    def digit_attention(self, op: NodeOp) -> None:
        """scaled_dot_product_attention(q, k, v): each query unit reads its own q and every
        key and value unit with its batch digits (the window)."""
        q, k, v = (op.arg(i, key) for i, key in enumerate(("query", "key", "value")))
        dq = self._digits(op, q)
        if dq is None:
            raise self.unsupported(op, "constant queries")
        out_shape = self.shape(op.node)
        nd = len(out_shape)
        out = (*dq[: nd - 1], (Digit(OTHER, 0, out_shape[-1]),))
        inputs = [(q, dq, [len(dq) - 1])]
        for t in (k, v):
            dt = self._digits(op, t) if isinstance(t, fx.Node) else None
            if dt is not None:
                if tuple(dim for dim in dt[: len(dt) - 2]) != tuple(dq[: len(dq) - 2]):
                    raise self.unsupported(op, "keys or values split into other windows")
                inputs.append((t, dt, [len(dt) - 2, len(dt) - 1]))
        self.settle(op, normalise(out), inputs)

    def digit_getitem(self, op: NodeOp) -> None:
        """An item of a chunk/unbind, or indexing that keeps every digit dim whole."""
        if self.tuple_item(op):
            return
        idx = op.args[1]
        x, digits = self._input(op)
        shape = self.shape(x)
        idx = expand_index(idx, len(shape))
        if idx is None:
            raise self.unsupported(op, "indexing with tensors or booleans")
        out: list[tuple[Digit, ...]] = []
        d = 0
        for i in idx:
            if i is None:
                out.append(())
                continue
            whole = isinstance(i, slice) and i.indices(shape[d]) == (0, shape[d], 1)
            if spatial_dims((digits[d],)) and not whole:
                raise self.unsupported(op, "indexing a dim that holds window digits")
            if not isinstance(i, int):
                n = len(range(*i.indices(shape[d])))
                out.append(digits[d] if whole else (Digit(OTHER, 0, n),))
            d += 1
        self.settle(op, normalise(tuple(out)), [(x, digits, ())])

    def digit_split(self, op: NodeOp) -> None:
        """chunk/split/unbind along a dim without window digits: items with the same digits."""
        x, digits = self._input(op)
        nd = len(digits)
        dim = op.arg(2 if op.name in ("chunk", "split") else 1, "dim", 0) % nd
        if spatial_dims((digits[dim],)):
            raise self.unsupported(op, "it splits a dim that holds window digits")
        items = []
        for meta in op.node.meta.get("tensor_meta"):
            shape = tuple(meta.shape)
            if op.name == "unbind":
                item = digits[:dim] + digits[dim + 1 :]
            else:
                item = digits[:dim] + ((Digit(OTHER, 0, shape[dim]),),) + digits[dim + 1 :]
            value = replace(self.val(x), layout=None, flat=None, digits=normalise(item))
            items.append((value, identity))
        self.set(op, replace(self.val(x), digits=digits, items=tuple(items)), [(x.name, identity)])

    def digit_pad(self, op: NodeOp) -> None:
        """F.pad that pads no dim holding window digits (they keep their size): pointwise."""
        x, digits = self._input(op)
        pad = op.arg(1, "pad")
        nd = len(digits)
        padded = {nd - 1 - j // 2 for j, p in enumerate(pad) if p}
        if padded & spatial_dims(digits):
            raise self.unsupported(op, "it pads a dim that holds window digits")
        out = tuple(
            (Digit(OTHER, 0, n),) if d in padded else dim
            for d, (dim, n) in enumerate(zip(digits, self.shape(op.node)))
        )
        self.settle(op, normalise(out), [(x, digits, ())])


__all__ = ["DigitRules"]
