"""Rules for ops that keep or move the (rows, cols) dims without windows over them.

Pointwise and broadcasting ops (branches meet at add/mul), reductions, softmax-like ops along
a dim, linear layers, normalisations, reshapes, permutes, indexing and slicing, split and
cat: each rule records a node's ``NodeValue`` and back-edges (see erf.rf.builder_core).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from torch import fx

from erf.rf.boxes import AxisMap, AxisRule, BoxRule, Edge, box_rule, identity, shift
from erf.rf.builder_core import BuilderCore
from erf.rf.intervals import Interval, affine_interval, crop_interval
from erf.rf.node_values import (
    CONST,
    NodeOp,
    NodeValue,
    common_period,
    flat_nodes,
    grid_hw,
    spatial_hw,
)

GATE_NOTE = (
    "global_context: a global branch (per-channel scalars from the whole map, squeeze-excitation"
    " style) gates this map"
)
STAT_NOTE = (
    "global_context: normalisation statistics over the spatial dims (GroupNorm/InstanceNorm/"
    "LayerNorm) are per-sample scalars of the whole map, treated as constants"
)
CAT_NOTE = "global_context: a global branch is concatenated with local ones (e.g. ASPP pooling)"
TOKEN_ERROR = (
    "token outputs are not supported: the spatial dims were flattened into a token sequence "
    "(ViT/Swin-style)"
)


def _broadcast(iv: Interval) -> Interval:
    """A size-1 axis broadcast over a longer one: every unit reads unit 0."""
    return (0, 0)


def whole_axis(n_in: int) -> AxisMap:
    """Every unit reads all ``n_in`` input units of the axis (a reduction over it, a softmax
    along it, a linear layer across it)."""
    return AxisMap(lambda iv: (0, n_in - 1), lambda u, n: range(n))


class TensorRules(BuilderCore):
    """Rules for pointwise, broadcasting, reduction, normalisation and layout ops."""

    # ---- pointwise, broadcasting and channel ops

    def pointwise(self, op: NodeOp) -> None:
        """Spatially 1x1: activations, eval BatchNorm, dropout, dtype casts, channel shuffles."""
        self.same(op, self.local_input(op))

    def elementwise(self, op: NodeOp) -> None:
        """Broadcasting n-ary ops (add, mul, where, ...): every local argument is a branch;
        per-sample scalars (gates) set ``global_context``; a global map (attention's output
        added back) makes each unit read, besides its own units, every unit its sources read
        (``whole_map_edges``); size-1 axes broadcast."""
        out_shape = self.shape(op.node)
        if out_shape is None:
            raise self.unsupported(op, "non-tensor result")
        tensors = [a for a in flat_nodes((op.args, op.kwargs)) if self.val(a).kind != "const"]
        edges: list[Edge] = []
        layout, base, context = None, None, False
        nd = len(out_shape)
        joined: list[NodeValue] = []
        for t in tensors:
            v = self.val(t)
            if v.kind == "global" and not v.scalar:  # a global map joins (attention's output)
                joined.append(v)
                continue
            if v.kind == "global":
                context = True
                self.note(op, GATE_NOTE)
                continue
            if v.items is not None:
                raise self.unsupported(op, "tuple argument")
            shift = nd - len(self.shape(t))
            lay = tuple(d + shift for d in v.layout)
            if layout is not None and lay != layout:
                raise self.unsupported(op, "its arguments hold the spatial dims at different dims")
            if base is not None and v.flat != base.flat:
                raise self.unsupported(op, "its arguments flatten the grid differently")
            layout, base, context = lay, base or v, context or v.context
            edges.append((t.name, self.broadcast_rule(op, t, lay, out_shape)))
        if joined and all(self.read_whole(joined, n) for n, _ in edges):
            self.set_global(op, "a global map joins the local ones, which it reads whole")
            return
        merge_edges = [e for e in edges if e[1] is identity]
        period = common_period(self.vals[n] for n, _ in edges)
        for v in joined:
            edges += self.whole_map_edges(op, v)
        self.set(op, replace(base, layout=layout, period=period, context=context), edges)
        if len(merge_edges) > 1:
            self.merges[op.node.name] = merge_edges

    def read_whole(self, joined: Sequence[NodeValue], name: str) -> bool:
        """Some global map of ``joined`` reads every unit of local node ``name``: ``name`` is
        one of its sources, or a source reaches it through rules that keep every unit where
        it is (a ViT's residual stream ``x`` beside ``attn(norm(x))``). Then adding ``name``
        to the global map changes no unit's reads, and the sum is global."""
        seen: set[str] = set()
        stack = [src for v in joined for src in v.sources]
        while stack:
            n = stack.pop()
            if n == name:
                return True
            if n in seen:
                continue
            seen.add(n)
            stack += [arg for arg, rule in self.edges.get(n, ()) if rule is identity]
        return False

    def whole_map_edges(
        self, op: NodeOp, v: NodeValue, piece: tuple[int, int, int] | None = None
    ) -> list[Edge]:
        """Edges from ``op``'s node to every source of the global map ``v``: each unit reads
        every unit of each source (with ``piece`` = (axis, offset, size), only the units of
        that stretch of the axis do: a global piece of a spatial cat). Irregular: a unit's
        box is its own reads joined with the sources' whole maps."""
        nodes = {n.name: n for n in op.node.graph.nodes}
        edges: list[Edge] = []
        for src in v.sources:
            hw = grid_hw(self.shape(nodes[src]), self.vals[src])
            rules = [
                _piece_reads_all(n, *piece[1:])
                if piece is not None and piece[0] == a
                else whole_axis(n)
                for a, n in enumerate(hw)
            ]
            edges.append((src, BoxRule(*rules)))
        if edges:
            self.mark_irregular(op)
        return edges

    def expand(self, op: NodeOp) -> None:
        """expand / expand_as / broadcast_to: size-1 axes repeated, so every unit there reads
        unit 0; a global or constant tensor stays what it is (``expand_as``'s second argument
        only lends its shape)."""
        x = op.args[0]
        v = self.val(x)
        if v.kind in ("global", "const"):
            self.vals[op.node.name] = v
            return
        x = self.local_input(op)
        out_shape = self.shape(op.node)
        lay = tuple(d + len(out_shape) - len(self.shape(x)) for d in v.layout)
        self.same(op, x, layout=lay, rule=self.broadcast_rule(op, x, lay, out_shape))

    def broadcast_rule(
        self, op: NodeOp, t: fx.Node, lay: tuple[int, ...], out_shape: Sequence[int]
    ) -> BoxRule:
        """The rule of local map ``t`` broadcast to ``out_shape``, its spatial dims at ``lay``
        there: an axis of one unit repeated reads unit 0; a flattened grid is not broadcast."""
        v, shape = self.val(t), self.shape(t)
        if v.flat is not None:
            if shape[v.layout[0]] != out_shape[lay[0]]:
                raise self.unsupported(op, "it broadcasts a flattened grid")
            return identity
        arg_hw, out_hw = spatial_hw(shape, v.layout), tuple(out_shape[d] for d in lay)
        return box_rule(*(_broadcast if a == 1 < b else None for a, b in zip(arg_hw, out_hw)))

    @staticmethod
    def softmax_dim(op: NodeOp) -> Any:
        """The dim of softmax/log_softmax/normalize (function or nn.Softmax-like module)."""
        if op.module is not None:
            return op.module.dim
        normalize = op.name == "normalize"
        return op.arg(2 if normalize else 1, "dim", 1 if normalize else None)

    def dim_pointwise(self, op: NodeOp) -> None:
        """softmax/log_softmax/normalize along ``dim``: pointwise unless dim is spatial."""
        self._dim_op(op, self.local_input(op), self.softmax_dim(op))

    def m_softmax(self, op: NodeOp) -> None:
        x = self.local_input(op)
        dim = self.softmax_dim(op)
        self._dim_op(op, x, 1 if dim is None and len(self.shape(x)) == 4 else dim)

    def _dim_op(self, op: NodeOp, x: fx.Node, dim: Any) -> None:
        """Softmax-like along ``dim``: a spatial dim makes each unit read its whole line."""
        nd = len(self.shape(x))
        if dim is None:  # F.softmax(x) / nn.Softmax()
            dim = implicit_softmax_dim(nd)
        dims = self.dims(op, dim, nd)
        if op.name != "normalize" and all(d > 0 and self.shape(x)[d] == 1 for d in dims):
            self.vals[op.node.name] = CONST  # over one element: softmax 1, log_softmax 0
            return  # (not the batch dim 0: shapes are traced with a batch of 1)
        if not self._along(op, x, dims, keep=True):
            self.same(op, x)  # along channels (attention scores over keys): pointwise

    def _along(self, op: NodeOp, x: fx.Node, dims: list[int], keep: bool) -> bool:
        """An op that reads whole lines along ``dims``: False when no dim is spatial (the caller
        decides); global when every image axis is read whole (or has one unit); else local,
        each unit reading every unit of the spatial dims among ``dims`` (which must be kept)."""
        v, shape = self.val(x), self.shape(x)
        spatial = [ax for ax, d in enumerate(v.layout) if d in dims]
        if not spatial:
            return False
        hw = spatial_hw(shape, v.layout)
        axes = range(len(v.layout))
        summarised = math.prod(hw[ax] for ax in spatial) > 1  # else: a line of one unit
        if summarised and all(ax in spatial or hw[ax] == 1 for ax in axes):
            out = self.shape(op.node) or _first_shape(op.node)
            left = math.prod(out[d] for d in set(v.layout)) if keep else 1
            self.set_global(op, f"{op.name} over the spatial dims", scalar=left == 1)
            return True
        if not keep:
            raise self.unsupported(op, "it drops a spatial dim (use keepdim=True)")
        out_hw = spatial_hw(self.shape(op.node) or _first_shape(op.node), v.layout)
        rules = [whole_axis(hw[ax]) if ax in spatial else None for ax in axes]
        factors = [Fraction(hw[ax], out_hw[ax]) if ax in spatial else Fraction(1) for ax in axes]
        out = v.scaled(factors)
        rule = box_rule(*rules)
        if _tuple_result(op.node):  # (values, indices)
            items = ((out, identity), (out, identity))
            self.set(op, replace(out, items=items), [(x.name, rule)])
        else:
            self.set(op, out, [(x.name, rule)])
        return True

    @staticmethod
    def is_pairwise(op: NodeOp) -> bool:
        """``max``/``min`` of two tensors: elementwise, not a reduction."""
        return op.name in ("max", "min") and isinstance(op.arg(1, "other"), fx.Node)

    @staticmethod
    def reduced_dim(op: NodeOp) -> Any:
        """The ``dim`` argument of a reduction (``torch.norm(x, p, dim)``: the third)."""
        return op.arg(2 if op.name == "norm" else 1, "dim")

    def reduction(self, op: NodeOp) -> None:
        """mean/sum/amax/max/...: over one spatial dim (keepdim) each unit reads its whole line;
        over both (or all dims) global; else channel-only. ``max``/``min`` of two tensors are
        elementwise."""
        if self.is_pairwise(op):
            self.elementwise(op)
            return
        x = self.local_input(op)
        dim = self.reduced_dim(op)
        nd, v = len(self.shape(x)), self.val(x)
        if dim is None or (isinstance(dim, (tuple, list)) and not dim):
            self.set_global(op, f"{op.name} over all dims", scalar=True)
            return
        dims = self.dims(op, dim, nd)
        keep = len(self.shape(op.node) or _first_shape(op.node)) == nd
        if self._along(op, x, dims, keep):
            return
        layout = v.layout if keep else tuple(d - sum(r < d for r in dims) for d in v.layout)
        if _tuple_result(op.node):  # (values, indices)
            item = replace(v, layout=layout)
            items = ((item, identity), (item, identity))
            self.set(op, replace(v, layout=layout, items=items), [(x.name, identity)])
        else:
            self.same(op, x, layout=layout)

    def linear(self, op: NodeOp) -> None:
        """nn.Linear / F.linear / matmul by a constant: acts on the last dim (a constant times
        a map, ``W @ x``: on dim -2); pointwise when that is a channel dim (channels-last
        blocks); across a spatial dim every unit reads the whole line (global when the other
        axis has one unit). A 1-D constant drops the dim it sums over."""
        if op.name == "matmul" and self.val(op.arg(1, "other")).kind != "const":
            if self.val(op.args[0]).kind != "const":
                self.matmul_maps(op)
                return
            x, d = op.arg(1, "other"), -2  # a constant times a map (W @ x): along dim -2
        else:
            x, d = self.local_input(op), -1
        nd, out = len(self.shape(x)), self.shape(op.node)
        d %= nd
        if out is None or len(out) not in (nd, nd - 1):
            raise self.unsupported(op, "the constant has more dims than the map")
        keep = len(out) == nd  # else a 1-D constant: the product drops dim d
        if not self._along(op, x, [d], keep=keep):
            self.same(op, x, layout=tuple(e - (e > d and not keep) for e in self.val(x).layout))

    def matmul_maps(self, op: NodeOp) -> None:
        """A matrix product of two maps (attention: q @ k^T, then scores @ v). Where either
        operand holds a spatial dim in its last two (matrix) dims, every output entry sums over
        the tokens of the contracted dim, and attention's scores mix every query with every key:
        global, exactly so once the scores meet the values. Where both hold the spatial dims at
        the same batch dims, the product is per unit (an elementwise merge)."""
        a, b = op.args[0], op.arg(1, "other")
        nd = len(self.shape(op.node))
        lays = []
        for t in (a, b):
            v = self.val(t)
            if v.kind == "global":
                self.set_global(op, "a matrix product with a global map")
                return
            if v.kind == "local":
                if v.items is not None:
                    raise self.unsupported(op, "tuple argument")
                shift = nd - len(self.shape(t))
                lays.append(tuple(d + shift for d in v.layout))
        if all(d < nd - 2 for lay in lays for d in lay) and len(set(lays)) == 1:
            self.elementwise(op)
        else:
            self.set_global(op, "attention (a matrix product of two maps over their tokens)")

    def m_multihead_attention(self, op: NodeOp) -> None:
        """nn.MultiheadAttention(query, key, value): every query token reads every key and
        value token along the sequence dim (1 with ``batch_first``, else 0): global."""
        seq = 1 if op.module.batch_first else 0
        for t in flat_nodes(op.args[:3]):
            v = self.val(t)
            if v.kind == "local" and set(v.layout) != {seq}:
                raise self.unsupported(op, f"its spatial units are not the sequence dim ({seq})")
        self.set_global(op, "attention over all tokens")

    def attention(self, op: NodeOp) -> None:
        """F.scaled_dot_product_attention(q, k, v): each query token reads every key and value
        token along dim -2; global when the tokens are the spatial units there."""
        for t in flat_nodes(op.args[:3]):
            v = self.val(t)
            if v.kind == "local" and not all(d == len(self.shape(t)) - 2 for d in v.layout):
                raise self.unsupported(op, "its spatial units are not the token dim (-2)")
        self.set_global(op, "attention over all tokens")

    def m_layer_norm(self, op: NodeOp) -> None:
        self._layer_norm(op, len(op.module.normalized_shape))

    def f_layer_norm(self, op: NodeOp) -> None:
        shape = op.arg(1, "normalized_shape")
        self._layer_norm(op, len(shape) if isinstance(shape, (tuple, list)) else 1)

    def _layer_norm(self, op: NodeOp, n_dims: int) -> None:
        """LayerNorm over the last ``n_dims`` dims: pointwise over channels; over spatial dims
        its statistics are global (treated as constants, ``global_context``)."""
        x = self.local_input(op)
        nd = len(self.shape(x))
        if any(d >= nd - n_dims for d in self.val(x).layout):
            self.stat_norm(op)
        else:
            self.same(op, x)

    def m_instance_norm(self, op: NodeOp) -> None:
        m = op.module
        if m.track_running_stats and not m.training:
            self.pointwise(op)
        else:
            self.stat_norm(op)

    def stat_norm(self, op: NodeOp) -> None:
        """GroupNorm/InstanceNorm (and LayerNorm over spatial dims): pointwise with per-sample
        statistics over the whole map, treated as constants; sets ``global_context``."""
        self.note(op, STAT_NOTE)
        self.same(op, self.local_input(op), context=True)

    # ---- layout ops

    def reshape(self, op: NodeOp) -> None:
        """flatten/reshape/view/(un)squeeze: keeps (rows, cols) when both dims survive (same
        size and same product of the dims before them); flattening them into a vector is
        global, into a token sequence is out of scope."""
        x = self.local_input(op)
        in_shape, out_shape, v = self.shape(x), self.shape(op.node), self.val(x)
        if v.flat is not None:
            self._reshape_tokens(op, x)
            return
        layout = []
        for d in v.layout:
            pre, size = math.prod(in_shape[:d]), in_shape[d]
            match = [
                e
                for e in range(len(out_shape))
                if out_shape[e] == size and math.prod(out_shape[:e]) == pre
            ]
            if not match:
                break
            layout.append(match[0] if size > 1 else match[_one_unit_place(in_shape, d, len(match))])
        merged, hw = _merged_dim(in_shape, out_shape, v.layout), spatial_hw(in_shape, v.layout)
        runs = [math.prod(in_shape[:d]) for d in v.layout if in_shape[d] == 1]
        shared = {p for p in runs if runs.count(p) > 1}  # two axes of one unit in one run
        # that the reshape keeps but lengthens or shortens (dropping it: a pooled map flattened)
        if any(_run_length(out_shape, p) not in (0, _run_length(in_shape, p)) for p in shared):
            raise self.unsupported(op, "an ambiguous reshape of spatial dims of one unit")
        if len(set(layout)) < len(layout) or (merged is not None and math.prod(hw) == 1):
            raise self.unsupported(op, "an ambiguous reshape of spatial dims of one unit")
        if len(layout) == len(v.layout):
            self.same(op, x, layout=tuple(layout))
        elif merged is not None:  # (rows, cols) flattened into tokens, row-major
            self.same(op, x, layout=(merged, merged))
            self.vals[op.node.name] = replace(self.vals[op.node.name], flat=(0, *hw))
        elif len(out_shape) <= 2:
            self.set_global(op, "flatten of the spatial dims", scalar=True)
        else:
            self.vals[op.node.name] = NodeValue(
                "tokens", reason=f"{TOKEN_ERROR} at {self.describe(op.node)}"
            )

    def _reshape_tokens(self, op: NodeOp, x: fx.Node) -> None:
        """Reshapes of a flattened grid: the token dim kept whole (heads split off the
        channels), or unflattened back into (rows, cols) once no prefix token is left."""
        in_shape, out_shape, v = self.shape(x), self.shape(op.node), self.val(x)
        d = v.layout[0]
        pre = math.prod(in_shape[:d])
        if math.prod(v.flat[1:]) == 1:
            raise self.unsupported(op, "an ambiguous reshape of a one-unit grid")
        starts = [e for e in range(len(out_shape)) if math.prod(out_shape[:e]) == pre]
        for e in starts:  # unflattened back into (rows, cols) first: [.., 5] -> [.., 5, 1]
            if v.flat[0] == 0 and tuple(out_shape[e : e + 2]) == v.flat[1:]:
                self.same(op, x, layout=(e, e + 1))
                self.vals[op.node.name] = replace(self.vals[op.node.name], flat=None)
                return
        for e in starts:
            if out_shape[e] == in_shape[d]:
                self.same(op, x, layout=(e, e))
                return
        self.vals[op.node.name] = NodeValue(
            "tokens", reason=f"{TOKEN_ERROR} at {self.describe(op.node)}"
        )

    @staticmethod
    def dim_order(op: NodeOp, nd: int) -> list[int]:
        """permute / transpose / swapaxes as a permutation: output dim i is input dim
        ``order[i]``."""
        if op.name in ("transpose", "swapaxes", "swapdims"):
            d0, d1 = op.arg(1, "dim0") % nd, op.arg(2, "dim1") % nd
            order = list(range(nd))
            order[d0], order[d1] = d1, d0
            return order
        dims = op.args[1:] if op.node.op == "call_method" else (op.arg(1, "dims"),)
        if "dims" in op.kwargs:
            dims = (op.kwargs["dims"],)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return [d % nd for d in dims]

    def permute(self, op: NodeOp) -> None:
        """permute / transpose / swapaxes: the spatial dims move with the others."""
        x = self.local_input(op)
        order = self.dim_order(op, len(self.shape(x)))
        self.same(op, x, layout=tuple(order.index(d) for d in self.val(x).layout))

    def getitem(self, op: NodeOp) -> None:
        """Item of a tuple (chunk/split), or tensor indexing: channel/batch indexing is
        pointwise, slices ``start:stop:step`` of a spatial dim shift and stride it."""
        if self.tuple_item(op):
            return
        x, idx = op.args[0], op.args[1]
        v = self.val(x)
        x = self.local_input(op)
        in_shape = self.shape(x)
        idx = expand_index(idx, len(in_shape))
        if idx is None:
            raise self.unsupported(op, "indexing with tensors or booleans")
        if v.flat is not None:
            self._index_tokens(op, x, idx)
            return
        layout: dict[int, int] = {}
        rules: dict[int, AxisRule] = {}
        k = len(v.layout)
        factors = dict.fromkeys(range(k), Fraction(1))
        d_in = d_out = 0
        for i in idx:
            if i is None:
                d_out += 1
                continue
            if d_in >= len(in_shape):
                break
            if d_in in v.layout:
                ax = v.layout.index(d_in)
                if isinstance(i, int):
                    raise self.unsupported(op, "integer index on a spatial dim")
                start, _, step = i.indices(in_shape[d_in])
                if (start, step) != (0, 1):
                    rules[ax] = lambda iv, s=start, t=step: affine_interval(iv, t, s)
                    factors[ax] = Fraction(step)
                layout[ax] = d_out
            if not isinstance(i, int):
                d_out += 1
            d_in += 1
        out = replace(
            v.scaled(tuple(factors[a] for a in range(k))), layout=tuple(layout[a] for a in range(k))
        )
        self.set(op, out, [(x.name, box_rule(*(rules.get(a) for a in range(k))))])

    def tuple_item(self, op: NodeOp) -> bool:
        """``t[i]`` of a tuple value (chunk/split/unbind): record item i; False otherwise."""
        x, idx = op.args[0], op.args[1]
        items = self.val(x).items
        if items is None:
            return False
        if isinstance(idx, slice):  # a slice of the tuple: the tuple of those items
            self.set(op, replace(self.val(x), items=items[idx]), [(x.name, identity)])
            return True
        item, rule = items[idx]
        self.set(op, item, [(x.name, rule)])
        return True

    def _index_tokens(self, op: NodeOp, x: fx.Node, idx: tuple) -> None:
        """Indexing a flattened grid: dropping the prefix tokens (``x[:, P:]``) keeps the grid;
        picking prefix tokens only gives a constant (before any mixing they are parameters)."""
        v, in_shape = self.val(x), self.shape(x)
        d = v.layout[0]
        if any(i is None for i in idx[: d + 1]) or any(isinstance(i, int) for i in idx[:d]):
            raise self.unsupported(op, "indexing before the token dim")
        i, n, prefix = idx[d], in_shape[d], v.flat[0]
        if isinstance(i, int):
            if i % n < prefix:
                self.vals[op.node.name] = CONST
                return
            raise self.unsupported(op, "integer index of a grid token")
        start, stop, step = i.indices(n)
        if step == 1 and stop <= prefix:
            self.vals[op.node.name] = CONST
        elif step == 1 and start in (0, prefix) and stop == n:
            out = replace(v, flat=(prefix - start, *v.flat[1:]))
            self.same(op, x)
            self.vals[op.node.name] = out
        else:
            raise self.unsupported(op, "a slice of grid tokens")

    def split(self, op: NodeOp) -> None:
        """chunk/split/unbind: a tuple whose items are channel slices (identity) or spatial
        pieces (shifted by their offset)."""
        x = self.local_input(op)
        v, nd = self.val(x), len(self.shape(x))
        dim = op.arg(2 if op.name in ("chunk", "split") else 1, "dim", 0) % nd
        if v.flat is not None and dim in v.layout:
            raise self.unsupported(op, "it splits the tokens of a flattened grid")
        metas = op.node.meta.get("tensor_meta")
        items = []
        offset = 0
        for meta in metas:
            if op.name == "unbind":
                if dim in v.layout:
                    raise self.unsupported(op, "unbind along a spatial dim")
                lay = tuple(d - (d > dim) for d in v.layout)
                items.append((replace(v, layout=lay), identity))
                continue
            rule: BoxRule = identity
            if dim in v.layout and offset:
                ax = v.layout.index(dim)
                rule = box_rule(*[shift(offset) if a == ax else None for a in range(len(v.layout))])
            items.append((v, rule))
            offset += meta.shape[dim]
        out = replace(v, items=tuple(items))
        self.set(op, out, [(x.name, identity)])

    def cat(self, op: NodeOp) -> None:
        """cat/stack: along channels every local piece is a branch (aligned, hull); along a
        spatial dim each piece covers its own units; global pieces set ``global_context``."""
        tensors = op.arg(0, "tensors")
        if isinstance(tensors, fx.Node):  # torch.cat(x.chunk(2, 1)): one tuple value
            raise self.unsupported(op, "its pieces are one tuple value; pass a list of its items")
        tensors = list(tensors)
        out_shape = self.shape(op.node)
        nd = len(out_shape)
        dim = op.arg(1, "dim", 0) % nd
        stack = op.name == "stack"
        flat = [t for t in tensors if isinstance(t, fx.Node) and self.val(t).flat is not None]
        if flat and not stack and dim in self.val(flat[0]).layout:
            self._cat_tokens(op, tensors, dim)
            return
        edges: list[Edge] = []
        layout, base, context, offset = None, None, False, 0
        joined: list[tuple[NodeValue, int, int]] = []
        for t in tensors:
            v = self.val(t) if isinstance(t, fx.Node) else CONST
            size = 1 if stack else self.shape(t)[dim]
            if v.kind == "global" and not v.scalar:  # a global map joins (its units read all)
                joined.append((v, offset, size))
                offset += size
                continue
            if v.kind == "global":
                context = True
                self.note(op, CAT_NOTE)
            if v.kind == "local":
                if v.items is not None:
                    raise self.unsupported(op, "tuple argument")
                lay = tuple(d + (stack and d >= dim) for d in v.layout)
                if layout is not None and lay != layout:
                    raise self.unsupported(op, "pieces hold the spatial dims at different dims")
                layout, base, context = lay, base or v, context or v.context
                rule: BoxRule = identity
                if dim in lay and not stack:
                    self.mark_irregular(op)
                    ax = lay.index(dim)
                    crop = lambda iv, o=offset, n=size: crop_interval(iv, o, n)  # noqa: E731
                    rule = box_rule(*[crop if a == ax else None for a in range(len(lay))])
                edges.append((t.name, rule))
            offset += size
        period = common_period(self.vals[n] for n, _ in edges)
        out = replace(base, layout=layout, period=period, context=context)
        globals_ = [v for v, _, _ in joined]
        if joined and dim not in layout and all(self.read_whole(globals_, n) for n, _ in edges):
            self.set_global(op, "a global map is concatenated with local ones it reads whole")
            return
        merge = dim not in layout and len(edges) > 1
        for v, start, size in joined:
            piece = (layout.index(dim), start, size) if dim in layout and not stack else None
            edges += self.whole_map_edges(op, v, piece)
        self.set(op, out, edges)
        if merge:
            self.merges[op.node.name] = [e for e in edges if e[1] is identity]

    def _cat_tokens(self, op: NodeOp, tensors: list, dim: int) -> None:
        """Prefix tokens (class, distillation, registers) put before a flattened grid."""
        prefix, grid = _token_pieces(self, op, tensors, dim)
        v = self.val(grid)
        self.same(op, grid)
        self.vals[op.node.name] = replace(v, flat=(v.flat[0] + prefix, *v.flat[1:]))


def _piece_reads_all(n_in: int, start: int, size: int) -> AxisMap:
    """One axis of a global piece of a spatial cat: its units ``start .. start + size - 1``
    read every unit of the source's axis, the others none."""

    def interval(iv: Interval) -> Interval | None:
        return (0, n_in - 1) if iv[0] < start + size and iv[1] >= start else None

    return AxisMap(interval, lambda u, n: range(n) if start <= u < start + size else ())


def _token_pieces(b: TensorRules, op: NodeOp, tensors: list, dim: int) -> tuple[int, Any]:
    """Constant pieces before one flattened-grid piece of a cat along the token dim: their
    token count and the grid piece (refused otherwise)."""
    prefix, grid = 0, None
    for t in tensors:
        v = b.val(t) if isinstance(t, fx.Node) else CONST
        if v.kind == "const" and grid is None:
            prefix += b.shape(t)[dim]
        elif v.kind == "local" and v.flat is not None and grid is None:
            grid = t
        else:
            raise b.unsupported(op, "only constant tokens may be put before a token grid")
    return prefix, grid


def _one_unit_place(in_shape: Sequence[int], d: int, n_out: int) -> int:
    """Which of the ``n_out`` size-1 output dims a reshape gives to dim ``d`` of size 1 (an
    axis of one unit). The size-1 dims at one prefix product form a run, in the input and in
    the output; only the run's length can change (dims of one element added or dropped).
    Dim ``d`` keeps the number of run dims after it (as many from the run's end), so that the
    dims that followed it (a channel dim of one element in a channels-last map) still follow
    it: [1, 2, 1, 1] -> [1, 2, 1, 1, 1, 1] (Swin windows of one unit: rows, window rows,
    cols, window cols, channels) gives the cols dim 2 the fifth dim, 4, not the channel dim.
    Where the output run is shorter, the first dim of the run."""
    after = _run_length(in_shape[d + 1 :], 1)  # the size-1 dims right after d
    return max(0, n_out - 1 - after)


def _run_length(shape: Sequence[int], pre: int) -> int:
    """The number of size-1 dims of ``shape`` after which the dims multiply to ``pre``."""
    return sum(1 for e in range(len(shape)) if shape[e] == 1 and math.prod(shape[:e]) == pre)


def _merged_dim(in_shape: Any, out_shape: Any, layout: tuple[int, ...]) -> int | None:
    """The dim of ``out_shape`` into which a reshape merges the rows and cols of a 2-D map
    (adjacent dims, rows first: row-major tokens), or None."""
    if len(layout) != 2 or layout[1] != layout[0] + 1:
        return None
    d = layout[0]
    pre, size = math.prod(in_shape[:d]), in_shape[d] * in_shape[d + 1]
    for e in range(len(out_shape)):
        if out_shape[e] == size and math.prod(out_shape[:e]) == pre:
            return e
    return None


def implicit_softmax_dim(nd: int) -> int:
    """The dim torch's softmax, log_softmax and softmin use when given none, for an ``nd``-dim
    tensor (torch.nn.functional._get_softmax_dim): 0 for 0-, 1- and 3-D tensors, else 1."""
    return 0 if nd in (0, 1, 3) else 1


def expand_index(idx: Any, ndim: int) -> tuple | None:
    """Index -> tuple of None/int/slice covering all ``ndim`` dims (None if unsupported)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    ok = (type(None), type(Ellipsis), int, slice)
    if not all(isinstance(i, ok) and not isinstance(i, bool) for i in idx):
        return None
    rest = ndim - sum(1 for i in idx if isinstance(i, (int, slice)))
    if Ellipsis in idx:
        k = idx.index(Ellipsis)
        return idx[:k] + (slice(None),) * rest + idx[k + 1 :]
    return idx + (slice(None),) * rest


def _tuple_result(node: fx.Node) -> bool:
    """The node returns a tuple of tensors (torch.max(x, dim) -> (values, indices)); a single
    tensor's TensorMetadata is a NamedTuple too, but has a shape."""
    meta = node.meta.get("tensor_meta")
    return isinstance(meta, tuple) and not hasattr(meta, "shape")


def _first_shape(node: fx.Node) -> tuple[int, ...]:
    """Shape of the first tensor of a tuple result (torch.max(x, dim) -> (values, indices))."""
    return tuple(node.meta["tensor_meta"][0].shape)


__all__ = [
    "CAT_NOTE",
    "GATE_NOTE",
    "STAT_NOTE",
    "TOKEN_ERROR",
    "TensorRules",
    "expand_index",
    "implicit_softmax_dim",
]
