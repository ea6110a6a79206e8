"""The classification pass over a traced model: a ``NodeValue`` and back-edges per fx node.

``GraphBuilder`` walks the fx graph in order and dispatches each node to its rule: leaf
modules by exact type (``module_rule``), functions and methods by name (the tables below and
erf.rf.op_names). The rules are the methods of erf.rf.tensor_rules and erf.rf.spatial_rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import fx, nn

from erf.rf.node_values import CONST, NodeOp, NodeValue
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
from erf.rf.tensor_rules import TensorRules


class GraphBuilder(TensorRules, SpatialRules):
    """Forward pass over the fx graph: a ``NodeValue`` and back-edges per node (see
    erf.rf.graph)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.modules = dict(gm.named_modules())
        self.vals = {}
        self.edges = {}
        self.merges = {}
        self.notes = {}
        self.input = None
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
            name = function_name(node.target) or getattr(node.target, "__qualname__", "")
            name = name or str(node.target)
        op = NodeOp(node, tuple(args), dict(kwargs), module, name)

        kinds = {self.val(n).kind for n in node.all_input_nodes}
        if self.is_metadata(op) or kinds <= {"const"}:
            self.vals[node.name] = CONST
        elif "tokens" in kinds:
            self.vals[node.name] = next(
                self.val(n) for n in node.all_input_nodes if self.val(n).kind == "tokens"
            )
        elif kinds - {"const"} == {"global"}:
            src = next(self.val(n) for n in node.all_input_nodes if self.val(n).kind == "global")
            self.vals[node.name] = NodeValue("global", reason=src.reason)
        else:
            self.dispatch(op)

    def is_metadata(self, op: NodeOp) -> bool:
        """Ops whose result does not depend on tensor data (shapes, dtypes, *_like)."""
        if op.name in CONST_OPS and op.node.op != "call_module":
            return True
        return op.name == "getattr" and len(op.args) > 1 and op.args[1] in META_ATTRS

    def dispatch(self, op: NodeOp) -> None:
        if op.node.op == "call_module":
            rule = module_rule(op.module)
            if rule is None:
                raise self.unsupported(op)
            rule(self, op)
            return
        if op.node.op == "call_function" and function_name(op.node.target) is None:
            raise self.unsupported(op, "not a torch / torch.nn.functional / operator function")
        rule = _NAME_RULES.get(op.name)
        if rule is None:
            if op.name in POINTWISE:
                rule = GraphBuilder.pointwise
            elif op.name in ELEMENTWISE:
                rule = GraphBuilder.elementwise
            elif op.name in REDUCTIONS:
                rule = GraphBuilder.reduction
            elif op.name in DIM_POINTWISE:
                rule = GraphBuilder.dim_pointwise
            elif op.name in RESHAPES:
                rule = GraphBuilder.reshape
            else:
                raise self.unsupported(op)
        rule(self, op)

    def placeholder(self, node: fx.Node) -> None:
        if self.input is not None:
            self.vals[node.name] = CONST
            return
        shape = self.shape(node)
        if shape is None or len(shape) != 4:
            raise ValueError(f"the model input must be a [B, C, H, W] tensor, got shape {shape}")
        self.input = node.name
        self.vals[node.name] = NodeValue("local", (2, 3))


def _resolve(n: fx.Node) -> Any:
    """A node's concrete non-tensor value when it has one (shape arithmetic), else the node."""
    return n.meta.get("erf_value", n)


# --------------------------------------------------------------------------- module rules


def module_rule(m: nn.Module) -> Callable[[GraphBuilder, NodeOp], None] | None:
    """The rule for a leaf module (exact type: subclasses are traced through, since they may
    change what the forward reads), or the pointwise rule for modules that declare
    ``erf_pointwise = True`` (elementwise, shape-preserving; e.g. ``erf.nets.luo.MaskDropout``)."""
    rule = _module_rules().get(type(m))
    if rule is None and getattr(m, "erf_pointwise", False):
        return GraphBuilder.pointwise
    return rule


_MODULE_RULES: dict[type, Callable[[GraphBuilder, NodeOp], None]] = {}


