"""Theoretical RF of arbitrary PyTorch graphs: exact interval back-propagation over torch.fx.

The model is traced with torch.fx (known spatial/pointwise modules stay leaves, containers and
other user modules are traced through) and ``ShapeProp`` runs it on a zero input of
``(1, C, H, W)`` to get every node's shape (on the meta device, so nothing is computed; a real
forward if the model cannot run there). A forward pass over the graph then classifies each node:

- ``local``: a tensor whose (rows, cols) are tracked through permutes/reshapes; each local node
  has back-edges ``(input node, rule)`` where ``rule`` maps an inclusive box of its units
  ``((r0, r1), (c0, c1))`` to the box of the input node's units it reads (the one-axis rules are
  the pure functions of erf.rf.intervals). Unknown ops on a local path raise TypeError.
- ``global``: every unit sees the whole input (adaptive pooling to 1, spatial means, softmax over
  a spatial dim, flatten + Linear, anything downstream of those).
- ``const``: does not depend on the input (parameters, shapes, ``zeros_like``).
- ``tokens``: spatial dims flattened into tokens (ViT/Swin); out of scope, ValueError on use.

The span of an output unit is the box reached at the input by one reverse-topological pass
(hull at every node; exact because every rule is monotone). Multi-input nodes (add, mul, cat along
channels, ...) must be aligned (Araujo et al. 2019): all branches agree on the effective stride and
on the centre of the span, checked at two units; else ValueError "not aligned". A global branch
that gates a local one (squeeze-excitation: a per-channel scalar multiplies the map) is not a
branch: the TRF is the local one and ``global_context`` is set. Conventions: (rows, cols), units
and pixels inclusive, the centre of an h x w map is (h // 2, w // 2), eval-mode BatchNorm.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import io
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from erf.rf.intervals import (
    Interval,
    adaptive_interval,
    affine_interval,
    conv_interval,
    conv_transpose_interval,
    crop_interval,
    hull,
    interpolate_interval,
)
from erf.rf.trf import TheoreticalRF

Box = tuple[Interval, Interval]  # ((r0, r1), (c0, c1)) inclusive units of one node
AxisRule = Callable[[Interval], "Interval | None"]
BoxRule = Callable[[Box], "Box | None"]
Edge = tuple[str, BoxRule]  # (input node name, rule: this node's box -> input node's box)

GLOBAL_NOTE = "global: every output unit sees the whole input (adaptive pooling / linear)"
GATE_NOTE = (
    "global_context: a global branch (per-channel scalars from the whole map, squeeze-excitation"
    " style) gates this map"
)
STAT_NOTE = (
    "global_context: normalisation statistics over the spatial dims (GroupNorm/InstanceNorm/"
    "LayerNorm) are per-sample scalars of the whole map, treated as constants"
)
CAT_NOTE = "global_context: a global branch is concatenated with local ones (e.g. ASPP pooling)"
BROADCAST_NOTE = "global_context: a map with a size-1 spatial axis is broadcast over that axis"
CIRCULAR_NOTE = "circular padding: border units also see the opposite border (not in the span)"
MIRROR_NOTE = (
    "reflection/replication padding: border units also read mirrored/edge pixels, inside the "
    "clipped span when the pad is at most the next kernel's half-width"
)
TOKEN_ERROR = (
    "token outputs are not supported: the spatial dims were flattened into a token sequence "
    "(ViT/Swin-style)"
)


# --------------------------------------------------------------------------- box rules


def _identity(box: Box) -> Box:
    return box


def _box_rule(row: AxisRule | None, col: AxisRule | None) -> BoxRule:
    """Per-axis rules -> box rule (None = identity on that axis)."""
    if row is None and col is None:
        return _identity

    def rule(box: Box) -> Box | None:
        r = box[0] if row is None else row(box[0])
        if r is None:
            return None
        c = box[1] if col is None else col(box[1])
        return None if c is None else (r, c)

    return rule


def _box_hull(a: Box | None, b: Box) -> Box:
    if a is None:
        return b
    return (hull(a[0], b[0]), hull(a[1], b[1]))


def _pair(v: Any) -> tuple[Any, Any]:
    if isinstance(v, (tuple, list)):
        return (v[0], v[-1]) if len(v) in (1, 2) else tuple(v[-2:])
    return (v, v)


def _shift(offset: int) -> AxisRule:
    """Unit u reads unit u + offset."""
    return lambda iv: (iv[0] + offset, iv[1] + offset)


def _conv(k: int, s: int, p: int, d: int) -> AxisRule:
    return lambda iv: conv_interval(iv, k, s, p, d)


def _broadcast(iv: Interval) -> Interval:
    return (0, 0)


# --------------------------------------------------------------------------- node values


@dataclass
class _Val:
    """Forward classification of one fx node (see the module docstring).

    ``layout``: tensor dims (batch included) holding image rows and cols; ``stride``: nominal
    input pixels per unit (Fractions); ``period``: units after which the span pattern repeats
    (1, or the upsampling factor: start(u + period) = start(u) + period * stride);
    ``context``: a global path modulates it; ``items``: for tuple outputs (chunk/split), each
    item's value and its rule into this node's units.
    """

    kind: str
    layout: tuple[int, int] | None = None
    stride: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))
    period: tuple[int, int] = (1, 1)
    context: bool = False
    reason: str = ""
    items: tuple[tuple[_Val, BoxRule], ...] | None = None

    def scaled(self, factors: Sequence[Fraction]) -> _Val:
        """After an op where one output unit steps ``factor`` input units (per image axis)."""
        stride = (self.stride[0] * factors[0], self.stride[1] * factors[1])
        period = tuple(
            p * f.denominator // math.gcd(p * f.denominator, f.numerator)
            for p, f in zip(self.period, factors)
        )
        return replace(self, stride=stride, period=period, items=None)


_CONST = _Val("const")


@dataclass
class _Op:
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


# --------------------------------------------------------------------------- tracing


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class _Tracer(fx.Tracer):
    """Keeps modules with a rule (and other torch.nn modules) as leaves, traces through the
    rest, and records which node each module call returned (``module_calls``)."""

    def __init__(self) -> None:
        super().__init__()
        self.module_calls: dict[str, list[str]] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _CONTAINERS) and type(m).__module__.startswith("torch.nn"):
            return False
        if _module_rule(m) is not None:
            return True
        return type(m).__module__.startswith("torch.nn")

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.module_calls.setdefault(self.path_of_module(m), []).append(out.node.name)
        return out


class _ValueProp(ShapeProp):
    """ShapeProp that also keeps small non-tensor results (ints, sizes, slices) in
    ``node.meta["erf_value"]`` so rules can read shape arithmetic done in forward."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if _is_plain(result):
            n.meta["erf_value"] = result
        return result


