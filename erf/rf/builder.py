"""The classification pass over a traced model: a ``NodeValue`` and back-edges per fx node.

``GraphBuilder`` walks the fx graph in order and dispatches each node to its rule in one rule
table (``RULES``): leaf modules by exact type, functions and methods by canonical name. The
built-in rules are the methods of erf.rf.tensor_rules and erf.rf.spatial_rules, entered from the
name groups of erf.rf.op_names; users add theirs with ``register_rule`` (erf.rf.user_rules).
What else needs op knowledge (the crop allow-list, the modules whose output is NCHW) is read
from the same table (``crop_safe_ops``, ``nchw_modules``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
from torch import fx, nn

from erf.rf.boxes import BoxRule
from erf.rf.channel_pieces import UNKNOWN, PieceTracking
from erf.rf.digit_rules import DigitRules
from erf.rf.node_values import CONST, NodeOp, NodeValue, spatial_hw
from erf.rf.op_names import (
    CONST_OPS,
    DIM_POINTWISE,
    ELEMENTWISE,
    META_ATTRS,
    POINTWISE,
    REDUCTIONS,
    RESHAPES,
    function_name,
    method_name,
)
from erf.rf.spatial_rules import SpatialRules


class GraphBuilder(PieceTracking, DigitRules, SpatialRules):
    """Forward pass over the fx graph: a ``NodeValue`` and back-edges per node (see
    erf.rf.graph)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.modules = dict(gm.named_modules())
        self.vals = {}
        self.edges = {}
        self.merges = {}
        self.notes = {}
        self.irregular = set()
        self.input = None
        self.piece_ids, self.cat_pieces, self.label_source = {}, {}, {}
        for node in gm.graph.nodes:
            self.classify(node)

    # ---- dispatch

    def classify(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            self.placeholder(node)
            return
        if node.op in ("get_attr", "output"):
            self.vals[node.name] = CONST
            return
        args = fx.node.map_arg(node.args, _resolve)
        kwargs = fx.node.map_arg(node.kwargs, _resolve)
        module = self.modules.get(node.target) if node.op == "call_module" else None
        if node.op == "call_module":
            name = type(module).__name__
        elif node.op == "call_method":
            name = method_name(node.target)
        else:
            name = function_name(node.target) or getattr(node.target, "__name__", "")
            name = name or str(node.target)
        op = NodeOp(node, tuple(args), dict(kwargs), module, name)

        kinds = {self.val(n).kind for n in node.all_input_nodes}
        if self.is_metadata(op) or kinds <= {"const"}:
            self.vals[node.name] = CONST
        elif kinds & {"tokens", "refused"}:
            self.vals[node.name] = next(
                self.val(n)
                for n in node.all_input_nodes
                if self.val(n).kind in ("tokens", "refused")
            )
        elif kinds - {"const"} == {"global"}:
            ins = [self.val(n) for n in node.all_input_nodes if self.val(n).kind == "global"]
            instead = self.unread_units(op)
            if instead is not None:  # refused for what follows (not the whole model), or const
                self.vals[node.name] = instead
                return
            self.vals[node.name] = NodeValue(
                "global",
                reason=ins[0].reason,
                sources=self.sources(node),
                scalar=all(v.scalar for v in ins),
            )
        else:
            self.dispatch(op)
            try:
                self.track_pieces(op, self.piece_kind(op))
            except (ValueError, TypeError, IndexError, KeyError, AttributeError):
                # labels not followed here (never a reason to refuse the op): unknown
                v = self.vals.get(node.name)
                if v is not None and v.kind == "local":
                    self.vals[node.name] = replace(v, pieces=UNKNOWN)

    def piece_kind(self, op: NodeOp) -> str:
        """How ``op`` moves channel labels (erf.rf.channel_pieces): by the rule that ran."""
        if op.node.op == "call_module":
            apply, entry = module_rule(op.module), RULES.get(type(op.module))
        else:
            entry = RULES.get(op.name)
            apply = entry.apply if entry is not None else None
        b = GraphBuilder
        movers = (b.m_layer_norm, b.f_layer_norm, b.stat_norm, b.roll, b.flip)
        if op.name in CHANNEL_MOVERS or apply in movers:
            return "opaque"  # labels paired, but never a path a selection is rewired through
        if entry is not None and entry.source == "user":
            return "opaque"
        if apply is b.getitem and self.val(op.args[0]).items is not None:
            return "item"
        if apply is b.linear:
            if op.name == "matmul" and self.val(op.arg(1, "other")).kind != "const":
                return "opaque"
            return "mix"
        if apply is b.reduction:
            return "pair" if self.is_pairwise(op) else "mix"
        kinds = {
            b.reshape: "reshape", b.permute: "permute", b.getitem: "getitem", b.split: "split",
            b.cat: "cat", b.m_conv: "conv", b.f_conv: "conv", b.m_conv_transpose: "conv",
            b.f_conv_transpose: "conv", b.dim_pointwise: "mix", b.m_softmax: "mix",
        }  # fmt: skip
        return kinds.get(apply, "pair")

    def unread_units(self, op: NodeOp) -> NodeValue | None:
        """An op on global maps keeps every unit global only if each of its units reads some
        unit of its input: run its rule as if the [B, C, H, W] inputs were local maps; a
        refused value (one line) when some unit reads only padding (a zero-padded or dilated
        window past a pooled 1 x 1 map reads nothing, and depends on nothing), CONST when the
        rule finds the result constant (a softmax over one element), else None."""
        node = op.node
        if op.name in ("fold", "Fold"):  # no rule: which units no window covers is unknown
            why = "fold of a global map (a unit that no window covers reads nothing)"
            return NodeValue("refused", reason=str(self.unsupported(op, why)))
        inputs = [n for n in node.all_input_nodes if self.val(n).kind == "global"]
        shapes = [self.shape(n) for n in inputs]
        out_shape = self.shape(node)
        if (
            out_shape is None
            or len(out_shape) != 4
            or any(s is None or len(s) != 4 for s in shapes)
        ):
            return None
        saved = {n.name: self.vals[n.name] for n in inputs}
        in_hw = {n.name: s[2:] for n, s in zip(inputs, shapes)}
        for n in inputs:
            self.vals[n.name] = NodeValue("local", (2, 3))
        try:
            self.dispatch(op)
            edges = self.edges.get(node.name, [])
            out = self.vals.get(node.name)
        except (TypeError, ValueError, KeyError, IndexError):
            edges, out = [], None  # not a map op: every unit of its output stays global
        finally:
            self.vals.update(saved)
            self.vals.pop(node.name, None)
            for table in (self.edges, self.merges, self.notes):
                table.pop(node.name, None)
            self.irregular.discard(node.name)
        if out is not None and out.kind == "const":
            return CONST
        if out is None or out.kind != "local" or out.items is not None:
            return None
        if out.flat is not None or out.digits is not None:
            return None
        out_hw = spatial_hw(out_shape, out.layout)
        reads = np.zeros(out_hw, dtype=bool)
        for arg, rule in edges:
            if isinstance(rule, BoxRule) and arg in in_hw:
                rows, cols = rule.matrices(out_hw, in_hw[arg])
                reads |= np.outer(rows.any(1), cols.any(1))
        if edges and not reads.all():
            why = "some of its units read only the padding of a global map"
            return NodeValue("refused", reason=str(self.unsupported(op, why)))
        return None

    def is_metadata(self, op: NodeOp) -> bool:
        """Ops whose result does not depend on tensor data (shapes, dtypes, *_like)."""
        if op.name in CONST_OPS and op.node.op != "call_module":
            return True
        return op.name == "getattr" and len(op.args) > 1 and op.args[1] in META_ATTRS

    def dispatch(self, op: NodeOp) -> None:
        if any(self.val(n).digits is not None for n in op.node.all_input_nodes):
            self.dispatch_digits(op)
            return
        if op.node.op == "call_module":
            rule = module_rule(op.module)
            if rule is None:
                raise self.unsupported(op)
            rule(self, op)
            return
        entry = RULES.get(op.name)
        own = op.node.op != "call_function" or function_name(op.node.target) is not None
        if entry is None or not (own or entry.source == "user"):
            why = "" if own else "not a torch / torch.nn.functional / operator function"
            raise self.unsupported(op, why)
        entry.apply(self, op)

    def dispatch_digits(self, op: NodeOp) -> None:
        """An op on a map split into windows: the digit form of its rule (``DIGIT_RULES``),
        refused where there is none."""
        if op.node.op == "call_module":
            apply = module_rule(op.module)
        else:
            entry = RULES.get(op.name)
            own = op.node.op != "call_function" or function_name(op.node.target) is not None
            apply = entry.apply if entry is not None and own else None
        rule = DIGIT_RULES.get(apply)
        if rule is None:
            raise self.unsupported(
                op, "on a map split into windows (window attention, patch merging)"
            )
        rule(self, op)

    def placeholder(self, node: fx.Node) -> None:
        if self.input is not None:
            self.vals[node.name] = CONST
            return
        shape = self.shape(node)
        if shape is None or len(shape) not in (3, 4, 5):
            raise ValueError(
                "the model input must be a [B, C, L], [B, C, H, W] or [B, C, D, H, W] tensor, "
                f"got shape {shape}"
            )
        self.input = node.name
        k = len(shape) - 2
        self.vals[node.name] = NodeValue(
            "local", tuple(range(2, len(shape))), stride=(Fraction(1),) * k, period=(1,) * k
        )


CHANNEL_MOVERS = frozenset(
    {
        "ChannelShuffle", "channel_shuffle", "native_channel_shuffle", "LocalResponseNorm",
        "local_response_norm", "CrossMapLRN2d", "Softmax2d",
    }
)  # fmt: skip
"""Ops with the pointwise rule whose output channels are not their input's, position for
position (they move or mix channels): a channel selection is never rewired through them."""


def _resolve(n: fx.Node) -> Any:
    """A node's concrete non-tensor value when it has one (shape arithmetic), else the node."""
    return n.meta.get("erf_value", n)


# --------------------------------------------------------------------------- the rule table


@dataclass(frozen=True)
class OpRule:
    """One entry of the rule table: ``apply`` records the node's value and back-edges;
    ``crop_safe``: on a cropped input the op gives the full input's values at the matching
    units (translation-equivariant, no statistics over the map), so erf.probe.crop may crop
    through it; ``nchw``: a module whose output is ``[B, C, H, W]`` whatever its shape (the
    probe's layout witness); ``source``: "erf" or "user" (``register_rule``)."""

    apply: Callable[[GraphBuilder, NodeOp], None]
    crop_safe: bool = False
    nchw: bool = False
    source: str = "erf"


RULES: dict[type | str, OpRule] = {}  # module types and function/method names -> rule

_G = GraphBuilder
DIGIT_RULES: dict[Callable[..., None], Callable[[GraphBuilder, NodeOp], None]] = {
    _G.pointwise: _G.digit_same, _G.reshape: _G.digit_reshape, _G.permute: _G.digit_permute,
    _G.elementwise: _G.digit_elementwise,
    _G.linear: _G.digit_linear, _G.m_layer_norm: _G.digit_layer_norm,
    _G.f_layer_norm: _G.digit_layer_norm, _G.dim_pointwise: _G.digit_softmax,
    _G.m_softmax: _G.digit_softmax, _G.reduction: _G.digit_reduction,
    _G.attention: _G.digit_attention, _G.getitem: _G.digit_getitem, _G.split: _G.digit_split,
    _G.f_pad: _G.digit_pad,
}  # fmt: skip
"""A built-in rule -> the same op's rule on a map split into windows (erf.rf.digit_rules);
ops whose rule is not here are refused there."""


def add_rule(key: type | str, rule: OpRule) -> None:
    """Enter ``rule`` for a module type (exact type) or a canonical function/method name."""
    RULES[key] = rule


def module_rule(m: nn.Module) -> Callable[[GraphBuilder, NodeOp], None] | None:
    """The rule for a leaf module (exact type: subclasses are traced through, since they may
    change what the forward reads), or the pointwise rule for modules that declare
    ``erf_pointwise = True`` (elementwise, shape-preserving; e.g. ``erf.nets.luo.MaskDropout``)."""
    entry = RULES.get(type(m))
    if entry is None and getattr(m, "erf_pointwise", False):
        return GraphBuilder.pointwise
    return None if entry is None else entry.apply


def crop_safe_ops() -> frozenset[str]:
    """Module class names and function/method names (``NodeRF.op``, in-place methods with
    their trailing underscore too) marked ``crop_safe``."""
    names = {k.__name__ if isinstance(k, type) else k for k, r in RULES.items() if r.crop_safe}
    return frozenset(
        names | {f"{k}_" for k, r in RULES.items() if isinstance(k, str) and r.crop_safe}
    )


def nchw_modules() -> tuple[type, ...]:
    """Module types whose outputs are ``[B, C, H, W]`` whatever their shape."""
    return tuple(k for k, r in RULES.items() if isinstance(k, type) and r.nchw)


def _enter_builtin_rules() -> None:
    b = GraphBuilder
    crop_safe_modules = {
        nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.ReLU,
        nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
        nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
        nn.Identity, nn.Dropout, nn.Dropout2d, nn.ZeroPad2d, nn.ConstantPad2d,
    }  # fmt: skip
    crop_safe_names = {
        "conv2d", "max_pool2d", "avg_pool2d", "batch_norm", "relu", "relu6", "gelu", "silu",
        "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu", "elu", "dropout", "add",
        "iadd", "sub", "mul", "imul", "contiguous", "clone",
    }  # fmt: skip
    nchw = {
        nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.MaxPool2d,
        nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d, nn.Upsample,
        nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d, nn.PixelShuffle, nn.PixelUnshuffle,
        nn.Dropout2d, nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d,
        nn.LocalResponseNorm,
    }  # fmt: skip
    pointwise_modules = [
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
        nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Hardtanh,
        nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.LogSigmoid,
        nn.Threshold, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
        nn.AlphaDropout, nn.FeatureAlphaDropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
        nn.SyncBatchNorm, nn.LocalResponseNorm, nn.CrossMapLRN2d, nn.ChannelShuffle, nn.Softmax2d,
    ]  # fmt: skip
    modules: dict[type, Callable[[GraphBuilder, NodeOp], None]] = {
        t: b.pointwise for t in pointwise_modules
    }
    modules.update(
        {
            nn.Conv2d: b.m_conv, nn.ConvTranspose2d: b.m_conv_transpose, nn.MaxPool2d: b.m_pool,
            nn.AvgPool2d: b.m_pool, nn.LPPool2d: b.m_pool, nn.AdaptiveAvgPool2d: b.m_adaptive,
            nn.AdaptiveMaxPool2d: b.m_adaptive, nn.Upsample: b.m_upsample,
            nn.UpsamplingNearest2d: b.m_upsample, nn.UpsamplingBilinear2d: b.m_upsample,
            nn.ZeroPad2d: b.m_pad, nn.ConstantPad2d: b.m_pad, nn.ReflectionPad2d: b.m_pad,
            nn.ReplicationPad2d: b.m_pad, nn.PixelShuffle: b.m_pixel_shuffle,
            nn.PixelUnshuffle: b.m_pixel_unshuffle, nn.Flatten: b.reshape,
            nn.Unflatten: b.reshape, nn.Linear: b.linear, nn.LayerNorm: b.m_layer_norm,
            nn.GroupNorm: b.stat_norm, nn.InstanceNorm2d: b.m_instance_norm,
            nn.Softmax: b.m_softmax, nn.LogSoftmax: b.m_softmax, nn.Softmin: b.m_softmax,
            nn.MultiheadAttention: b.m_multihead_attention,
        }
    )  # fmt: skip
    modules.update(
        {
            nn.Conv1d: b.m_conv, nn.Conv3d: b.m_conv, nn.ConvTranspose1d: b.m_conv_transpose,
            nn.ConvTranspose3d: b.m_conv_transpose, nn.MaxPool1d: b.m_pool,
            nn.MaxPool3d: b.m_pool, nn.AvgPool1d: b.m_pool, nn.AvgPool3d: b.m_pool,
            nn.LPPool1d: b.m_pool, nn.AdaptiveAvgPool1d: b.m_adaptive,
            nn.AdaptiveAvgPool3d: b.m_adaptive, nn.AdaptiveMaxPool1d: b.m_adaptive,
            nn.AdaptiveMaxPool3d: b.m_adaptive, nn.ConstantPad1d: b.m_pad,
            nn.ConstantPad3d: b.m_pad, nn.ReflectionPad1d: b.m_pad, nn.ReflectionPad3d: b.m_pad,
            nn.ReplicationPad1d: b.m_pad, nn.ReplicationPad3d: b.m_pad,
            nn.InstanceNorm1d: b.m_instance_norm, nn.InstanceNorm3d: b.m_instance_norm,
        }
    )  # fmt: skip
    for name in ("ZeroPad1d", "ZeroPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d"):
        if hasattr(nn, name):  # newer torch releases
            modules[getattr(nn, name)] = b.m_pad
    if hasattr(nn, "CircularPad2d"):
        nchw.add(nn.CircularPad2d)
    try:  # torchvision is optional: its modules get rules when it is installed
        from torchvision.ops import FrozenBatchNorm2d, StochasticDepth

        modules[FrozenBatchNorm2d] = b.pointwise
        modules[StochasticDepth] = b.pointwise
        crop_safe_modules.add(FrozenBatchNorm2d)
    except ImportError:  # pragma: no cover
        pass
    for t, apply in modules.items():
        add_rule(t, OpRule(apply, crop_safe=t in crop_safe_modules, nchw=t in nchw))
    groups = (
        (POINTWISE, b.pointwise), (ELEMENTWISE, b.elementwise), (REDUCTIONS, b.reduction),
        (DIM_POINTWISE, b.dim_pointwise), (RESHAPES, b.reshape),
    )  # fmt: skip
    names: dict[str, Callable[[GraphBuilder, NodeOp], None]] = {
        name: apply for words, apply in groups for name in words
    }
    names.update(
        {
            "getitem": b.getitem, "permute": b.permute, "transpose": b.permute,
            "swapaxes": b.permute, "swapdims": b.permute, "cat": b.cat, "concat": b.cat,
            "concatenate": b.cat, "stack": b.cat, "chunk": b.split, "split": b.split,
            "unbind": b.split, "pad": b.f_pad, "roll": b.roll, "flip": b.flip,
            "interpolate": b.f_interpolate, "conv2d": b.f_conv,
            "conv_transpose2d": b.f_conv_transpose, "max_pool2d": b.f_pool,
            "_max_pool2d": b.f_pool, "max_pool2d_with_indices": b.f_pool, "avg_pool2d": b.f_pool,
            "lp_pool2d": b.f_pool, "adaptive_avg_pool2d": b.adaptive,
            "adaptive_max_pool2d": b.adaptive, "_adaptive_max_pool2d": b.adaptive,
            "adaptive_max_pool2d_with_indices": b.adaptive,
            "pixel_shuffle": lambda b, op: b.pixel_shuffle(op, op.arg(1, "upscale_factor")),
            "pixel_unshuffle": lambda b, op: b.pixel_unshuffle(op, op.arg(1, "downscale_factor")),
            "conv1d": b.f_conv, "conv3d": b.f_conv, "conv_transpose1d": b.f_conv_transpose,
            "conv_transpose3d": b.f_conv_transpose, "max_pool1d": b.f_pool,
            "max_pool3d": b.f_pool, "_max_pool1d": b.f_pool, "_max_pool3d": b.f_pool,
            "max_pool1d_with_indices": b.f_pool, "max_pool3d_with_indices": b.f_pool,
            "avg_pool1d": b.f_pool, "avg_pool3d": b.f_pool, "lp_pool1d": b.f_pool,
            "adaptive_avg_pool1d": b.adaptive, "adaptive_avg_pool3d": b.adaptive,
            "adaptive_max_pool1d": b.adaptive, "adaptive_max_pool3d": b.adaptive,
            "_adaptive_max_pool1d": b.adaptive, "_adaptive_max_pool3d": b.adaptive,
            "adaptive_max_pool1d_with_indices": b.adaptive,
            "adaptive_max_pool3d_with_indices": b.adaptive,
            "linear": b.linear, "matmul": b.linear, "layer_norm": b.f_layer_norm,
            "scaled_dot_product_attention": b.attention, "expand": b.expand,
            "expand_as": b.expand, "broadcast_to": b.expand,
            "group_norm": b.stat_norm, "instance_norm": b.stat_norm,
        }
    )  # fmt: skip
    for name, apply in names.items():
        add_rule(name, OpRule(apply, crop_safe=name in crop_safe_names))


_enter_builtin_rules()


__all__ = [
    "DIGIT_RULES",
    "RULES",
    "GraphBuilder",
    "OpRule",
    "add_rule",
    "crop_safe_ops",
    "module_rule",
    "nchw_modules",
]