def _module_rules() -> dict[type, Callable[[GraphBuilder, NodeOp], None]]:
    if _MODULE_RULES:
        return _MODULE_RULES
    pointwise = [
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
        nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Hardtanh,
        nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.LogSigmoid,
        nn.Threshold, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
        nn.AlphaDropout, nn.FeatureAlphaDropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
        nn.SyncBatchNorm, nn.LocalResponseNorm, nn.CrossMapLRN2d, nn.ChannelShuffle, nn.Softmax2d,
    ]  # fmt: skip
    rules: dict[type, Callable[[GraphBuilder, NodeOp], None]] = {
        t: GraphBuilder.pointwise for t in pointwise
    }
    rules.update(
        {
            nn.Conv2d: GraphBuilder.m_conv,
            nn.ConvTranspose2d: GraphBuilder.m_conv_transpose,
            nn.MaxPool2d: GraphBuilder.m_pool,
            nn.AvgPool2d: GraphBuilder.m_pool,
            nn.LPPool2d: GraphBuilder.m_pool,
            nn.AdaptiveAvgPool2d: GraphBuilder.m_adaptive,
            nn.AdaptiveMaxPool2d: GraphBuilder.m_adaptive,
            nn.Upsample: GraphBuilder.m_upsample,
            nn.UpsamplingNearest2d: GraphBuilder.m_upsample,
            nn.UpsamplingBilinear2d: GraphBuilder.m_upsample,
            nn.ZeroPad2d: GraphBuilder.m_pad,
            nn.ConstantPad2d: GraphBuilder.m_pad,
            nn.ReflectionPad2d: GraphBuilder.m_pad,
            nn.ReplicationPad2d: GraphBuilder.m_pad,
            nn.PixelShuffle: GraphBuilder.m_pixel_shuffle,
            nn.PixelUnshuffle: GraphBuilder.m_pixel_unshuffle,
            nn.Flatten: GraphBuilder.reshape,
            nn.Unflatten: GraphBuilder.reshape,
            nn.Linear: GraphBuilder.linear,
            nn.LayerNorm: GraphBuilder.m_layer_norm,
            nn.GroupNorm: GraphBuilder.stat_norm,
            nn.InstanceNorm2d: GraphBuilder.m_instance_norm,
            nn.Softmax: GraphBuilder.m_softmax,
            nn.LogSoftmax: GraphBuilder.m_softmax,
            nn.Softmin: GraphBuilder.m_softmax,
        }
    )
    if hasattr(nn, "CircularPad2d"):
        rules[nn.CircularPad2d] = GraphBuilder.m_pad
    try:  # torchvision is optional: its modules get rules when it is installed
        from torchvision.ops import FrozenBatchNorm2d, StochasticDepth

        rules[FrozenBatchNorm2d] = GraphBuilder.pointwise
        rules[StochasticDepth] = GraphBuilder.pointwise
    except ImportError:  # pragma: no cover
        pass
    _MODULE_RULES.update(rules)
    return _MODULE_RULES


# --------------------------------------------------------------------------- name rules


_NAME_RULES: dict[str, Callable[[GraphBuilder, NodeOp], None]] = {
    "getitem": GraphBuilder.getitem,
    "permute": GraphBuilder.permute,
    "transpose": GraphBuilder.transpose,
    "swapaxes": GraphBuilder.transpose,
    "swapdims": GraphBuilder.transpose,
    "cat": GraphBuilder.cat,
    "concat": GraphBuilder.cat,
    "concatenate": GraphBuilder.cat,
    "stack": GraphBuilder.cat,
    "chunk": GraphBuilder.split,
    "split": GraphBuilder.split,
    "unbind": GraphBuilder.split,
    "pad": GraphBuilder.f_pad,
    "roll": GraphBuilder.roll,
    "flip": GraphBuilder.flip,
    "interpolate": GraphBuilder.f_interpolate,
    "conv2d": GraphBuilder.f_conv,
    "conv_transpose2d": GraphBuilder.f_conv_transpose,
    "max_pool2d": GraphBuilder.f_pool,
    "_max_pool2d": GraphBuilder.f_pool,
    "max_pool2d_with_indices": GraphBuilder.f_pool,
    "avg_pool2d": GraphBuilder.f_pool,
    "lp_pool2d": GraphBuilder.f_pool,
    "adaptive_avg_pool2d": GraphBuilder.adaptive,
    "adaptive_max_pool2d": GraphBuilder.adaptive,
    "_adaptive_max_pool2d": GraphBuilder.adaptive,
    "adaptive_max_pool2d_with_indices": GraphBuilder.adaptive,
    "pixel_shuffle": lambda b, op: b.pixel_shuffle(op, op.arg(1, "upscale_factor")),
    "pixel_unshuffle": lambda b, op: b.pixel_unshuffle(op, op.arg(1, "downscale_factor")),
    "linear": GraphBuilder.linear,
    "matmul": GraphBuilder.linear,
    "layer_norm": GraphBuilder.f_layer_norm,
    "group_norm": GraphBuilder.stat_norm,
    "instance_norm": GraphBuilder.stat_norm,
}


__all__ = ["GraphBuilder", "module_rule"]