def _is_plain(v: Any) -> bool:
    if isinstance(v, (bool, int, float, str, slice, torch.dtype, torch.device)) or v is None:
        return True
    if v is Ellipsis:
        return True
    if isinstance(v, (tuple, list)):  # torch.Size included
        return all(_is_plain(x) for x in v)
    return False


def _trace(model: nn.Module) -> tuple[fx.GraphModule, dict[str, list[str]]]:
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # any tracer failure becomes one clear error
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx (symbolic_trace): "
            f"{type(e).__name__}: {e}"
        ) from e
    return fx.GraphModule(tracer.root, graph, type(model).__name__), tracer.module_calls


def _propagate(gm: fx.GraphModule, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
    """Shapes of every node for an input of ``(1, *input_shape)``: first on the meta device
    (no arithmetic, so the cost does not grow with the input size), else by running the model
    once on zeros (no grad), e.g. when forward mixes in unregistered CPU tensors."""
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    try:
        _run_shape_prop(gm, torch.zeros(1, *input_shape, dtype=dtype, device="meta"), meta=True)
        return
    except Exception:  # any failure on meta: fall back to real tensors
        for n in gm.graph.nodes:
            n.meta.pop("tensor_meta", None)
            n.meta.pop("erf_value", None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, *input_shape, dtype=dtype, device=device)
    try:
        _run_shape_prop(gm, x, meta=False)
    except Exception as e:
        cause = e.__cause__ or e
        raise ValueError(
            f"running {type(model).__name__} on an input of shape {tuple(x.shape)} failed: "
            f"{type(cause).__name__}: {cause}"
        ) from e


class _ShapeRunner(nn.Module):
    """Holds the trace so ``torch.func.functional_call`` can swap in meta parameters."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, x: torch.Tensor) -> None:
        _ValueProp(self.gm).propagate(x)


def _run_shape_prop(gm: fx.GraphModule, x: torch.Tensor, meta: bool) -> None:
    runner = _ShapeRunner(gm)
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints errors
        if not meta:
            runner(x)
            return
        state = {**dict(runner.named_parameters()), **dict(runner.named_buffers())}
        fake = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
        torch.func.functional_call(runner, fake, (x,))


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for tracing and shape propagation; every module's flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


# --------------------------------------------------------------------------- op names


@functools.cache
def _function_homes() -> tuple[Any, ...]:
    """Namespaces whose functions have rules by name (torchvision.ops: stochastic_depth)."""
    homes: tuple[Any, ...] = (operator, torch, F, torch._C._nn, torch.Tensor, builtins, math)
    try:
        import torchvision.ops

        homes += (torchvision.ops,)
    except ImportError:  # pragma: no cover
        pass
    return homes


def _function_name(target: Any) -> str | None:
    """Canonical name of a call_function target, or None when it is not torch/operator's own."""
    name = getattr(target, "__name__", None)
    if name is None:
        return None
    if any(getattr(home, name, None) is target for home in _function_homes()):
        return name
    return None


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _method_name(name: str) -> str:
    """In-place methods share the rule of their out-of-place form (``relu_`` -> ``relu``)."""
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


_POINTWISE = _words(
    """relu relu6 leaky_relu elu selu celu gelu silu mish hardswish hardsigmoid hardtanh
    sigmoid tanh softplus softsign logsigmoid tanhshrink threshold rrelu prelu hardshrink
    softshrink exp log log1p log2 expm1 sqrt rsqrt abs neg reciprocal square sin cos erf
    sign floor ceil round nan_to_num dropout dropout1d dropout2d dropout3d alpha_dropout
    feature_alpha_dropout batch_norm contiguous clone detach float double half bfloat16 to
    type type_as requires_grad stochastic_depth local_response_norm channel_shuffle
    native_channel_shuffle pos invert not_ logical_not isnan isfinite"""
)
_ELEMENTWISE = _words(
    """add sub mul div true_divide floor_divide truediv floordiv mod remainder pow maximum
    minimum fmax fmin where lerp addcmul addcdiv atan2 iadd isub imul itruediv ifloordiv
    rsub and_ or_ xor eq ne lt le gt ge logical_and logical_or clamp clip clamp_min
    clamp_max masked_fill"""
)
_REDUCTIONS = _words(
    """mean sum amax amin max min std var norm logsumexp prod median nanmean nansum argmax
    argmin all any count_nonzero"""
)
_DIM_POINTWISE = _words("""softmax log_softmax softmin normalize""")
_RESHAPES = _words("""flatten reshape view unflatten squeeze unsqueeze view_as reshape_as""")
_CONST_OPS = _words(
    """size dim numel zeros_like ones_like empty_like full_like rand_like randn_like
    randint_like new_zeros new_ones new_empty new_full new_tensor is_contiguous get_device
    _assert len is_floating_point"""
)
_META_ATTRS = _words("""shape ndim dtype device is_cuda requires_grad layout""")


# --------------------------------------------------------------------------- module rules


def _module_rule(m: nn.Module) -> Callable[[_Builder, _Op], None] | None:
    """The rule for a leaf module (exact type: subclasses are traced through, since they may
    change what the forward reads), or the pointwise rule for modules that declare
    ``erf_pointwise = True`` (elementwise, shape-preserving; e.g. ``erf.nets.luo.MaskDropout``)."""
    rule = _module_rules().get(type(m))
    if rule is None and getattr(m, "erf_pointwise", False):
        return _Builder.pointwise
    return rule


_MODULE_RULES: dict[type, Callable[[_Builder, _Op], None]] = {}


def _module_rules() -> dict[type, Callable[[_Builder, _Op], None]]:
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
    rules: dict[type, Callable[[_Builder, _Op], None]] = {t: _Builder.pointwise for t in pointwise}
    rules.update(
        {
            nn.Conv2d: _Builder.m_conv,
            nn.ConvTranspose2d: _Builder.m_conv_transpose,
            nn.MaxPool2d: _Builder.m_pool,
            nn.AvgPool2d: _Builder.m_pool,
            nn.LPPool2d: _Builder.m_pool,
            nn.AdaptiveAvgPool2d: _Builder.m_adaptive,
            nn.AdaptiveMaxPool2d: _Builder.m_adaptive,
            nn.Upsample: _Builder.m_upsample,
            nn.UpsamplingNearest2d: _Builder.m_upsample,
            nn.UpsamplingBilinear2d: _Builder.m_upsample,
            nn.ZeroPad2d: _Builder.m_pad,
            nn.ConstantPad2d: _Builder.m_pad,
            nn.ReflectionPad2d: _Builder.m_pad,
            nn.ReplicationPad2d: _Builder.m_pad,
            nn.PixelShuffle: _Builder.m_pixel_shuffle,
            nn.PixelUnshuffle: _Builder.m_pixel_unshuffle,
            nn.Flatten: _Builder.reshape,
            nn.Unflatten: _Builder.reshape,
            nn.Linear: _Builder.linear,
            nn.LayerNorm: _Builder.m_layer_norm,
            nn.GroupNorm: _Builder.stat_norm,
            nn.InstanceNorm2d: _Builder.m_instance_norm,
            nn.Softmax: _Builder.m_softmax,
            nn.LogSoftmax: _Builder.m_softmax,
            nn.Softmin: _Builder.m_softmax,
        }
    )
    if hasattr(nn, "CircularPad2d"):
        rules[nn.CircularPad2d] = _Builder.m_pad
    try:
        from torchvision.ops import FrozenBatchNorm2d, StochasticDepth

        rules[FrozenBatchNorm2d] = _Builder.pointwise
        rules[StochasticDepth] = _Builder.pointwise
    except ImportError:  # pragma: no cover
        pass
    _MODULE_RULES.update(rules)
    return _MODULE_RULES


# --------------------------------------------------------------------------- classification


class _Builder:
    """Forward pass over the fx graph: a ``_Val`` and back-edges per node (see module doc)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.modules = dict(gm.named_modules())
        self.vals: dict[str, _Val] = {}
        self.edges: dict[str, list[Edge]] = {}
        self.merges: dict[str, list[Edge]] = {}
        self.notes: dict[str, list[str]] = {}
        self.input: str | None = None
        for node in gm.graph.nodes:
            self.classify(node)

    # ---- helpers

    def val(self, x: Any) -> _Val:
        return self.vals[x.name] if isinstance(x, fx.Node) else _CONST

    @staticmethod
    def shape(x: fx.Node) -> tuple[int, ...] | None:
        meta = x.meta.get("tensor_meta")
        return tuple(meta.shape) if hasattr(meta, "shape") else None

    def describe(self, node: fx.Node) -> str:
        module = _node_module(node)
        return f"node {node.name!r}" + (f" (module {module!r})" if module else "")

    def unsupported(self, op: _Op, why: str = "") -> TypeError:
        kind = {"call_module": "module", "call_function": "function", "call_method": "method"}
        what = f"{kind.get(op.node.op, op.node.op)} {op.name}"
        return TypeError(
            f"unsupported op {what} at {self.describe(op.node)}: no receptive-field rule"
            + (f" ({why})" if why else "")
            + "; erf.rf.graph handles convolutions, pooling, padding, interpolation, pointwise and "
            "channel ops, reshapes that keep (rows, cols), add/mul/cat"
        )

    def set(self, op: _Op, val: _Val, edges: Sequence[Edge] = (), merge: bool = False) -> None:
        self.vals[op.node.name] = val
        if edges:
            self.edges[op.node.name] = list(edges)
            if merge and len(edges) > 1:
                self.merges[op.node.name] = list(edges)

    def note(self, op: _Op, text: str) -> None:
        self.notes.setdefault(op.node.name, []).append(text)

    def set_global(self, op: _Op, reason: str) -> None:
        self.set(op, _Val("global", reason=f"{reason} at {self.describe(op.node)}"))

    def local_input(self, op: _Op) -> fx.Node:
        """The first tensor argument, which must be local."""
        x = op.args[0] if op.args else None
        if not isinstance(x, fx.Node) or self.val(x).kind != "local":
            raise self.unsupported(op, "its first argument is not the spatial feature map")
        if self.val(x).items is not None:
            raise self.unsupported(op, "its first argument is a tuple")
        return x

    def spatial_last(self, op: _Op, x: fx.Node) -> tuple[_Val, bool]:
        """x's value and whether its layout is swapped (rows in the last dim); the op works on
        the last two tensor dims, which must be the image's."""
        v, shape = self.val(x), self.shape(x)
        nd = len(shape)
        if set(v.layout) != {nd - 2, nd - 1}:
            raise self.unsupported(op, f"its input has the spatial dims at {v.layout}, not last")
        return v, v.layout != (nd - 2, nd - 1)

    def spatial(
        self,
        op: _Op,
        x: fx.Node,
        rules: tuple[AxisRule | None, AxisRule | None],
        factors: tuple[Fraction, Fraction],
        context: bool = False,
    ) -> None:
        """A 2-D op on tensor dims (-2, -1): ``rules``/``factors`` (nominal stride multipliers)
        are given per tensor dim (H, W) and mapped to image (rows, cols) via the layout."""
        v, swapped = self.spatial_last(op, x)
        if swapped:
            rules, factors = rules[::-1], factors[::-1]
        out = replace(v.scaled(factors), context=v.context or context)
        self.set(op, out, [(x.name, _box_rule(*rules))])

    def same(self, op: _Op, x: fx.Node, layout: tuple[int, int] | None = None, **kw: Any) -> None:
        v = self.val(x)
        context = v.context or kw.get("context", False)
        out = replace(v, layout=layout or v.layout, context=context, items=None)
        self.set(op, out, [(x.name, kw.get("rule", _identity))])

    def dims(self, op: _Op, dim: Any, ndim: int) -> list[int]:
        dims = list(dim) if isinstance(dim, (tuple, list)) else [dim]
        if not all(isinstance(d, int) for d in dims):
            raise self.unsupported(op, f"non-integer dim {dim!r}")
        return [d % ndim for d in dims]

    # ---- dispatch

    def classify(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            self.placeholder(node)
            return
        if node.op in ("get_attr", "output"):
            self.vals[node.name] = _CONST
            return
        args = fx.node.map_arg(node.args, _resolve)
        kwargs = fx.node.map_arg(node.kwargs, _resolve)
        module = self.modules.get(node.target) if node.op == "call_module" else None
        if node.op == "call_module":
            name = type(module).__name__
        elif node.op == "call_method":
            name = _method_name(node.target)
        else:
            name = _function_name(node.target) or getattr(node.target, "__qualname__", "")
            name = name or str(node.target)
        op = _Op(node, tuple(args), dict(kwargs), module, name)

        kinds = {self.val(n).kind for n in node.all_input_nodes}
        if self.is_metadata(op) or kinds <= {"const"}:
            self.vals[node.name] = _CONST
        elif "tokens" in kinds:
            self.vals[node.name] = next(
                self.val(n) for n in node.all_input_nodes if self.val(n).kind == "tokens"
            )
        elif kinds - {"const"} == {"global"}:
            src = next(self.val(n) for n in node.all_input_nodes if self.val(n).kind == "global")
            self.vals[node.name] = _Val("global", reason=src.reason)
        else:
            self.dispatch(op)

    def is_metadata(self, op: _Op) -> bool:
        """Ops whose result does not depend on tensor data (shapes, dtypes, *_like)."""
        if op.name in _CONST_OPS and op.node.op != "call_module":
            return True
        return op.name == "getattr" and len(op.args) > 1 and op.args[1] in _META_ATTRS

    def dispatch(self, op: _Op) -> None:
        if op.node.op == "call_module":
            rule = _module_rule(op.module)
            if rule is None:
                raise self.unsupported(op)
            rule(self, op)
            return
        if op.node.op == "call_function" and _function_name(op.node.target) is None:
            raise self.unsupported(op, "not a torch / torch.nn.functional / operator function")
        rule = _NAME_RULES.get(op.name)
        if rule is None:
            if op.name in _POINTWISE:
                rule = _Builder.pointwise
            elif op.name in _ELEMENTWISE:
                rule = _Builder.elementwise
            elif op.name in _REDUCTIONS:
                rule = _Builder.reduction
            elif op.name in _DIM_POINTWISE:
                rule = _Builder.dim_pointwise
            elif op.name in _RESHAPES:
                rule = _Builder.reshape
            else:
                raise self.unsupported(op)
        rule(self, op)

    def placeholder(self, node: fx.Node) -> None:
        if self.input is not None:
            self.vals[node.name] = _CONST
            return
        shape = self.shape(node)
        if shape is None or len(shape) != 4:
            raise ValueError(f"the model input must be a [B, C, H, W] tensor, got shape {shape}")
        self.input = node.name
        self.vals[node.name] = _Val("local", (2, 3))

    # ---- pointwise, broadcasting and channel ops

    def pointwise(self, op: _Op) -> None:
        """Spatially 1x1: activations, eval BatchNorm, dropout, dtype casts, channel shuffles."""
        self.same(op, self.local_input(op))

    def elementwise(self, op: _Op) -> None:
        """Broadcasting n-ary ops (add, mul, where, ...): every local argument is a branch;
        global arguments (per-channel gates) set ``global_context``; size-1 axes broadcast."""
        out_shape = self.shape(op.node)
        if out_shape is None:
            raise self.unsupported(op, "non-tensor result")
        tensors = [a for a in _flat_nodes((op.args, op.kwargs)) if self.val(a).kind != "const"]
        edges: list[Edge] = []
        layout, base, context = None, None, False
        nd = len(out_shape)
        for t in tensors:
            v = self.val(t)
            if v.kind == "global":
                context = True
                self.note(op, GATE_NOTE)
                continue
            if v.items is not None:
                raise self.unsupported(op, "tuple argument")
            shift = nd - len(self.shape(t))
            lay = (v.layout[0] + shift, v.layout[1] + shift)
            if layout is not None and lay != layout:
                raise self.unsupported(op, "its arguments hold the spatial dims at different dims")
            layout, base, context = lay, base or v, context or v.context
            arg_hw = _hw(self.shape(t), v.layout)
            out_hw = (out_shape[lay[0]], out_shape[lay[1]])
            rules = [_broadcast if a == 1 < b else None for a, b in zip(arg_hw, out_hw)]
            if any(rules):
                context = True
                self.note(op, BROADCAST_NOTE)
            edges.append((t.name, _box_rule(*rules)))
        merge_edges = [e for e in edges if e[1] is _identity]
        period = _common_period(self.vals[n] for n, _ in edges)
        self.set(op, replace(base, layout=layout, period=period, context=context), edges)
        if len(merge_edges) > 1:
            self.merges[op.node.name] = merge_edges

    def dim_pointwise(self, op: _Op) -> None:
        """softmax/log_softmax/normalize along ``dim``: pointwise unless dim is spatial."""
        x = self.local_input(op)
        default = 1 if op.name == "normalize" else None
        dim = op.arg(2 if op.name == "normalize" else 1, "dim", default)
        self._dim_op(op, x, dim)

    def m_softmax(self, op: _Op) -> None:
        x = self.local_input(op)
        dim = op.module.dim
        self._dim_op(op, x, 1 if dim is None and len(self.shape(x)) == 4 else dim)

    def _dim_op(self, op: _Op, x: fx.Node, dim: Any) -> None:
        nd = len(self.shape(x))
        if dim is None or set(self.dims(op, dim, nd)) & set(self.val(x).layout):
            self.set_global(op, f"{op.name} over a spatial dim")
        else:
            self.same(op, x)

    def reduction(self, op: _Op) -> None:
        """mean/sum/amax/max/...: global over a spatial dim (or all dims), else channel-only.
        ``max``/``min`` of two tensors are elementwise."""
        second = op.arg(1, "other")
        if op.name in ("max", "min") and isinstance(second, fx.Node):
            self.elementwise(op)
            return
        x = self.local_input(op)
        dim = op.arg(2 if op.name == "norm" else 1, "dim")  # torch.norm(x, p, dim)
        nd, v = len(self.shape(x)), self.val(x)
        if dim is None or (isinstance(dim, (tuple, list)) and not dim):
            self.set_global(op, f"{op.name} over all dims")
            return
        dims = self.dims(op, dim, nd)
        if set(dims) & set(v.layout):
            self.set_global(op, f"{op.name} over a spatial dim")
            return
        keep = len(self.shape(op.node) or _first_shape(op.node)) == nd
        layout = v.layout if keep else tuple(d - sum(r < d for r in dims) for d in v.layout)
        if isinstance(op.node.meta.get("tensor_meta"), tuple):  # (values, indices)
            item = replace(v, layout=layout)
            items = ((item, _identity), (item, _identity))
            self.set(op, replace(v, layout=layout, items=items), [(x.name, _identity)])
        else:
            self.same(op, x, layout=layout)

    def linear(self, op: _Op) -> None:
        """nn.Linear / F.linear / matmul by a constant: acts on the last dim; pointwise when
        that is a channel dim (channels-last blocks), global when it is a spatial dim."""
        x = self.local_input(op)
        if op.name == "matmul" and self.val(op.arg(1, "other")).kind != "const":
            raise self.unsupported(op, "matmul of two feature maps (attention)")
        if len(self.shape(x)) - 1 in self.val(x).layout:
            self.set_global(op, "linear layer over a spatial dim")
        else:
            self.same(op, x)

    def m_layer_norm(self, op: _Op) -> None:
        self._layer_norm(op, len(op.module.normalized_shape))

    def f_layer_norm(self, op: _Op) -> None:
        shape = op.arg(1, "normalized_shape")
        self._layer_norm(op, len(shape) if isinstance(shape, (tuple, list)) else 1)

    def _layer_norm(self, op: _Op, n_dims: int) -> None:
        """LayerNorm over the last ``n_dims`` dims: pointwise over channels; over spatial dims
        its statistics are global (treated as constants, ``global_context``)."""
        x = self.local_input(op)
        nd = len(self.shape(x))
        if any(d >= nd - n_dims for d in self.val(x).layout):
            self.stat_norm(op)
        else:
            self.same(op, x)

    def m_instance_norm(self, op: _Op) -> None:
        m = op.module
        if m.track_running_stats and not m.training:
            self.pointwise(op)
        else:
            self.stat_norm(op)

    def stat_norm(self, op: _Op) -> None:
        """GroupNorm/InstanceNorm (and LayerNorm over spatial dims): pointwise with per-sample
        statistics over the whole map, treated as constants; sets ``global_context``."""
        self.note(op, STAT_NOTE)
        self.same(op, self.local_input(op), context=True)

    # ---- layout ops

    def reshape(self, op: _Op) -> None:
        """flatten/reshape/view/(un)squeeze: keeps (rows, cols) when both dims survive (same
        size and same product of the dims before them); flattening them into a vector is
        global, into a token sequence is out of scope."""
        x = self.local_input(op)
        in_shape, out_shape, v = self.shape(x), self.shape(op.node), self.val(x)
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
            layout.append(match[-1] if size == 1 else match[0])
        if len(layout) == 2:
            self.same(op, x, layout=(layout[0], layout[1]))
        elif len(out_shape) <= 2:
            self.set_global(op, "flatten of the spatial dims")
        else:
            self.vals[op.node.name] = _Val(
                "tokens", reason=f"{TOKEN_ERROR} at {self.describe(op.node)}"
            )

    def permute(self, op: _Op) -> None:
        x = self.local_input(op)
        dims = op.args[1:] if op.node.op == "call_method" else (op.arg(1, "dims"),)
        if "dims" in op.kwargs:
            dims = (op.kwargs["dims"],)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        nd = len(self.shape(x))
        dims = [d % nd for d in dims]
        self.same(op, x, layout=tuple(dims.index(d) for d in self.val(x).layout))

    def transpose(self, op: _Op) -> None:
        x = self.local_input(op)
        nd = len(self.shape(x))
        d0, d1 = op.arg(1, "dim0") % nd, op.arg(2, "dim1") % nd
        swap = {d0: d1, d1: d0}
        self.same(op, x, layout=tuple(swap.get(d, d) for d in self.val(x).layout))

    def getitem(self, op: _Op) -> None:
        """Item of a tuple (chunk/split), or tensor indexing: channel/batch indexing is
        pointwise, slices ``start:stop:step`` of a spatial dim shift and stride it."""
        x, idx = op.args[0], op.args[1]
        v = self.val(x)
        if v.items is not None:
            item, rule = v.items[idx]
            self.set(op, item, [(x.name, rule)])
            return
        x = self.local_input(op)
        in_shape = self.shape(x)
        idx = _expand_index(idx, len(in_shape))
        if idx is None:
            raise self.unsupported(op, "indexing with tensors or booleans")
        layout: dict[int, int] = {}
        rules: dict[int, AxisRule] = {}
        factors = {0: Fraction(1), 1: Fraction(1)}
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
        out = replace(v.scaled((factors[0], factors[1])), layout=(layout[0], layout[1]))
        self.set(op, out, [(x.name, _box_rule(rules.get(0), rules.get(1)))])

    def split(self, op: _Op) -> None:
        """chunk/split/unbind: a tuple whose items are channel slices (identity) or spatial
        pieces (shifted by their offset)."""
        x = self.local_input(op)
        v, nd = self.val(x), len(self.shape(x))
        dim = op.arg(2 if op.name in ("chunk", "split") else 1, "dim", 0) % nd
        metas = op.node.meta.get("tensor_meta")
        items = []
        offset = 0
        for meta in metas:
            if op.name == "unbind":
                if dim in v.layout:
                    raise self.unsupported(op, "unbind along a spatial dim")
                lay = tuple(d - (d > dim) for d in v.layout)
                items.append((replace(v, layout=lay), _identity))
                continue
            rule: BoxRule = _identity
            if dim in v.layout and offset:
                ax = v.layout.index(dim)
                rule = _box_rule(*[_shift(offset) if a == ax else None for a in range(2)])
            items.append((v, rule))
            offset += meta.shape[dim]
        out = replace(v, items=tuple(items))
        self.set(op, out, [(x.name, _identity)])

    def cat(self, op: _Op) -> None:
        """cat/stack: along channels every local piece is a branch (aligned, hull); along a
        spatial dim each piece covers its own units; global pieces set ``global_context``."""
        tensors = list(op.arg(0, "tensors"))
        out_shape = self.shape(op.node)
        nd = len(out_shape)
        dim = op.arg(1, "dim", 0) % nd
        stack = op.name == "stack"
        edges: list[Edge] = []
        layout, base, context, offset = None, None, False, 0
        for t in tensors:
            v = self.val(t) if isinstance(t, fx.Node) else _CONST
            size = 1 if stack else self.shape(t)[dim]
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
                rule: BoxRule = _identity
                if dim in lay and not stack:
                    ax = lay.index(dim)
                    crop = lambda iv, o=offset, n=size: crop_interval(iv, o, n)  # noqa: E731
                    rule = _box_rule(*[crop if a == ax else None for a in range(2)])
                edges.append((t.name, rule))
            offset += size
        period = _common_period(self.vals[n] for n, _ in edges)
        out = replace(base, layout=layout, period=period, context=context)
        self.set(op, out, edges, merge=dim not in layout)

    # ---- spatial modules

    def m_conv(self, op: _Op) -> None:
        m = op.module
        padding = _conv_padding(m.padding, m.kernel_size, m.dilation)
        self._pad_note(op, m.padding_mode)
        self._conv(op, m.kernel_size, m.stride, padding, m.dilation)

    def f_conv(self, op: _Op) -> None:
        weight = op.arg(1, "weight")
        kernel = self.shape(weight)[-2:]
        dilation = _pair(op.arg(5, "dilation", 1))
        padding = _conv_padding(op.arg(4, "padding", 0), kernel, dilation)
        self._conv(op, kernel, _pair(op.arg(3, "stride", 1)), padding, dilation)

    def _conv(self, op: _Op, kernel: Any, stride: Any, padding: Any, dilation: Any) -> None:
        k, s, p, d = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
        rules = tuple(_conv(k[i], s[i], p[i], d[i]) for i in range(2))
        self.spatial(op, self.local_input(op), rules, (Fraction(s[0]), Fraction(s[1])))

    def m_conv_transpose(self, op: _Op) -> None:
        m = op.module
        self._conv_transpose(op, m.kernel_size, m.stride, m.padding, m.dilation)

    def f_conv_transpose(self, op: _Op) -> None:
        kernel = self.shape(op.arg(1, "weight"))[-2:]
        stride, padding = op.arg(3, "stride", 1), op.arg(4, "padding", 0)
        self._conv_transpose(op, kernel, stride, padding, op.arg(7, "dilation", 1))

    def _conv_transpose(self, op: _Op, kernel: Any, stride: Any, padding: Any, dil: Any) -> None:
        k, s, p, d = _pair(kernel), _pair(stride), _pair(padding), _pair(dil)
        rules = tuple(
            (lambda iv, i=i: conv_transpose_interval(iv, k[i], s[i], p[i], d[i])) for i in range(2)
        )
        self.spatial(op, self.local_input(op), rules, (Fraction(1, s[0]), Fraction(1, s[1])))

    def m_pool(self, op: _Op) -> None:
        m = op.module
        stride = m.stride or m.kernel_size
        self._conv(op, m.kernel_size, stride, getattr(m, "padding", 0), getattr(m, "dilation", 1))

    def f_pool(self, op: _Op) -> None:
        if op.name == "lp_pool2d":
            kernel = op.arg(2, "kernel_size")
            self._conv(op, kernel, op.arg(3, "stride") or kernel, 0, 1)
            return
        kernel = op.arg(1, "kernel_size")
        stride = op.arg(2, "stride") or kernel
        dilation = op.arg(4, "dilation", 1) if "max" in op.name else 1
        self._conv(op, kernel, stride, op.arg(3, "padding", 0), dilation)

    def m_adaptive(self, op: _Op) -> None:
        self._adaptive(op)

    def _adaptive(self, op: _Op) -> None:
        """Adaptive pooling: exact windows; an axis pooled to 1 from more makes it global."""
        x = self.local_input(op)
        self.spatial_last(op, x)
        h_in, w_in = self.shape(x)[-2:]
        h_out, w_out = self.shape(op.node)[-2:]
        if (h_out == 1 < h_in) or (w_out == 1 < w_in):
            self.set_global(op, "adaptive pooling to 1")
            return
        rules = tuple(
            None if a == b else (lambda iv, a=a, b=b: adaptive_interval(iv, a, b))
            for a, b in ((h_in, h_out), (w_in, w_out))
        )
        self.spatial(op, x, rules, (Fraction(h_in, h_out), Fraction(w_in, w_out)))

    def m_upsample(self, op: _Op) -> None:
        m = op.module
        align = m.align_corners
        if isinstance(m, nn.UpsamplingBilinear2d):
            align = True
        self._interpolate(op, m.mode, align, m.scale_factor, m.recompute_scale_factor, False)

    def f_interpolate(self, op: _Op) -> None:
        self._interpolate(
            op,
            op.arg(3, "mode", "nearest"),
            op.arg(4, "align_corners"),
            op.arg(2, "scale_factor"),
            op.arg(5, "recompute_scale_factor"),
            op.arg(6, "antialias", False),
        )

    def _interpolate(
        self, op: _Op, mode: str, align: Any, scale: Any, recompute: Any, antialias: bool
    ) -> None:
        """nearest / nearest-exact / bilinear / bicubic / area, sizes from ShapeProp; the scale
        PyTorch's kernel uses is the user's scale_factor unless recompute_scale_factor."""
        x = self.local_input(op)
        if antialias:
            raise self.unsupported(op, "antialiased interpolation")
        if mode not in ("nearest", "nearest-exact", "bilinear", "bicubic", "area"):
            raise self.unsupported(op, f"interpolation mode {mode!r}")
        self.spatial_last(op, x)
        sizes = list(zip(self.shape(x)[-2:], self.shape(op.node)[-2:]))
        scales = (None, None) if recompute or scale is None or mode == "area" else _pair(scale)
        rules = tuple(
            (lambda iv, a=a, b=b, s=s: interpolate_interval(iv, a, b, mode, s, align))
            for (a, b), s in zip(sizes, scales)
        )
        self.spatial(op, x, rules, tuple(Fraction(a, b) for a, b in sizes))

    def m_pad(self, op: _Op) -> None:
        left, _, top, _ = op.module.padding
        mode = type(op.module).__name__.replace("Pad2d", "").lower()
        self._pad(op, [left, 0, top, 0], mode)

    def f_pad(self, op: _Op) -> None:
        self._pad(op, list(op.arg(1, "pad")), op.arg(2, "mode", "constant"))

    def _pad(self, op: _Op, pad: list[int], mode: str) -> None:
        """F.pad / *Pad2d: a shift by the left/top padding (negative pads crop). Reflection and
        replication read mirrored/edge pixels near the border, inside the clipped span for
        pads below the next kernel's half-width; circular padding wraps around (noted)."""
        x = self.local_input(op)
        v, nd = self.val(x), len(self.shape(x))
        rules: list[AxisRule | None] = []
        for d in v.layout:
            j = nd - 1 - d
            left = pad[2 * j] if 2 * j < len(pad) else 0
            rules.append(_shift(-left) if left else None)
        self._pad_note(op, mode)
        self.same(op, x, rule=_box_rule(*rules))

    def _pad_note(self, op: _Op, mode: str) -> None:
        if mode == "circular":
            self.note(op, CIRCULAR_NOTE)
        elif mode in ("reflect", "reflection", "replicate", "replication"):
            self.note(op, MIRROR_NOTE)

    def m_pixel_shuffle(self, op: _Op) -> None:
        self._pixel_shuffle(op, op.module.upscale_factor)

    def m_pixel_unshuffle(self, op: _Op) -> None:
        self._pixel_unshuffle(op, op.module.downscale_factor)

    def _pixel_shuffle(self, op: _Op, r: int) -> None:
        """Output unit u reads input unit floor(u / r) (like nearest upsampling by r)."""
        rule = lambda iv: (iv[0] // r, iv[1] // r)  # noqa: E731
        self.spatial(op, self.local_input(op), (rule, rule), (Fraction(1, r), Fraction(1, r)))

    def _pixel_unshuffle(self, op: _Op, r: int) -> None:
        """Output unit u reads input units [u r, u r + r - 1] (a k=r, s=r window)."""
        rule = lambda iv: affine_interval(iv, r, 0, r - 1)  # noqa: E731
        self.spatial(op, self.local_input(op), (rule, rule), (Fraction(r), Fraction(r)))


def _expand_index(idx: Any, ndim: int) -> tuple | None:
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


def _resolve(n: fx.Node) -> Any:
    """A node's concrete non-tensor value when it has one (shape arithmetic), else the node."""
    return n.meta.get("erf_value", n)


def _common_period(vals: Any) -> tuple[int, int]:
    """Period of a merge: the least common multiple of its branches' periods."""
    periods = [v.period for v in vals]
    return (math.lcm(*(p[0] for p in periods)), math.lcm(*(p[1] for p in periods)))


def _first_shape(node: fx.Node) -> tuple[int, ...]:
    """Shape of the first tensor of a tuple result (torch.max(x, dim) -> (values, indices))."""
    return tuple(node.meta["tensor_meta"][0].shape)


def _flat_nodes(x: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_aggregate(x, lambda a: out.append(a) if isinstance(a, fx.Node) else None)
    return out


def _hw(shape: Sequence[int], layout: tuple[int, int]) -> tuple[int, int]:
    return (shape[layout[0]], shape[layout[1]])


def _conv_padding(padding: Any, kernel: Any, dilation: Any) -> tuple[int, int]:
    """Left padding per axis; "same" puts total // 2 of d(k-1) on the left, "valid" none."""
    if padding == "same":
        k, d = _pair(kernel), _pair(dilation)
        return tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
    if padding == "valid":
        return (0, 0)
    return _pair(padding)


def _node_module(node: fx.Node) -> str | None:
    """The module path that made the node: its target for call_module, else the innermost
    module whose forward was traced through to create it (None at the top level)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    return next(reversed(stack.values()))[0] or None


_NAME_RULES: dict[str, Callable[[_Builder, _Op], None]] = {
    "getitem": _Builder.getitem,
    "permute": _Builder.permute,
    "transpose": _Builder.transpose,
    "swapaxes": _Builder.transpose,
    "swapdims": _Builder.transpose,
    "cat": _Builder.cat,
    "concat": _Builder.cat,
    "concatenate": _Builder.cat,
    "stack": _Builder.cat,
    "chunk": _Builder.split,
    "split": _Builder.split,
    "unbind": _Builder.split,
    "pad": _Builder.f_pad,
    "interpolate": _Builder.f_interpolate,
    "conv2d": _Builder.f_conv,
    "conv_transpose2d": _Builder.f_conv_transpose,
    "max_pool2d": _Builder.f_pool,
    "_max_pool2d": _Builder.f_pool,
    "max_pool2d_with_indices": _Builder.f_pool,
    "avg_pool2d": _Builder.f_pool,
    "lp_pool2d": _Builder.f_pool,
    "adaptive_avg_pool2d": _Builder._adaptive,
    "adaptive_max_pool2d": _Builder._adaptive,
    "_adaptive_max_pool2d": _Builder._adaptive,
    "adaptive_max_pool2d_with_indices": _Builder._adaptive,
    "pixel_shuffle": lambda b, op: b._pixel_shuffle(op, op.arg(1, "upscale_factor")),
    "pixel_unshuffle": lambda b, op: b._pixel_unshuffle(op, op.arg(1, "downscale_factor")),
    "linear": _Builder.linear,
    "matmul": _Builder.linear,
    "layer_norm": _Builder.f_layer_norm,
    "group_norm": _Builder.stat_norm,
    "instance_norm": _Builder.stat_norm,
}


# --------------------------------------------------------------------------- results


@dataclass
class NodeRF:
    """One fx node: ``name``, ``module`` (module path, see ``_node_module``), ``op`` (module
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
        self.module_calls = {k: tuple(v) for k, v in module_calls.items()}
        b = _Builder(gm)
        self._vals, self._edges, self._merges, self._notes = b.vals, b.edges, b.merges, b.notes
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
                self._hw[name] = _hw(_Builder.shape(self._fx[name]), v.layout)
        self.nodes = {n.name: self._node_rf(n, b) for n in fx_nodes}
        outs = _flat_nodes(next(n for n in gm.graph.nodes if n.op == "output").args)
        self.output = outs[0].name if len(outs) == 1 else None
        self._outputs = [n.name for n in outs]
        self._cache: dict[str, TheoreticalRF] = {}
        self._aligned: dict[str, str | None] = {}

    def _node_rf(self, n: fx.Node, b: _Builder) -> NodeRF:
        shape, v = _Builder.shape(n), self._vals[n.name]
        spatial = (
            shape is not None
            and len(shape) == 4
            and (v.kind == "global" or (v.kind == "local" and v.layout == (2, 3)))
        )
        if n.op == "call_module":
            op = type(b.modules[n.target]).__name__
        else:
            op = "input" if n.name == b.input else _op_name(n)
        return NodeRF(n.name, _node_module(n), op, shape[1:] if shape else None, spatial, self)

    # ---- targets

    def node_name(self, target: str | None) -> str:
        """fx node name of ``target``: None (the model output), a module path called exactly
        once, or an fx node name."""
        if target is None:
            if self.output is None:
                raise ValueError(
                    f"the model has {len(self._outputs)} tensor outputs "
                    f"({', '.join(self._outputs)}); pass target= one of them"
                )
            return self.output
        if target in self.module_calls:
            calls = self.module_calls[target]
            if len(calls) > 1:
                raise ValueError(
                    f"module {target!r} is called {len(calls)} times in forward (nodes "
                    f"{', '.join(calls)}); pass one of these fx node names as the target"
                )
            return calls[0]
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
            return ((0, self.input_shape[1] - 1), (0, self.input_shape[2] - 1))
        box = self._back(name, ((unit[0], unit[0]), (unit[1], unit[1])), clip=clipped)
        if box is None:
            raise ValueError(f"unit {unit} of {name!r} reads no input pixel")
        return box

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
                    note="",
                )
            except ValueError as e:
                row.update(trf_size=None, trf_stride=None, trf_padding=None, is_global=None)
                row["note"] = str(e)
            rows.append(row)
        return rows

    # ---- analysis

    def _value(self, name: str) -> _Val:
        v = self._vals[name]
        if v.kind == "tokens":
            raise ValueError(v.reason)
        if v.kind == "const":
            raise ValueError(f"node {name!r} does not depend on the input")
        if v.items is not None:
            raise ValueError(f"node {name!r} is a tuple; target one of its items")
        return v

    def _trf(self, name: str, paths: bool) -> TheoreticalRF:
        v = self._value(name)
        hw_in = self.input_shape[1:]
        if v.kind == "global":
            return TheoreticalRF(
                size=hw_in, stride=(0, 0), padding=(0, 0), input_shape=hw_in,
                out_shape=self._out_hw(name, v), is_global=True, target=name,
                notes=(GLOBAL_NOTE, v.reason), graph=self,
            )  # fmt: skip
        ancestors = self._ancestors(name)
        for m in sorted((a for a in ancestors if a in self._merges), key=self._index.get):
            error = self._alignment(m)  # upstream merges first
            if error:
                raise ValueError(error)
        h, w = self._out_hw(name, v)
        q = v.period
        c = (h // 2, w // 2)
        centre = self._unit_box(name, c)
        nxt = self._unit_box(name, (c[0] + q[0], c[1] + q[1]))
        zero = self._unit_box(name, (0, 0))
        stride = tuple(_plain(Fraction(nxt[a][0] - centre[a][0], q[a])) for a in range(2))
        extra: dict[str, Any] = {}
        if paths:
            extra = self._paths(name, ((c[0], c[0]), (c[1], c[1])))
        return TheoreticalRF(
            size=(centre[0][1] - centre[0][0] + 1, centre[1][1] - centre[1][0] + 1),
            stride=stride,
            padding=(-zero[0][0], -zero[1][0]),
            input_shape=hw_in,
            out_shape=(h, w),
            global_context=v.context,
            notes=self._collect_notes(ancestors),
            target=name,
            graph=self,
            **extra,
        )

    def _out_hw(self, name: str, v: _Val) -> tuple[int, int] | None:
        shape = self.nodes[name].shape
        if v.kind == "global":
            return tuple(shape[-2:]) if shape is not None and len(shape) == 3 else None
        return _hw((1, *shape), v.layout)

    def _unit_box(self, name: str, unit: tuple[int, int]) -> Box:
        box = self._back(name, ((unit[0], unit[0]), (unit[1], unit[1])))
        if box is None:
            raise ValueError(f"unit {unit} of node {name!r} reads no input pixel")
        return box

    def _back(self, name: str, box: Box, clip: bool = False) -> Box | None:
        """Input box read by ``box`` of node ``name``: hulls in reverse topological order.

        ``clip``: intersect every node's box with its map first, so units that exist only in
        padding read nothing: the exact bounding box of the pixels the unit depends on.
        """
        box = self._back_all(name, box, clip).get(self._input)
        return _clip_box(box, self._hw[self._input]) if clip and box is not None else box

    def _back_all(self, name: str, box: Box, clip: bool) -> dict[str, Box]:
        """``_back``'s box at every node it reaches (unclipped hulls of the rules' boxes)."""
        boxes: dict[str, Box] = {name: box}
        for n in reversed(self._order[: self._pos[name] + 1]):
            b = boxes.get(n)
            if b is not None and clip:
                b = _clip_box(b, self._hw[n])
            if b is None:
                continue
            for arg, rule in self._edges.get(n, ()):
                nb = rule(b)
                if nb is not None:
                    boxes[arg] = _box_hull(boxes.get(arg), nb)
        return boxes

    def dependencies(self, target: str | None, unit: tuple[int, int]) -> dict[str, Box]:
        """Every local node on a path from the input to ``target`` (the input and the target
        included) -> the box of its units that ``unit`` (row, col) of the target depends on,
        clipped to its map (nodes whose box misses their map are left out)."""
        name = self.node_name(target)
        self._value(name)
        boxes = self._back_all(name, ((unit[0], unit[0]), (unit[1], unit[1])), clip=True)
        clipped = {n: _clip_box(b, self._hw[n]) for n, b in boxes.items()}
        return {n: b for n, b in clipped.items() if b is not None}

    def node_grid(self, name: str) -> tuple[tuple[Any, Any], tuple[int, int]]:
        """Effective stride (rows, cols) of node ``name`` (an int, or a Fraction after
        upsampling) from the starts of units (0, 0) and (1, 1), and its map's (rows, cols)."""
        zero = self._back(name, ((0, 0), (0, 0)))
        one = self._back(name, ((1, 1), (1, 1)))
        if zero is None or one is None:
            raise ValueError(f"node {name!r} reads no input pixel")
        stride = tuple(_plain(Fraction(one[a][0] - zero[a][0])) for a in range(2))
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
        q = _common_period(self._vals[a] for a, _ in edges)
        h, w = self._out_hw(name, v)
        u = ((h // 2) // q[0] * q[0], (w // 2) // q[1] * q[1])
        units = (u, (u[0] + q[0], u[1] + q[1]))
        seen: list[tuple[str, tuple]] = []
        error = None
        for arg, rule in edges:
            boxes = []
            for unit in units:
                b = rule(((unit[0], unit[0]), (unit[1], unit[1])))
                boxes.append(None if b is None else self._back(arg, b))
            if None in boxes:
                continue
            centres = tuple((b[ax][0] + b[ax][1]) / 2 for b in boxes for ax in range(2))
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
            module = _node_module(self._fx[x])
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
            size = (b[0][1] - b[0][0] + 1, b[1][1] - b[1][0] + 1)
            sizes[size] += count
            examples.setdefault(size, example)
        if not sizes:
            return {}
        key = lambda s: (s[0] * s[1], s[0])  # noqa: E731
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


def _clip_box(box: Box, hw: tuple[int, int]) -> Box | None:
    """``box`` clipped to a map of ``hw`` (rows, cols) units; None when they do not meet."""
    rows = (max(box[0][0], 0), min(box[0][1], hw[0] - 1))
    cols = (max(box[1][0], 0), min(box[1][1], hw[1] - 1))
    return (rows, cols) if rows[0] <= rows[1] and cols[0] <= cols[1] else None


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


# --------------------------------------------------------------------------- entry points


def graph_rf(model: nn.Module, input_shape: Sequence[int]) -> GraphRF:
    """Trace ``model`` with torch.fx and propagate shapes for zeros of ``(1, *input_shape)``
    (both in eval mode, no grad; training flags restored), then classify every node.

    Args:
        model: any ``nn.Module`` taking one ``[B, C, H, W]`` tensor.
        input_shape: ``(C, H, W)``.

    Raises:
        ValueError: the model cannot be traced or run at that shape.
        TypeError: an op on a path from the input has no rule (names the op and its node).
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W) for graph analysis, got {input_shape!r}")
    shape = tuple(int(s) for s in input_shape)
    with _eval_mode(model):
        gm, calls = _trace(model)
        _propagate(gm, model, shape)
    return GraphRF(model, gm, calls, shape)


def truncated_model(model: nn.Module, targets: Sequence[str | None]) -> fx.GraphModule:
    """A torch.fx trace of ``model`` that returns the outputs of ``targets`` (module paths, the
    first call of each; None = the model output) as a tuple and computes nothing after them:
    a forward pass that stops at the targets without hooks, which ``torch.compile`` can fuse.
    The trace shares the model's modules (and so its parameters).

    Raises:
        ValueError: the model cannot be traced, or a target is not a module called in forward.
    """
    with _eval_mode(model):
        gm, calls = _trace(model)
    nodes = {n.name: n for n in gm.graph.nodes}
    output = next(n for n in gm.graph.nodes if n.op == "output")
    outs = []
    for t in targets:
        if t is None:
            outs.append(output.args[0])
        elif t in calls:
            outs.append(nodes[calls[t][0]])
        else:
            raise ValueError(f"module {t!r} is not called with a tensor result in forward")
    with gm.graph.inserting_before(output):
        gm.graph.output(tuple(outs))
    gm.graph.erase_node(output)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> list[dict[str, Any]]:
    """Targetable layers: one row per module (``named_modules`` path, called once in forward)
    whose output is a spatial [C, H, W] map, with keys name, type, out_shape ([C, H, W]),
    trf_size ([rows, cols]), trf_stride (ints, or floats after upsampling), trf_padding,
    is_global, and note (the error text when the TRF is undefined, e.g. misaligned branches)."""
    return graph_rf(model, input_shape).layer_table()


__all__ = ["GraphRF", "NodeRF", "graph_rf", "layer_table", "truncated_model"]
