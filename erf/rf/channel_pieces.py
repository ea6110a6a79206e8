"""Which channels read what: the pieces of a concatenation along a non-spatial dim.

The engine keeps one set of back-edges per node, shared by all its channels: a node's box is
the union of what every channel reads. That is exact as long as every channel reads the same
box, or a later op mixes the channels together again. A concatenation along channels (or any
non-spatial dim) of pieces that read different boxes breaks it for a selection of part of the
channels: ``cat([conv3x3(x), x], 1).chunk(2, 1)[1]`` is ``x`` itself, while the cat's edges give
it the 3 x 3 box.

``PieceTracking.track_pieces`` follows, after each node's rule, a label per non-spatial
position (``Pieces``: the node's shape with its spatial dims set to 1, an int per position;
positions with equal labels read equal boxes). A cat of pieces that are not all the same node
gives each piece labels of its own; pointwise and broadcasting ops pair their inputs' labels
(finer, never coarser); ops that mix a dim (a convolution with ``groups=1`` or within each
group, a linear layer, a reduction, a softmax along it) give every position the set of labels
along it; reshapes and permutes move the labels with the elements. Labels all equal: the mark
is cleared (``None``). Where the labels cannot be followed (a map split into windows, an op
whose output channels do not line up with its input's), they are ``UNKNOWN``.

A selection (indexing, an item of chunk/split/unbind) that keeps a position of every label
reads the union of every piece, which the edges give (GhostNet's ``cat([x1, x2], 1)[:, :oup]``).
One that leaves some label out, taken (through reshapes, permutes and pointwise ops only, whose
units read the same units) from the channels of one cat, and keeping every label of each piece
it touches, reads exactly what those pieces read: its edges are rewired to them (identity), so
its box is the union of theirs (``rewire``). Other selections keep the edges of the whole value
(the union of every piece: too large a box where the pieces left out read more than the ones
kept; not detected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import fx

from erf.rf.boxes import identity
from erf.rf.node_values import NodeOp, NodeValue
from erf.rf.tensor_rules import TensorRules, expand_index, implicit_softmax_dim


@dataclass(frozen=True)
class Pieces:
    """Labels of a node's non-spatial positions: ``shape`` is the node's shape with its spatial
    dims set to 1, ``labels`` the row-major ints (None for ``UNKNOWN``: labels not followed)."""

    shape: tuple[int, ...] | None
    labels: tuple[int, ...] = ()


UNKNOWN = Pieces(None)


class PieceTracking(TensorRules):
    """The labels of ``Pieces`` per node (see the module docstring)."""

    piece_ids: dict[Any, int]
    cat_pieces: dict[str, list[tuple[str | None, frozenset[int]]]]
    label_source: dict[str, str]

    # ---- labels

    def label(self, key: Any) -> int:
        """An int for ``key`` (0 is reserved for "every channel alike")."""
        ids = self.piece_ids
        return ids.setdefault(key, len(ids) + 1)

    def label_shape(self, node: fx.Node, v: NodeValue | None = None) -> tuple[int, ...] | None:
        """The node's shape with its spatial dims set to 1 (None: windows, tuples, no shape)."""
        v = v or self.val(node)
        shape = self.shape(node)
        if v.kind != "local" or shape is None or v.digits is not None or v.items is not None:
            return None
        if v.layout is None:
            return None
        return tuple(1 if d in v.layout else n for d, n in enumerate(shape))

    def labels_of(self, node: Any) -> np.ndarray | Pieces | None:
        """The labels of an input: an int array, ``UNKNOWN``, or None (every channel alike)."""
        if not isinstance(node, fx.Node):
            return None
        v = self.val(node)
        p = v.pieces if v.kind == "local" else None
        if p is None:
            return None
        shape = self.label_shape(node)
        if p.shape is None or shape is None or p.shape != shape:
            return UNKNOWN
        return np.array(p.labels, dtype=np.int64).reshape(p.shape)

    def pair(self, arrays: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        """Labels of positions that read what each array's label there reads: broadcast to
        ``shape`` and paired (finer than each; 0 is neutral). ValueError if not broadcastable."""
        out = np.zeros(shape, dtype=np.int64)
        for a in arrays:
            a = np.broadcast_to(a, shape)
            if not out.any():
                out = np.array(a)
                continue
            flat = [self.label(("pair", int(x), int(y))) if x and y else int(x or y)
                    for x, y in zip(out.ravel(), a.ravel())]  # fmt: skip
            out = np.array(flat, dtype=np.int64).reshape(shape)
        return out

    def mix(self, a: np.ndarray, dims: Sequence[int]) -> np.ndarray:
        """Every position reads every position along ``dims`` (kept with size 1)."""
        dims = sorted({d % a.ndim for d in dims})
        rest = [d for d in range(a.ndim) if d not in dims]
        moved = np.transpose(a, rest + dims).reshape(
            [a.shape[d] for d in rest] + [math.prod(a.shape[d] for d in dims)]
        )
        mixed = np.array(
            [self.label(("mix", frozenset(int(x) for x in row))) for row in
             moved.reshape(-1, moved.shape[-1])],
            dtype=np.int64,
        ).reshape([a.shape[d] if d in rest else 1 for d in range(a.ndim)])  # fmt: skip
        return mixed

    def store(self, node: fx.Node, out: np.ndarray | Pieces | None) -> None:
        """Record labels on the node's value: cleared when every position has the same label."""
        v = self.vals[node.name]
        if isinstance(out, Pieces) and out.shape is not None:
            out = np.array(out.labels, dtype=np.int64).reshape(out.shape)
        if isinstance(out, np.ndarray):
            shape = self.label_shape(node, v)
            if shape is None or tuple(out.shape) != shape:
                out = UNKNOWN
            elif out.size == 0 or (out == out.flat[0]).all():
                out = None
            else:
                out = Pieces(shape, tuple(int(x) for x in out.ravel()))
        self.vals[node.name] = replace(v, pieces=out)

    # ---- the pass

    def track_pieces(self, op: NodeOp, kind: str) -> None:
        """After ``op``'s rule: its labels (``kind``: which rule ran, see erf.rf.builder)."""
        node = op.node
        v = self.vals.get(node.name)
        if v is None or v.kind != "local":
            return
        if kind == "cat":
            self.store(node, self.cat_labels(op))
            return
        ins = {n.name: self.labels_of(n) for n in node.all_input_nodes}
        marked = {k: a for k, a in ins.items() if a is not None}
        if kind == "split":
            self.split_labels(op, marked)
            return
        if v.items is not None:  # (values, indices) of a reduction: not followed
            if marked:
                items = tuple((replace(iv, pieces=UNKNOWN), r) for iv, r in v.items)
                self.vals[node.name] = replace(v, pieces=UNKNOWN, items=items)
            return
        if kind == "item":  # an item of a tuple: the labels split_labels gave it
            self.store(node, v.pieces)
            split = op.args[0]
            kept = v.pieces
            if (
                isinstance(split, fx.Node)
                and self.edges.get(split.name)
                and isinstance(kept, Pieces)
            ):
                _, rule = self.edges[split.name][0]
                if rule is identity and isinstance(split.args[0], fx.Node) and kept.shape:
                    self.rewire(node, split.name, split.args[0].name, set(kept.labels))
            return
        if kind == "conv":
            try:
                out = self.conv_labels(op, marked)
            except (ValueError, TypeError, IndexError):
                out = UNKNOWN
            self.store(node, out)
            return
        if not marked:
            self.store(node, None)
            return
        if any(a is UNKNOWN for a in marked.values()) or v.digits is not None:
            out = self.unknown_labels(op, kind, marked)
        else:
            try:
                out = self.known_labels(op, kind, marked, self.label_shape(node))
            except (ValueError, TypeError, IndexError):
                out = UNKNOWN
        self.store(node, out)
        kept = set(np.unique(out).tolist()) if isinstance(out, np.ndarray) else None
        x = op.args[0] if op.args else None
        if len(marked) != 1 or not isinstance(x, fx.Node) or x.name not in marked:
            return
        if self.edges.get(node.name) != [(x.name, identity)]:
            return
        if kind in ("reshape", "permute", "pair"):  # the same units, the labels moved
            self.label_source[node.name] = x.name
        elif kind == "getitem" and kept is not None:
            self.rewire(node, x.name, x.name, kept)

    def known_labels(
        self, op: NodeOp, kind: str, marked: dict[str, np.ndarray], shape: Any
    ) -> np.ndarray | Pieces:
        x = op.args[0] if op.args else None
        if kind == "permute" and isinstance(x, fx.Node) and x.name in marked:
            return np.transpose(marked[x.name], self.dim_order(op, marked[x.name].ndim))
        if kind == "reshape" and isinstance(x, fx.Node) and x.name in marked:
            return marked[x.name].reshape(shape)
        if kind == "getitem" and isinstance(x, fx.Node) and x.name in marked:
            a = marked[x.name]
            sel = self.index_labels(op, a)
            return UNKNOWN if sel is None else sel
        if kind == "mix" and isinstance(x, fx.Node) and x.name in marked:
            dims, keep = self.mixed_dims(op, x)
            if dims is None:
                return UNKNOWN
            a = self.mix(marked[x.name], dims)
            if not keep:
                a = a.reshape([n for d, n in enumerate(a.shape) if d not in dims])
            return self.pair([a], shape)
        return self.pair(list(marked.values()), shape)

    def mixed_dims(self, op: NodeOp, x: fx.Node) -> tuple[list[int] | None, bool]:
        """The dims a linear layer, reduction or softmax mixes, and whether they are kept."""
        nd = len(self.shape(x))
        out = self.shape(op.node)
        keep = out is not None and len(out) == nd
        if op.name in ("linear", "matmul", "Linear"):
            return [nd - 1], keep
        if op.name in ("softmax", "log_softmax", "normalize", "Softmax", "LogSoftmax", "Softmin",
                       "softmin"):  # fmt: skip
            dim = self.softmax_dim(op)
            if dim is None:
                dim = implicit_softmax_dim(nd)
            return [d % nd for d in (dim if isinstance(dim, (tuple, list)) else [dim])], True
        dim = self.reduced_dim(op)
        if dim is None or not all(isinstance(d, int) for d in np.atleast_1d(dim).tolist()):
            return None, keep
        return [d % nd for d in (dim if isinstance(dim, (tuple, list)) else [dim])], keep

    def index_labels(self, op: NodeOp, a: np.ndarray) -> np.ndarray | None:
        """The labels ``x[idx]`` keeps (spatial dims, of size 1 in ``a``, are taken whole)."""
        idx = expand_index(op.args[1], a.ndim)
        if idx is None:
            return None
        out: list[Any] = []
        d = 0
        for i in idx:
            if i is None:
                out.append(None)
                continue
            if d >= a.ndim:
                break
            if a.shape[d] == 1 and isinstance(i, slice):
                out.append(slice(None))  # a spatial dim, or one element kept
            else:
                out.append(i)
            d += 1
        return a[tuple(out)]

    def unknown_labels(self, op: NodeOp, kind: str, marked: dict[str, Any]) -> Pieces | None:
        """Labels not followed: cleared by a linear layer over the only non-trivial
        non-spatial dim (a convolution with groups=1: ``conv_labels``), else still unknown."""
        x = op.args[0] if op.args else None
        if isinstance(x, fx.Node) and x.name in marked and self.val(x).digits is None:
            shape = self.label_shape(x)
            linear = kind == "mix" and op.name in ("linear", "Linear")
            if shape is not None and linear and all(n == 1 for n in shape[:-1]):
                return None
        return UNKNOWN

    def conv_labels(self, op: NodeOp, marked: dict[str, Any]) -> np.ndarray | Pieces | None:
        """A convolution: each output channel reads every input channel of its group."""
        x = op.args[0]
        if not isinstance(x, fx.Node) or x.name not in marked:
            return None
        groups = op.module.groups if op.module is not None else op.arg(6, "groups", 1)
        a = marked[x.name]
        if groups == 1:
            return None
        out_shape = self.label_shape(op.node)
        if a is UNKNOWN or out_shape is None:
            return UNKNOWN
        cin, cout = a.shape[1], out_shape[1]
        parts = [self.mix(a[:, g * cin // groups : (g + 1) * cin // groups], [1])
                 for g in range(groups)]  # fmt: skip
        a = np.concatenate([np.repeat(p, cout // groups, axis=1) for p in parts], axis=1)
        return self.pair([a], out_shape)

    def split_labels(self, op: NodeOp, marked: dict[str, Any]) -> None:
        """chunk/split/unbind: each item holds the labels of its part (``track_pieces`` rewires
        the item's node)."""
        node = op.node
        v = self.vals[node.name]
        x = op.args[0]
        if not marked or not isinstance(x, fx.Node) or v.items is None:
            self.vals[node.name] = replace(v, pieces=None)
            return
        a = marked[x.name]
        nd = len(self.shape(x))
        dim = op.arg(2 if op.name in ("chunk", "split") else 1, "dim", 0) % nd
        items = []
        offset = 0
        for (item, rule), meta in zip(v.items, node.meta.get("tensor_meta")):
            size = 1 if op.name == "unbind" else meta.shape[dim]
            if a is UNKNOWN:
                part: Any = UNKNOWN
            else:
                part = a if a.shape[dim] == 1 else np.take(a, range(offset, offset + size), dim)
                if op.name == "unbind":
                    part = np.squeeze(part, axis=dim)
                part = Pieces(part.shape, tuple(int(t) for t in part.ravel()))
            items.append((replace(item, pieces=part), rule))
            offset += size
        self.vals[node.name] = replace(v, pieces=UNKNOWN, items=tuple(items))

    def rewire(self, node: fx.Node, via: str, value: str, kept_ids: set[int]) -> None:
        """``node`` selects part of ``value`` (through ``via``, an identity edge): point its
        edges at the pieces of the cat its labels come from when that is exact (see the module
        docstring); else leave them."""
        if self.edges.get(node.name) != [(via, identity)]:
            return
        every = self.vals[value].pieces
        if not isinstance(every, Pieces) or every.shape is None:
            return
        all_ids = set(every.labels)
        if all_ids <= kept_ids:
            return  # every piece kept: the union is right
        name = value
        while name not in self.cat_pieces:
            if name not in self.label_source:
                return
            name = self.label_source[name]
        pieces = self.cat_pieces[name]
        if set().union(*(ids for _, ids in pieces)) != all_ids:
            return
        touched = [(src, ids) for src, ids in pieces if ids & kept_ids]
        if not touched or any(not ids <= kept_ids for _, ids in touched):
            return
        edges = [(src, identity) for src, _ in touched if src is not None]
        if not edges:
            return
        self.edges[node.name] = edges
        if len(edges) > 1:
            self.merges[node.name] = list(edges)

    def cat_labels(self, op: NodeOp) -> np.ndarray | Pieces | None:
        """cat/stack: along a non-spatial dim, pieces that are not all the same node get a label
        each (paired with their own); along a spatial dim the pieces' labels are paired."""
        node = op.node
        v = self.vals[node.name]
        shape = self.label_shape(node)
        tensors = op.arg(0, "tensors")
        if shape is None or isinstance(tensors, fx.Node):
            return UNKNOWN
        tensors = list(tensors)
        nd = len(shape)
        dim = op.arg(1, "dim", 0) % nd
        stack = op.name == "stack"
        spatial = v.layout is not None and dim in v.layout and not stack
        arrays = []
        for t in tensors:
            piece_shape = list(shape)
            if stack:
                del piece_shape[dim]
            elif not spatial:
                piece_shape[dim] = self.shape(t)[dim] if isinstance(t, fx.Node) else 1
            a = self.labels_of(t)
            if a is UNKNOWN:
                return UNKNOWN
            arrays.append((t, np.zeros(piece_shape, dtype=np.int64) if a is None else a))
        if spatial:
            try:
                return self.pair([a for _, a in arrays], shape)
            except ValueError:
                return UNKNOWN
        names = {t.name if isinstance(t, fx.Node) else None for t, _ in arrays}
        same = len(names) == 1 and None not in names and self.val(tensors[0]).kind == "local"
        parts, pieces = [], []
        for k, (t, a) in enumerate(arrays):
            if not same:
                a = self.pair([a, np.full(a.shape, self.label(("piece", node.name, k)))], a.shape)
            parts.append(np.expand_dims(a, dim) if stack else a)
            kind = self.val(t).kind if isinstance(t, fx.Node) else "const"
            src = t.name if kind == "local" else None
            pieces.append((src, frozenset(int(i) for i in np.unique(a)), kind))
        try:
            out = np.concatenate(parts, axis=dim)
        except ValueError:
            return UNKNOWN
        local_edges = self.edges.get(node.name, [])
        if all(kind in ("local", "const") for _, _, kind in pieces) and all(
            rule is identity for _, rule in local_edges
        ):
            self.cat_pieces[node.name] = [(src, ids) for src, ids, _ in pieces]
        return out


__all__ = ["UNKNOWN", "PieceTracking", "Pieces"]
