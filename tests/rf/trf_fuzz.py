"""Differential fuzzing of the graph TRF engine (erf.rf.graph) against gradient support.

Not a test file: tests/rf/test_trf_fuzz.py imports it (``from rf.trf_fuzz import ...``;
``pythonpath = tests``). Three pieces:

- The op grammar: small ``FuzzOp`` modules (convolutions, pools, resizes, pads, slices,
  layout changes, reductions, gates, norms, merges, and the "tensor_algebra" family:
  softmax/log_softmax with or without a dim, constant matrix products ``W @ y`` / ``y @ W`` /
  channels-last ``t @ W``, chunk/split/unbind items or slices put back together, and windows
  with q/k/v splits, constant matrices or padded channels inside), each with ``code()`` (one
  readable Python expression) and an oracle form. ``NetBuilder`` chains them into a DAG,
  tracking the (C, H, W) of every node and keeping only ops that run at that size;
  ``FuzzNet`` is the model.
- The oracle (``oracle_boxes``): a float64 copy with positive weights and biases, max -> mean
  (max pools, adaptive max, amax), activations -> identity, softmax -> ``x + k * mean`` along
  its dim (a constant where that dim has one element), constant padding -> 1 (so a product
  with a padded unit keeps what its other factor reads), and the gate convention: per-sample
  scalars of the WHOLE map (a mean over both spatial axes, adaptive pooling to 1x1,
  GroupNorm/InstanceNorm statistics) are held constant (detached); a reduction over one
  spatial axis is not (the unit reads the whole column/row). Input: positive random values,
  one batch item per probed unit. A unit's box is the bounding box of the input pixels with a
  nonzero gradient. When holding the scalars leaves the whole output without any input pixel,
  the output is global (nothing local reaches it) and nothing is held. Where the engine
  disagrees, the float32 oracle is asked too (the model is float32, and interpolation index
  arithmetic depends on the dtype); a unit is right if it matches either.
- The checker (``check_net``): for the centre row, the centre column and the four corners of
  the output, the engine gives exactly the oracle box for every unit (an empty support is the
  ValueError "reads no input pixel"), or refuses with a TypeError/ValueError whose message is
  one line and names a node or module. Anything else is wrong.

``fuzz_nets`` is the hypothesis strategy; ``FAMILIES`` names the op families it draws from.
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from hypothesis import assume
from hypothesis import strategies as st
from torch import nn

from erf.rf.graph import graph_rf
from erf.rf.tracing import trace_model

Box = tuple[tuple[int, int], tuple[int, int]]
Shape = tuple[int, int, int]

MAX_SIDE = 48  # every intermediate map is at most this many rows and cols
MAX_CHANNELS = 8
NO_PIXEL = "reads no input pixel"


def _kw(**kwargs) -> str:
    """``k=v`` pairs for ``code()``, defaults (None) left out."""
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if v is not None)


def _call(head: str, *args, **kwargs) -> str:
    parts = [repr(a) if not isinstance(a, _Raw) else str(a) for a in args]
    extra = _kw(**kwargs)
    return f"{head}({', '.join(parts + ([extra] if extra else []))})"


class _Raw(str):
    """An argument of ``_call`` written as is (a variable name)."""


# --------------------------------------------------------------------------- ops


class FuzzOp(nn.Module):
    """One op of a generated model. ``oracle``: compute the oracle's form (positive weights
    are set by ``oracle_of``); ``hold``: in the oracle, hold whole-map scalars constant."""

    family = ""
    oracle = False
    hold = True
    alone = False  # a whole-map scalar it makes stands alone (held only where merged)

    def code(self, *args: str) -> str:
        raise NotImplementedError

    def held(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``s``, computed from ``x``, held constant in the oracle when it is a per-sample
        scalar of the whole map (1x1 from a map of more than one unit)."""
        whole = s.shape[-2] * s.shape[-1] == 1 < x.shape[-2] * x.shape[-1]
        return s.detach() if self.oracle and self.hold and whole else s


class Conv(FuzzOp):
    """nn.Conv2d (or F.conv2d with its weights when ``fn``)."""

    def __init__(
        self, cin, cout, k, stride=1, padding=0, dilation=1, padding_mode="zeros", fn=False
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, dilation, padding_mode=padding_mode)
        self.args = (cin, cout, k)
        self.kwargs = dict(
            stride=stride if stride != 1 else None,
            padding=padding or None,
            dilation=dilation if dilation != 1 else None,
            padding_mode=padding_mode if padding_mode != "zeros" else None,
        )
        self.fn = fn

    def forward(self, x):
        c = self.conv
        if self.fn:
            return F.conv2d(x, c.weight, c.bias, c.stride, c.padding, c.dilation)
        return c(x)

    def code(self, a):
        if self.fn:
            kw = {k: v for k, v in self.kwargs.items() if k != "padding_mode"}
            return _call("F.conv2d", _Raw(a), _Raw(f"w{tuple(self.conv.weight.shape)}"), **kw)
        return _call("nn.Conv2d", *self.args, **self.kwargs) + f"({a})"


class ConvT(FuzzOp):
    """nn.ConvTranspose2d."""

    def __init__(self, cin, cout, k, stride=1, padding=0, output_padding=0, dilation=1):
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            cin, cout, k, stride, padding, output_padding, dilation=dilation
        )
        self.args = (cin, cout, k)
        self.kwargs = dict(
            stride=stride if stride != 1 else None,
            padding=padding or None,
            output_padding=output_padding or None,
            dilation=dilation if dilation != 1 else None,
        )

    def forward(self, x):
        return self.conv(x)

    def code(self, a):
        return _call("nn.ConvTranspose2d", *self.args, **self.kwargs) + f"({a})"


def window_mean(x, k, stride, padding, dilation, ceil_mode):
    """What a max pool reads, as a positive average: a depthwise conv with ones over the
    dilated window, cropped to the max pool's output size (ceil_mode windows that run past
    the end read zeros, which are not input pixels)."""
    ref = F.max_pool2d(x.detach(), k, stride, padding, dilation, ceil_mode=ceil_mode)
    ho, wo = ref.shape[-2:]
    c = x.shape[1]
    w = x.new_ones(c, 1, k, k) / (k * k)
    extra = stride + dilation * k
    xp = F.pad(x, (padding, padding + extra, padding, padding + extra))
    return F.conv2d(xp, w, stride=stride, dilation=dilation, groups=c)[..., :ho, :wo]


class Pool(FuzzOp):
    """Max or average pooling, as a module or a function; the oracle averages the window."""

    def __init__(
        self, kind, k, stride=None, padding=0, dilation=1, ceil_mode=False, fn=False,
        count_include_pad=True,
    ):  # fmt: skip
        super().__init__()
        self.kind, self.k, self.stride, self.padding = kind, k, stride, padding
        self.dilation, self.ceil_mode, self.fn = dilation, ceil_mode, fn
        self.cip = count_include_pad
        if kind == "max":
            self.pool = nn.MaxPool2d(k, stride, padding, dilation, ceil_mode=ceil_mode)
        else:
            self.pool = nn.AvgPool2d(k, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x):
        s = self.stride or self.k
        if self.kind == "max":
            if self.oracle:
                return window_mean(x, self.k, s, self.padding, self.dilation, self.ceil_mode)
            if self.fn:
                return F.max_pool2d(
                    x, self.k, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode
                )
            return self.pool(x)
        if self.fn:
            return F.avg_pool2d(x, self.k, self.stride, self.padding, self.ceil_mode, self.cip)
        return self.pool(x)

    def code(self, a):
        kw = dict(
            stride=self.stride,
            padding=self.padding or None,
            dilation=self.dilation if self.dilation != 1 else None,
            ceil_mode=self.ceil_mode or None,
        )
        if self.kind == "avg":
            kw["count_include_pad"] = None if self.cip else False
        if self.fn:
            return _call(f"F.{self.kind}_pool2d", _Raw(a), self.k, **kw)
        return _call(f"nn.{self.kind.capitalize()}Pool2d", self.k, **kw) + f"({a})"


class Adaptive(FuzzOp):
    """Adaptive average/max pooling to ``size``; the oracle averages (and holds a 1x1)."""

    alone = True

    def __init__(self, kind, size, fn=False):
        super().__init__()
        self.kind, self.size, self.fn = kind, tuple(size), fn
        cls = nn.AdaptiveAvgPool2d if kind == "avg" else nn.AdaptiveMaxPool2d
        self.pool = cls(self.size)

    def forward(self, x):
        if self.oracle:
            return self.held(F.adaptive_avg_pool2d(x, self.size), x)
        if self.fn:
            f = F.adaptive_avg_pool2d if self.kind == "avg" else F.adaptive_max_pool2d
            return f(x, self.size)
        return self.pool(x)

    def code(self, a):
        if self.fn:
            return f"F.adaptive_{self.kind}_pool2d({a}, {self.size})"
        return f"nn.Adaptive{self.kind.capitalize()}Pool2d({self.size})({a})"


class Resize(FuzzOp):
    """F.interpolate or nn.Upsample (``module``)."""

    def __init__(self, mode, size=None, scale=None, align_corners=None, recompute=None,
                 module=False):  # fmt: skip
        super().__init__()
        self.mode, self.size, self.scale = mode, size, scale
        self.align, self.recompute, self.module = align_corners, recompute, module
        if module:
            self.up = nn.Upsample(size, scale, mode, align_corners, recompute)

    def forward(self, x):
        if self.module:
            return self.up(x)
        return F.interpolate(
            x, size=self.size, scale_factor=self.scale, mode=self.mode,
            align_corners=self.align, recompute_scale_factor=self.recompute,
        )  # fmt: skip

    def code(self, a):
        kw = dict(
            size=self.size, scale_factor=self.scale, mode=self.mode,
            align_corners=self.align, recompute_scale_factor=self.recompute,
        )  # fmt: skip
        if self.module:
            return _call("nn.Upsample", **kw) + f"({a})"
        return _call("F.interpolate", _Raw(a), **kw)


_PAD_MODULES = {
    "constant": "ConstantPad2d",
    "reflect": "ReflectionPad2d",
    "replicate": "ReplicationPad2d",
    "circular": "CircularPad2d",
}


class Pad(FuzzOp):
    """F.pad(x, (left, right, top, bottom), mode) or the matching *Pad2d module."""

    def __init__(self, pads, mode="constant", module=False):
        super().__init__()
        self.pads, self.mode, self.module = tuple(pads), mode, module
        if module:
            cls = getattr(nn, _PAD_MODULES[mode])
            self.pad = cls(self.pads, 0.5) if mode == "constant" else cls(self.pads)

    def forward(self, x):
        if self.oracle and self.mode == "constant":  # nonzero: a product keeps its other factor
            return F.pad(x, self.pads, value=1.0)
        if self.module:
            return self.pad(x)
        return F.pad(x, self.pads, mode=self.mode)

    def code(self, a):
        if self.module:
            extra = ", 0.5" if self.mode == "constant" else ""
            return f"nn.{_PAD_MODULES[self.mode]}({self.pads}{extra})({a})"
        return f"F.pad({a}, {self.pads}, mode={self.mode!r})"


def _slice_code(s: slice | None) -> str:
    if s is None:
        return ":"
    parts = ["" if s.start is None else str(s.start), "" if s.stop is None else str(s.stop)]
    return ":".join(parts + ([str(s.step)] if s.step not in (None, 1) else []))


class Slice(FuzzOp):
    """``x[..., rows, cols]`` with slices (steps allowed)."""

    def __init__(self, rows=None, cols=None, ellipsis=True):
        super().__init__()
        self.rows, self.cols, self.ellipsis = rows, cols, ellipsis

    def forward(self, x):
        r = self.rows if self.rows is not None else slice(None)
        c = self.cols if self.cols is not None else slice(None)
        if self.ellipsis:
            return x[..., r, c]
        return x[:, :, r, c]

    def code(self, a):
        head = "..." if self.ellipsis else ":, :"
        return f"{a}[{head}, {_slice_code(self.rows)}, {_slice_code(self.cols)}]"


class Shuffle(FuzzOp):
    """1x1 conv to cout * r * r channels, then pixel shuffle by r."""

    def __init__(self, cin, cout, r, fn=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * r * r, 1)
        self.shuffle = nn.PixelShuffle(r)
        self.r, self.fn = r, fn

    def forward(self, x):
        y = self.conv(x)
        return F.pixel_shuffle(y, self.r) if self.fn else self.shuffle(y)

    def code(self, a):
        conv = f"nn.Conv2d({self.conv.in_channels}, {self.conv.out_channels}, 1)({a})"
        if self.fn:
            return f"F.pixel_shuffle({conv}, {self.r})"
        return f"nn.PixelShuffle({self.r})({conv})"


class Unshuffle(FuzzOp):
    """Crop to multiples of r, pixel unshuffle by r, 1x1 conv to cout channels."""

    def __init__(self, cin, cout, r, h, w, fn=False):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(r)
        self.conv = nn.Conv2d(cin * r * r, cout, 1)
        self.r, self.fn, self.hw = r, fn, (h // r * r, w // r * r)
        self.crop = self.hw != (h, w)

    def forward(self, x):
        if self.crop:
            x = x[..., : self.hw[0], : self.hw[1]]
        y = F.pixel_unshuffle(x, self.r) if self.fn else self.unshuffle(x)
        return self.conv(y)

    def code(self, a):
        if self.crop:
            a = f"{a}[..., :{self.hw[0]}, :{self.hw[1]}]"
        un = f"F.pixel_unshuffle({a}, {self.r})" if self.fn else f"nn.PixelUnshuffle({self.r})({a})"
        return f"nn.Conv2d({self.conv.in_channels}, {self.conv.out_channels}, 1)({un})"


class ChannelsLast(FuzzOp):
    """permute to NHWC, ``inner`` (none/linear/layernorm/tanh) over channels, permute back."""

    def __init__(self, c, inner="none"):
        super().__init__()
        self.inner = inner
        self.lin = nn.Linear(c, c) if inner == "linear" else None
        self.norm = nn.LayerNorm(c) if inner == "layernorm" else None

    def forward(self, x):
        t = x.permute(0, 2, 3, 1)
        if self.lin is not None:
            t = self.lin(t)
        elif self.norm is not None:
            t = t * self.norm.weight + self.norm.bias if self.oracle else self.norm(t)
        elif self.inner == "tanh" and not self.oracle:
            t = torch.tanh(t)
        return t.permute(0, 3, 1, 2)

    def code(self, a):
        inner = {
            "none": "t",
            "linear": "nn.Linear(C, C)(t)",
            "layernorm": "nn.LayerNorm(C)(t)",
            "tanh": "torch.tanh(t)",
        }[self.inner]
        return f"(t := {a}.permute(0, 2, 3, 1), {inner}.permute(0, 3, 1, 2))"


class Tokens(FuzzOp):
    """``x.flatten(2).transpose(1, 2)`` (tokens), ``inner`` over channels, and back."""

    def __init__(self, c, h, w, inner="none"):
        super().__init__()
        self.chw, self.inner = (c, h, w), inner
        self.lin = nn.Linear(c, c) if inner == "linear" else None
        self.norm = nn.LayerNorm(c) if inner == "layernorm" else None

    def forward(self, x):
        t = x.flatten(2).transpose(1, 2)
        if self.lin is not None:
            t = self.lin(t)
        elif self.norm is not None:
            t = t * self.norm.weight + self.norm.bias if self.oracle else self.norm(t)
        return t.transpose(1, 2).reshape(x.shape[0], *self.chw)

    def code(self, a):
        inner = {"none": "t", "linear": "nn.Linear(C, C)(t)", "layernorm": "nn.LayerNorm(C)(t)"}
        c, h, w = self.chw
        return (
            f"(t := {a}.flatten(2).transpose(1, 2), "
            f"{inner[self.inner]}.transpose(1, 2).reshape(B, {c}, {h}, {w}))"
        )


class Windows(FuzzOp):
    """The map split into ``wh`` x ``ww`` windows, ``inner`` over each window's tokens, and back.
    ``style`` "swin": contiguous blocks, the window index moved into the batch dim (Swin's
    window_partition / window_reverse); "grid": MaxViT's grid, a window of every (H/wh)-th row
    and (W/ww)-th col. ``inner``: "attention" (softmax(q k^T) v, q/k/v linear maps of the tokens),
    "sdpa" (F.scaled_dot_product_attention), "mean" (plus the window mean), "token_linear"
    (a linear layer across the tokens), "sdpa_split" / "sdpa_unbind" (q/k/v cut by
    ``split(C, -1)`` / ``view(..., 3, C).unbind(2)``), "token_matmul" (a constant [n, n] matrix
    times the tokens), "chan_matmul" (a constant [C, C] matrix over the channels,
    ``torch.matmul(W, t.transpose(-1, -2))``, transposed back: each token reads itself),
    "pad_channels" (``F.pad(t, (0, 2))``, then a linear layer back to C channels; the padding
    is 1 in the oracle, as in ``Pad``), "none". Under attention every unit of a window reads the
    whole window: the oracle adds the window mean (no softmax to saturate). A mean over a
    window of the whole map is a whole-map scalar: held, as the engine's convention holds
    gates."""

    ATTENTION = ("attention", "sdpa", "sdpa_split", "sdpa_unbind")

    def __init__(self, c, wh, ww, style, inner):
        super().__init__()
        self.c, self.wh, self.ww, self.style, self.inner = c, wh, ww, style, inner
        self.qkv = nn.Linear(c, 3 * c) if inner in self.ATTENTION else None
        self.mix = nn.Linear(wh * ww, wh * ww) if inner == "token_linear" else None
        self.unpad = nn.Linear(c + 2, c) if inner == "pad_channels" else None
        n = {"token_matmul": wh * ww, "chan_matmul": c}.get(inner)
        self.W = nn.Parameter(torch.rand(n, n) + 0.5) if n else None

    def forward(self, x):
        b, c, h, w = x.shape
        wh, ww = self.wh, self.ww
        t = x.permute(0, 2, 3, 1)
        if self.style == "swin":
            t = t.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
        else:
            t = t.view(b, wh, h // wh, ww, w // ww, c).permute(0, 2, 4, 1, 3, 5)
        t = t.reshape(-1, wh * ww, c)
        if self.oracle and self.inner in self.ATTENTION:
            t = t + t.mean(1, keepdim=True)
        elif self.inner == "pad_channels":
            t = self.unpad(F.pad(t, (0, 2), value=1.0 if self.oracle else 0.0))
        elif self.inner == "token_matmul":
            t = torch.matmul(self.W, t)
        elif self.inner == "chan_matmul":
            t = torch.matmul(self.W, t.transpose(-1, -2)).transpose(-1, -2)
        elif self.inner == "mean":  # a window of the whole map: a whole-map scalar, held
            m = t.mean(1, keepdim=True)
            held = self.oracle and self.hold and (wh, ww) == (h, w) and h * w > 1
            t = t + (m.detach() if held else m)
        elif self.inner == "attention":
            q, k, v = self.qkv(t).chunk(3, dim=-1)
            t = torch.softmax(q @ k.transpose(-2, -1) * c**-0.5, dim=-1) @ v
        elif self.inner == "sdpa":
            q, k, v = self.qkv(t).chunk(3, dim=-1)
            t = F.scaled_dot_product_attention(q, k, v)
        elif self.inner == "sdpa_split":
            q, k, v = self.qkv(t).split(c, dim=-1)
            t = F.scaled_dot_product_attention(q, k, v)
        elif self.inner == "sdpa_unbind":
            q, k, v = self.qkv(t).view(-1, wh * ww, 3, c).unbind(2)
            t = F.scaled_dot_product_attention(q, k, v)
        elif self.inner == "token_linear":
            t = self.mix(t.transpose(1, 2)).transpose(1, 2)
        t = (
            t.view(b, h // wh, w // ww, wh, ww, c)
            if self.style == "swin"
            else t.view(b, h // wh, w // ww, wh, ww, c)
        )
        order = (0, 1, 3, 2, 4, 5) if self.style == "swin" else (0, 3, 1, 4, 2, 5)
        return t.permute(*order).reshape(b, h, w, c).permute(0, 3, 1, 2)

    def code(self, a):
        return f"windows({a}, {self.wh}, {self.ww}, style={self.style!r}, inner={self.inner!r})"


class PatchMerge(FuzzOp):
    """Swin's patch merging: each 2 x 2 patch's channels side by side
    (``view(B, H/2, 2, W/2, 2, C)``, a permute, ``flatten(3)``), then a linear layer to
    ``cout`` channels: a 2 x 2 window, stride 2."""

    def __init__(self, c, cout):
        super().__init__()
        self.lin = nn.Linear(4 * c, cout)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1).reshape(b, h // 2, 2, w // 2, 2, c)
        t = t.permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.lin(t).permute(0, 3, 1, 2)

    def code(self, a):
        return f"patch_merge({a}, {self.lin.out_features})"


class AxisReduce(FuzzOp):
    """``m = x.<kind>(dim, keepdim=True)``, then ``x + m``, ``x * sigmoid(m)`` or ``m`` alone.
    The oracle reads the same pixels (a mean; held when m is a whole-map scalar)."""

    def __init__(self, kind, dim, combine):
        super().__init__()
        self.kind, self.dim, self.combine = kind, dim, combine
        self.alone = combine == "alone"

    def forward(self, x):
        if self.oracle:
            m = self.held(x.mean(dim=self.dim, keepdim=True), x)
        elif self.kind == "max_values":
            m = x.max(dim=self.dim, keepdim=True)[0]
        else:
            m = getattr(x, self.kind)(dim=self.dim, keepdim=True)
        if self.combine == "add":
            return x + m
        if self.combine == "mul":
            return x * (m if self.oracle else torch.sigmoid(m))
        return m

    def code(self, a):
        if self.kind == "max_values":
            m = f"{a}.max(dim={self.dim}, keepdim=True)[0]"
        else:
            m = f"{a}.{self.kind}(dim={self.dim}, keepdim=True)"
        return {"add": f"{a} + {m}", "mul": f"{a} * torch.sigmoid({m})", "alone": m}[self.combine]


class RollFlip(FuzzOp):
    """torch.roll / torch.flip (or the methods) over spatial dims."""

    def __init__(self, kind, dims, shifts=1, method=False):
        super().__init__()
        self.kind, self.dims, self.shifts, self.method = kind, tuple(dims), shifts, method

    def forward(self, x):
        if self.kind == "roll":
            shifts = (self.shifts,) * len(self.dims)
            return x.roll(shifts, self.dims) if self.method else torch.roll(x, shifts, self.dims)
        return x.flip(self.dims) if self.method else torch.flip(x, self.dims)

    def code(self, a):
        if self.kind == "roll":
            args = f"{(self.shifts,) * len(self.dims)}, {self.dims}"
        else:
            args = f"{self.dims}"
        return f"{a}.{self.kind}({args})" if self.method else f"torch.{self.kind}({a}, {args})"


class UnfoldFold(FuzzOp):
    """``F.fold(F.unfold(x, k, ...), (h, w), k, ...)``: every pixel summed over its windows."""

    def __init__(self, h, w, k, stride=1, padding=0, dilation=1):
        super().__init__()
        self.hw = (h, w)
        self.kw = dict(kernel_size=k, dilation=dilation, padding=padding, stride=stride)

    def forward(self, x):
        return F.fold(F.unfold(x, **self.kw), self.hw, **self.kw)

    def code(self, a):
        kw = _kw(**self.kw)
        return f"F.fold(F.unfold({a}, {kw}), {self.hw}, {kw})"


class Gate(FuzzOp):
    """Whole-map context: ``se`` x * sigmoid(conv1x1(x.mean((2, 3)))), ``se_pool`` the same
    with nn.AdaptiveAvgPool2d(1), ``global_add`` x + x.mean((2, 3)), ``aspp`` cat([x,
    upsampled conv1x1(pool(x))], 1). The oracle holds the mean constant."""

    def __init__(self, kind, c, h, w):
        super().__init__()
        self.kind, self.hw = kind, (h, w)
        self.fc = nn.Conv2d(c, c, 1) if kind != "global_add" else None
        self.pool = nn.AdaptiveAvgPool2d(1) if kind == "se_pool" else None

    def forward(self, x):
        s = self.pool(x) if self.pool is not None else x.mean((2, 3), keepdim=True)
        if self.oracle:
            s = self.held(x.mean((2, 3), keepdim=True), x)
        if self.kind == "global_add":
            return x + s
        g = self.fc(s)
        if self.kind == "aspp":
            g = F.interpolate(g, size=self.hw, mode="bilinear", align_corners=False)
            return torch.cat([x, g], 1)
        return x * (g if self.oracle else torch.sigmoid(g))

    def code(self, a):
        s = f"nn.AdaptiveAvgPool2d(1)({a})" if self.pool else f"{a}.mean((2, 3), keepdim=True)"
        if self.kind == "global_add":
            return f"{a} + {s}"
        g = f"conv1x1({s})"
        if self.kind == "aspp":
            return f"torch.cat([{a}, F.interpolate({g}, size={self.hw}, mode='bilinear')], 1)"
        return f"{a} * torch.sigmoid({g})"


class Norm(FuzzOp):
    """GroupNorm / InstanceNorm (modules or functions); the oracle divides by held stats."""

    def __init__(self, kind, c, groups=1):
        super().__init__()
        self.kind, self.c = kind, c
        self.groups = c if kind.startswith("instance") else groups
        if kind in ("group", "group_fn"):
            self.norm = nn.GroupNorm(groups, c)
        elif kind == "instance_affine":
            self.norm = nn.InstanceNorm2d(c, affine=True)
        elif kind == "instance_running":
            self.norm = nn.InstanceNorm2d(c, track_running_stats=True)
        else:
            self.norm = nn.InstanceNorm2d(c)

    def forward(self, x):
        if self.oracle:
            return self._oracle(x)
        if self.kind == "group_fn":
            return F.group_norm(x, self.groups, self.norm.weight, self.norm.bias)
        if self.kind == "instance_fn":
            return F.instance_norm(x)
        return self.norm(x)

    def _oracle(self, x):
        n = self.norm
        if self.kind == "instance_running":
            return x / torch.sqrt(n.running_var + n.eps)[None, :, None, None]
        xs = x.reshape(x.shape[0], self.groups, -1)
        std = xs.var(-1, unbiased=False, keepdim=True).add(n.eps).sqrt()
        y = (xs / (std.detach() if self.hold else std)).reshape(x.shape)
        if getattr(n, "weight", None) is not None:
            y = y * n.weight[None, :, None, None] + n.bias[None, :, None, None]
        return y

    def code(self, a):
        return {
            "group": f"nn.GroupNorm({self.groups}, {self.c})({a})",
            "group_fn": f"F.group_norm({a}, {self.groups}, w, b)",
            "instance": f"nn.InstanceNorm2d({self.c})({a})",
            "instance_affine": f"nn.InstanceNorm2d({self.c}, affine=True)({a})",
            "instance_running": f"nn.InstanceNorm2d({self.c}, track_running_stats=True)({a})",
            "instance_fn": f"F.instance_norm({a})",
        }[self.kind]


class Act(FuzzOp):
    """An elementwise op (identity in the oracle; eval BatchNorm stays, positive)."""

    def __init__(self, kind, c=1):
        super().__init__()
        self.kind = kind
        self.mod = None
        if kind in ("nn.Tanh", "nn.Sigmoid"):
            self.mod = getattr(nn, kind[3:])()
        elif kind == "batchnorm":
            self.mod = nn.BatchNorm2d(c)

    def forward(self, x):
        if self.kind == "batchnorm":
            return self.mod(x)
        if self.oracle:
            return x
        if self.mod is not None:
            return self.mod(x)
        return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu}[self.kind](x)

    def code(self, a):
        return {
            "sigmoid": f"torch.sigmoid({a})",
            "tanh": f"torch.tanh({a})",
            "silu": f"F.silu({a})",
            "nn.Tanh": f"nn.Tanh()({a})",
            "nn.Sigmoid": f"nn.Sigmoid()({a})",
            "batchnorm": f"nn.BatchNorm2d(C)({a})",
        }[self.kind]


class Merge(FuzzOp):
    """Two branches: add, sub (add in the oracle), mul, or cat along ``dim``."""

    def __init__(self, kind, dim=1):
        super().__init__()
        self.kind, self.dim = kind, dim

    def forward(self, a, b):
        if self.kind == "add" or (self.kind == "sub" and self.oracle):
            return a + b
        if self.kind == "sub":
            return a - b
        if self.kind == "mul":
            return a * b
        return torch.cat([a, b], dim=self.dim)

    def code(self, a, b):
        if self.kind == "cat":
            return f"torch.cat([{a}, {b}], dim={self.dim})"
        return f"{a} {dict(add='+', sub='-', mul='*')[self.kind]} {b}"


class Softmax(FuzzOp):
    """softmax / log_softmax (``log``) along ``dim`` (1 channels, 2 or -2 rows, 3 or -1 cols;
    None: torch's implicit dim, 1 for a 4-D map), written ``style`` "fn" (F.softmax), "method"
    (x.softmax) or "module" (nn.Softmax / nn.LogSoftmax). Oracle: ``x + k * x.mean(dim)``, the
    same support (every unit of the line; a positive sum, so no normalisation cancels a
    channel sum), with a generic k = 1 / sqrt(2): with k = 1 the signed weights of a bicubic
    resize upstream can cancel exactly (8 -> 15 columns, align_corners), which softmax's own
    Jacobian does not do. Not held: a softmax over a line of the whole map is a global map,
    not a gate. Along a dim of one element the output is constant (1, or 0 for log_softmax):
    it reads nothing."""

    def __init__(self, dim=None, log=False, style="fn"):
        super().__init__()
        self.dim, self.log, self.style = dim, log, style
        if style == "module":
            self.mod = nn.LogSoftmax(dim) if log else nn.Softmax(dim)

    def forward(self, x):
        d = 1 if self.dim is None else self.dim
        if self.oracle:
            if x.shape[d] == 1:
                return torch.zeros_like(x) if self.log else torch.ones_like(x)
            return x + x.mean(d, keepdim=True) * 0.5**0.5
        name = "log_softmax" if self.log else "softmax"
        if self.style == "module":
            return self.mod(x)
        if self.style == "method":
            return getattr(x, name)(d)
        return getattr(F, name)(x) if self.dim is None else getattr(F, name)(x, self.dim)

    def code(self, a):
        name = "log_softmax" if self.log else "softmax"
        dim = "" if self.dim is None else str(self.dim)
        if self.style == "module":
            return f"nn.{'LogSoftmax' if self.log else 'Softmax'}({dim})({a})"
        if self.style == "method":
            return f"{a}.{name}({dim})"
        return f"F.{name}({a}{', ' + dim if dim else ''})"


class ConstMatmul(FuzzOp):
    """A constant times the map. ``along`` "rows": ``W @ x`` (W [n, H]: each unit reads its
    whole column); "cols": ``x @ W`` (W [W, n]: its whole row); "channels": channels-last
    ``t @ W`` (W [C, n], pointwise), permuted back; "vector": ``t @ w`` (w [C]: the channel dim
    drops), unsqueezed back. ``fn``: torch.matmul instead of ``@``. The oracle is the same
    product (positive weights); a 1 x 1 result of a bigger map is a whole-map scalar, which
    stands alone (held only where a merge combines it with a local map)."""

    alone = True

    def __init__(self, along, c, h, w, n=1, fn=False):
        super().__init__()
        self.along, self.fn, self.n = along, fn, n
        shape = {"rows": (n, h), "cols": (w, n), "channels": (c, n), "vector": (c,)}[along]
        self.W = nn.Parameter(torch.rand(shape) + 0.5)

    def _mm(self, a, b):
        return torch.matmul(a, b) if self.fn else a @ b

    def forward(self, x):
        if self.along == "rows":
            y = self._mm(self.W, x)
        elif self.along == "cols":
            y = self._mm(x, self.W)
        else:
            y = self._mm(x.permute(0, 2, 3, 1), self.W)
            y = y.unsqueeze(1) if self.along == "vector" else y.permute(0, 3, 1, 2)
        return self.held(y, x) if self.oracle else y

    def code(self, a):
        mm = "torch.matmul({}, {})" if self.fn else "{} @ {}"
        w = f"W{tuple(self.W.shape)}"
        if self.along == "rows":
            return mm.format(w, a)
        if self.along == "cols":
            return mm.format(a, w)
        y = mm.format(f"{a}.permute(0, 2, 3, 1)", w)
        if self.along == "vector":
            return f"({y}).unsqueeze(1)"
        return f"({y}).permute(0, 3, 1, 2)"


class Chunks(FuzzOp):
    """The map cut into a tuple along ``dim`` (1 channels, 2 rows, 3 cols) by ``kind`` "chunk"
    (``x.chunk(arg, dim)``), "split" (``x.split(arg, dim)``, an int or a list of sizes) or
    "unbind" (``x.unbind(1)``, channels only), then ``pick``: one item (an int, may be
    negative) or a slice of the tuple, whose items are put back together along ``dim``
    (torch.cat; torch.stack after unbind), in reverse order when ``reverse``. Along the
    channels a 1x1 conv mixes them first (a conv, then chunk, as in GLU/CSP blocks): the engine
    does not track which channel reads what, so a channel item of a channel cat would be
    given the reads of every piece (test_trf_fuzz.py states that limitation). The oracle is
    the same: it only moves units."""

    def __init__(self, kind, dim, arg, pick, n_items, c=1, reverse=False, mix=True):
        super().__init__()
        self.kind, self.dim, self.arg, self.pick = kind, dim, arg, pick
        self.reverse = reverse
        self.taken = range(n_items)[pick] if isinstance(pick, slice) else None
        self.mix = nn.Conv2d(c, c, 1) if dim == 1 and mix else None

    def _parts(self, x):
        if self.mix is not None:
            x = self.mix(x)
        if self.kind == "chunk":
            return x.chunk(self.arg, self.dim)
        if self.kind == "split":
            return x.split(self.arg, self.dim)
        return x.unbind(1)

    def forward(self, x):
        parts = self._parts(x)[self.pick]
        if self.taken is None:
            return parts.unsqueeze(1) if self.kind == "unbind" else parts
        items = [parts[i] for i in range(len(self.taken))]
        if self.reverse:
            items = items[::-1]
        return torch.stack(items, 1) if self.kind == "unbind" else torch.cat(items, self.dim)

    def code(self, a):
        args = "1" if self.kind == "unbind" else f"{self.arg!r}, {self.dim}"
        if self.mix is not None:
            a = f"nn.Conv2d({self.mix.in_channels}, {self.mix.out_channels}, 1)({a})"
        parts = f"{a}.{self.kind}({args})"
        if self.taken is None:
            item = f"{parts}[{self.pick}]"
            return f"{item}.unsqueeze(1)" if self.kind == "unbind" else item
        idx = list(range(len(self.taken)))
        items = ", ".join(f"p[{i}]" for i in (idx[::-1] if self.reverse else idx))
        join = "torch.stack([{}], 1)" if self.kind == "unbind" else f"torch.cat([{{}}], {self.dim})"
        return f"(p := {parts}[{_slice_code(self.pick)}], {join.format(items)})[-1]"


# --------------------------------------------------------------------------- models


class FuzzNet(nn.Module):
    """A DAG of ``FuzzOp``s: node 0 is the input, node i + 1 is ``ops[i]`` applied to the
    nodes ``srcs[i]``; the output is the last node. ``shapes``: (C, H, W) of every node."""

    def __init__(self, input_shape: Shape, steps: Sequence[tuple[FuzzOp, tuple[int, ...]]],
                 shapes: Sequence[Shape]):  # fmt: skip
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.ops = nn.ModuleList([op for op, _ in steps])
        self.srcs = [tuple(s) for _, s in steps]
        self.shapes = [tuple(s) for s in shapes]
        self.eval()

    def forward(self, x):
        vals = [x]
        for op, src in zip(self.ops, self.srcs):
            vals.append(op(*(vals[i] for i in src)))
        return vals[-1]

    @property
    def families(self) -> set[str]:
        return {op.family for op in self.ops}

    def describe(self) -> str:
        """The model as code, one line per node with its (C, H, W)."""
        lines = [f"v0 = input{self.input_shape}"]
        for i, (op, src) in enumerate(zip(self.ops, self.srcs)):
            lines.append(f"v{i + 1} = {op.code(*(f'v{j}' for j in src))}  # {self.shapes[i + 1]}")
        return "\n".join(lines)

    def __repr__(self) -> str:  # hypothesis prints drawn values with repr
        return f"FuzzNet(\n{self.describe()}\n)"


def out_shape(op: FuzzOp, shapes: Sequence[Shape]) -> Shape | None:
    """(C, H, W) of ``op`` run on random ``shapes``, None when it fails or is out of range."""
    op.eval()
    try:
        with torch.no_grad(), implicit_dim_quiet():
            y = op(*(torch.rand(2, *s) for s in shapes))
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError):
        return None
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or not torch.isfinite(y).all():
        return None
    c, h, w = y.shape[1:]
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        return None
    return (c, h, w)


class NetBuilder:
    """Builds a ``FuzzNet`` node by node; ``add`` keeps an op only if it runs at its inputs'
    shapes (and stays within MAX_SIDE / MAX_CHANNELS)."""

    def __init__(self, input_shape: Shape):
        self.shapes: list[Shape] = [tuple(input_shape)]
        self.steps: list[tuple[FuzzOp, tuple[int, ...]]] = []

    def add(self, op: FuzzOp | None, *srcs: int, family: str = "") -> int | None:
        if op is None:
            return None
        shape = out_shape(op, [self.shapes[i] for i in srcs])
        if shape is None:
            return None
        op.family = family or op.family
        self.steps.append((op, srcs))
        self.shapes.append(shape)
        return len(self.shapes) - 1

    def build(self, output: int | None = None) -> FuzzNet:
        """The model whose output is node ``output`` (default: the last), without the nodes
        it does not depend on (a branch whose merge did not run)."""
        output = len(self.shapes) - 1 if output is None else output
        keep, stack = {0, output}, [output]
        while stack:
            i = stack.pop()
            for j in self.steps[i - 1][1] if i else ():
                if j not in keep:
                    keep.add(j)
                    stack.append(j)
        new = {old: k for k, old in enumerate(sorted(keep))}
        steps = [
            (op, tuple(new[j] for j in srcs))
            for i, (op, srcs) in enumerate(self.steps, 1)
            if i in keep
        ]
        return FuzzNet(self.shapes[0], steps, [self.shapes[i] for i in sorted(keep)])


def dag(input_shape: Shape, *steps: tuple) -> FuzzNet:
    """A hand-written model: ``steps`` are ``(op, *input nodes)``, node 0 the input and node
    i the i-th step; the last step is the output. Raises if an op does not run."""
    b = NetBuilder(input_shape)
    for op, *srcs in steps:
        if b.add(op, *srcs) is None:
            shapes = [b.shapes[i] for i in srcs]
            raise ValueError(f"{op.code(*(f'v{i}' for i in srcs))} does not run on {shapes}")
    return b.build()


def chain(input_shape: Shape, *ops: FuzzOp) -> FuzzNet:
    """A hand-written chain of ops; raises if one does not run."""
    return dag(input_shape, *((op, i) for i, op in enumerate(ops)))


# --------------------------------------------------------------------------- oracle


def oracle_of(
    net: FuzzNet, hold: bool = True, seed: int = 0, dtype: torch.dtype = torch.float64
) -> FuzzNet:
    """A float64 copy with positive weights and biases, every op in its oracle form.

    The gate convention, as in the engine: a whole-map scalar that an op combines with the map
    itself (a gate, a norm's statistics, ``x + x.mean(...)``) is held; a reduction to a
    whole-map scalar that stands alone (``AxisReduce(..., "alone")``, ``Adaptive`` to 1 x 1)
    is what a global output reads, and is held only when a merge downstream combines it with
    something else."""
    o = copy.deepcopy(net).to(dtype).eval()
    gen = torch.Generator().manual_seed(seed)
    merged = _merged_downstream(o)
    with torch.no_grad():
        for i, op in enumerate(o.ops):
            op.oracle, op.hold = True, hold and (not op.alone or merged[i])
        for m in o.modules():
            for name, p in m.named_parameters(recurse=False):
                u = torch.rand(p.shape, generator=gen, dtype=p.dtype) + 0.5
                if p.dim() > 1:
                    u = u / p[0].numel()  # about one: values stay O(1) through deep chains
                elif name == "bias":
                    u = u * 0.1
                p.copy_(u)
    return o


def _merged_downstream(net: FuzzNet) -> list[bool]:
    """Per op, whether a Merge downstream of its output combines it with a local branch (one
    not computed from whole-map scalars alone): then its scalar is context there."""
    scalar = [False]  # per node: a whole-map scalar, or computed from such scalars only
    for i, op in enumerate(net.ops):
        (_, h, w), (_, hi, wi) = net.shapes[i + 1], net.shapes[net.srcs[i][0]]
        pooled = op.alone and h * w == 1 < hi * wi
        scalar.append(pooled or all(scalar[s] for s in net.srcs[i]))
    out = []
    for i in range(len(net.ops)):
        reach = {i + 1}
        merged = False
        for j in range(i + 1, len(net.ops)):
            if any(s in reach for s in net.srcs[j]):
                reach.add(j + 1)
                if isinstance(net.ops[j], Merge):
                    merged |= any(s not in reach and not scalar[s] for s in net.srcs[j])
        out.append(merged)
    return out


def probe_units(hw: tuple[int, int]) -> list[tuple[int, int]]:
    """The centre row, the centre column and the four corners of an h x w map."""
    h, w = hw
    units = [(h // 2, c) for c in range(w)] + [(r, w // 2) for r in range(h)]
    units += [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    return list(dict.fromkeys(units))


def _bbox(mask: torch.Tensor) -> Box | None:
    rows, cols = torch.nonzero(mask, as_tuple=True)
    if rows.numel() == 0:
        return None
    return ((int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max())))


class OracleError(RuntimeError):
    """The oracle's gradients are not finite (should not happen: positive weights, O(1))."""


def _supports(net: FuzzNet, units: Sequence[tuple[int, int]], hold: bool, seed: int, dtype):
    """Per unit, the support mask; and whether any output unit reads any pixel."""
    o = oracle_of(net, hold, seed, dtype)
    n = len(units)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand((n + 1, *net.input_shape), generator=gen, dtype=dtype) + 0.5
    x.requires_grad_(True)
    y = o(x)
    rows = torch.tensor([u[0] for u in units])
    cols = torch.tensor([u[1] for u in units])
    picked = y[torch.arange(n), :, rows, cols]
    total = picked.sum() + y[n].sum()
    if total.requires_grad:  # else every path to the output is held constant
        total.backward()
    g = x.grad if x.grad is not None else torch.zeros_like(x)
    if not torch.isfinite(g).all() or not torch.isfinite(y).all():
        raise OracleError("oracle gradients are not finite")
    masks = g.abs().sum(1) > 0
    return masks[:n], bool(masks[n].any())


def oracle_boxes(
    net: FuzzNet, units: Sequence[tuple[int, int]], seed: int = 0, dtype=torch.float64
) -> list[Box | None]:
    """The oracle box (None: no pixel) of each unit, per the gate convention (module doc)."""
    masks, _ = _supports(net, units, True, seed, dtype)
    return [_bbox(m) for m in masks]


# --------------------------------------------------------------------------- checker


@dataclass
class Verdict:
    """``status``: exact, refused or wrong; ``detail``: why (for reports and failures)."""

    status: str
    detail: str = ""
    units: list = field(default_factory=list)  # (unit, engine, oracle) of wrong units


def _names(net: FuzzNet, g=None) -> set[str]:
    names = {path for path, _ in net.named_modules() if path}
    if g is not None:
        names |= set(g.nodes)
    else:
        try:
            gm, _ = trace_model(net)
            names |= {n.name for n in gm.graph.nodes}
        except Exception:  # the names only judge messages
            pass
    return names


def refusal_problem(e: Exception, names: set[str]) -> str | None:
    """None for a good refusal: one line, naming a node or module in quotes."""
    msg = str(e)
    if "\n" in msg:
        return "the refusal message has several lines"
    quoted = set(re.findall(r"'([^']+)'", msg))
    if not quoted & names:
        return "the refusal message names no node or module"
    return None


def _fmt(x) -> str:
    return x if isinstance(x, str) else repr(x)


def _same(got, box: Box | None) -> bool:
    if isinstance(got, str):
        return box is None and NO_PIXEL in got
    return got == box


@contextlib.contextmanager
def one_thread():
    """Torch on one thread: these tensors are tiny, and intra-op threads cost 5x on a busy
    machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@contextlib.contextmanager
def implicit_dim_quiet():
    """No "Implicit dimension choice" warnings: softmax without a dim is drawn on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Implicit dimension choice")
        yield


def check_net(net: FuzzNet) -> Verdict:
    """Engine against oracle on the probe units (see the module doc)."""
    with one_thread(), implicit_dim_quiet():
        return _check_net(net)


def _check_net(net: FuzzNet) -> Verdict:
    shape = net.input_shape
    units = probe_units(net.shapes[-1][1:])
    want = oracle_boxes(net, units)
    try:
        g = graph_rf(net, shape)
    except (TypeError, ValueError) as e:
        problem = refusal_problem(e, _names(net))
        if problem:
            return Verdict("wrong", f"{problem}: {type(e).__name__}: {e}")
        return Verdict("refused", f"{type(e).__name__}: {e}")
    except Exception as e:  # any other exception is a failure
        return Verdict("wrong", f"graph_rf crashed: {type(e).__name__}: {e}")
    names = _names(net, g)
    wrong, refusals = [], []
    for unit, box in zip(units, want):
        try:
            got = g.unit_interval(None, unit, clipped=True)
        except (TypeError, ValueError) as e:
            if NO_PIXEL in str(e):
                if box is not None:
                    wrong.append((unit, f"{type(e).__name__}: {e}", box))
                continue
            problem = refusal_problem(e, names)
            if problem:
                wrong.append((unit, f"{problem}: {type(e).__name__}: {e}", box))
            else:
                refusals.append(f"{type(e).__name__}: {e}")
            continue
        except Exception as e:
            wrong.append((unit, f"crashed: {type(e).__name__}: {e}", box))
            continue
        if box is None or tuple(map(tuple, got)) != box:
            wrong.append((unit, tuple(map(tuple, got)), box))
    if wrong:  # the model is float32: where its index arithmetic differs, that is the truth
        want32 = dict(zip(units, oracle_boxes(net, units, dtype=torch.float32)))
        wrong = [w for w in wrong if not _same(w[1], want32[w[0]])]
    if wrong:
        lines = [f"unit {u}: engine {_fmt(e)}, oracle {_fmt(o)}" for u, e, o in wrong[:6]]
        head = f"{len(wrong)} of {len(units)} probed units differ"
        return Verdict("wrong", head + "\n" + "\n".join(lines), wrong)
    if refusals:
        return Verdict("refused", refusals[0])
    return Verdict("exact")


def failure_message(net: FuzzNet, v: Verdict) -> str:
    return f"engine is {v.status}: {v.detail}\nmodel:\n{net.describe()}"


def assert_exact_or_refused(net: FuzzNet) -> Verdict:
    """The property: the engine is exact on every probed unit, or refuses cleanly."""
    v = check_net(net)
    assert v.status != "wrong", failure_message(net, v)
    return v


# --------------------------------------------------------------------------- strategy

Draw = Callable


def _ints(draw, lo, hi):
    return draw(st.integers(lo, max(lo, hi)))


def _conv(draw, shape, *, k_max=5, s_max=3, d_max=1, pad_max=6, modes=("zeros",), fn=True):
    c = shape[0]
    k = _ints(draw, 1, k_max)
    if draw(st.booleans()):  # non-square kernel
        k = (k, _ints(draw, 1, k_max))
    d = _ints(draw, 1, d_max)
    mode = draw(st.sampled_from(modes))
    use_fn = fn and mode == "zeros" and draw(st.booleans())
    return Conv(
        c, _ints(draw, 1, 4), k, _ints(draw, 1, s_max), _ints(draw, 0, pad_max), d,
        padding_mode=mode, fn=use_fn,
    )  # fmt: skip


def _pool(draw, shape, *, k_max=5, s_max=3, d_max=1, ceil=True, fn=True, kinds=("avg", "max")):
    kind = draw(st.sampled_from(kinds))
    k = _ints(draw, 1, k_max)
    stride = draw(st.one_of(st.none(), st.integers(1, s_max)))
    d = _ints(draw, 1, d_max) if kind == "max" else 1
    return Pool(
        kind, k, stride, _ints(draw, 0, k // 2), d,
        ceil_mode=ceil and draw(st.booleans()), fn=fn and draw(st.booleans()),
        count_include_pad=kind == "max" or draw(st.booleans()),
    )  # fmt: skip


def op_plain(draw, shape):
    """The surrounding ops: convs (stride <= 2, padding <= k // 2), small pools, tanh."""
    kind = draw(st.sampled_from(["conv", "pool", "act"]))
    if kind == "conv":
        k = _ints(draw, 1, 5)
        return Conv(shape[0], _ints(draw, 1, 4), k, _ints(draw, 1, 2), _ints(draw, 0, k // 2))
    if kind == "pool":
        k = _ints(draw, 2, 3)
        return Pool(draw(st.sampled_from(["avg", "max"])), k, _ints(draw, 1, 2), _ints(draw, 0, 1))
    return Act("tanh")


def op_conv_pool(draw, shape):
    if draw(st.booleans()):
        return _conv(draw, shape)
    return _pool(draw, shape)


def op_dilated(draw, shape):
    if draw(st.booleans()):
        return _conv(draw, shape, d_max=6, pad_max=12)
    return _pool(draw, shape, k_max=4, d_max=4, kinds=("max",))


def op_conv_padding_mode(draw, shape):
    return _conv(draw, shape, d_max=3, modes=("reflect", "replicate", "circular"))


def op_conv_transpose(draw, shape):
    k, s, d = _ints(draw, 1, 5), _ints(draw, 1, 4), _ints(draw, 1, 3)
    return ConvT(
        shape[0], _ints(draw, 1, 4), k, s, _ints(draw, 0, d * (k - 1)),
        _ints(draw, 0, max(s, d) - 1), d,
    )  # fmt: skip


def op_adaptive(draw, shape):
    _, h, w = shape
    size = (_ints(draw, 1, min(MAX_SIDE, 2 * h)), _ints(draw, 1, min(MAX_SIDE, 2 * w)))
    return Adaptive(draw(st.sampled_from(["avg", "max"])), size, fn=draw(st.booleans()))


SCALES = [2, 1.5, 0.5, 3, 0.6, 2.5, 0.75, 1.3, 1.0, 0.4, 5, 4, 0.3, 0.25]


def _resize(mode):
    def draw_op(draw, shape):
        _, h, w = shape
        align = None
        if mode in ("bilinear", "bicubic"):
            align = draw(st.sampled_from([None, False, True]))
        module = draw(st.booleans())
        if draw(st.booleans()):
            size = (_ints(draw, 1, min(MAX_SIDE, 5 * h)), _ints(draw, 1, min(MAX_SIDE, 5 * w)))
            return Resize(mode, size=size, align_corners=align, module=module)
        scale = draw(st.sampled_from(SCALES))
        if draw(st.booleans()):
            scale = (scale, draw(st.sampled_from(SCALES)))
        recompute = draw(st.sampled_from([None, True, False]))
        return Resize(mode, scale=scale, align_corners=align, recompute=recompute, module=module)

    return draw_op


def _pad(mode):
    def draw_op(draw, shape):
        lo = -3 if mode == "constant" else -2
        pads = tuple(_ints(draw, lo, 8) for _ in range(4))
        if mode in ("circular", "reflect"):  # PyTorch crops first, then wraps/mirrors what is
            for n, (a, b) in zip(shape[:0:-1], (pads[:2], pads[2:])):  # left: pads of at most
                left = n + min(a, 0) + min(b, 0)  # that (it reads stale memory past it)
                if max(a, b) > left - (mode == "reflect"):
                    return None
        return Pad(pads, mode, module=draw(st.booleans()))

    return draw_op


def _one_slice(draw, n):
    a = _ints(draw, 0, n - 1)
    b = _ints(draw, a + 1, n)
    s = _ints(draw, 1, 3)
    start = a - n if draw(st.booleans()) else a  # the same start as a negative index
    return slice(start, None if b == n else b, s)


def op_slicing(draw, shape):
    _, h, w = shape
    axes = draw(st.sampled_from(["rows", "cols", "both"]))
    rows = _one_slice(draw, h) if axes != "cols" else None
    cols = _one_slice(draw, w) if axes != "rows" else None
    return Slice(rows, cols, ellipsis=draw(st.booleans()))


def op_pixel_shuffle(draw, shape):
    c, h, w = shape
    r, cout, fn = _ints(draw, 2, 3), _ints(draw, 1, 3), draw(st.booleans())
    if draw(st.booleans()):
        return Shuffle(c, cout, r, fn)
    return Unshuffle(c, cout, r, h, w, fn)


def op_channels_last(draw, shape):
    return ChannelsLast(shape[0], draw(st.sampled_from(["none", "linear", "layernorm", "tanh"])))


def op_tokens(draw, shape):
    return Tokens(*shape, inner=draw(st.sampled_from(["none", "linear", "layernorm"])))


WINDOW_INNER = ["attention", "sdpa", "mean", "token_linear", "none"]
WINDOW_INNER_ALGEBRA = [
    "sdpa_split", "sdpa_unbind", "token_matmul", "chan_matmul", "pad_channels",
]  # fmt: skip


def op_windows(draw, shape):
    c, h, w = shape
    wh = draw(st.sampled_from([d for d in range(1, min(h, 8) + 1) if h % d == 0]))
    ww = draw(st.sampled_from([d for d in range(1, min(w, 8) + 1) if w % d == 0]))
    style = draw(st.sampled_from(["swin", "grid"]))
    inner = draw(st.sampled_from(WINDOW_INNER))
    return Windows(c, wh, ww, style, inner)


def op_patch_merge(draw, shape):
    assume(shape[1] % 2 == 0 and shape[2] % 2 == 0)
    return PatchMerge(shape[0], _ints(draw, 1, MAX_CHANNELS))


def op_axis_reduce(draw, shape):
    return AxisReduce(
        draw(st.sampled_from(["mean", "amax", "sum", "max_values"])),
        draw(st.sampled_from([2, 3, -1, -2])),
        draw(st.sampled_from(["add", "mul", "alone"])),
    )


def op_roll_flip(draw, shape):
    dims = draw(st.sampled_from([(2,), (3,), (2, 3)]))
    kind = draw(st.sampled_from(["roll", "flip"]))
    return RollFlip(kind, dims, _ints(draw, -4, 4), method=draw(st.booleans()))


def op_unfold_fold(draw, shape):
    _, h, w = shape
    k = _ints(draw, 1, 4)
    return UnfoldFold(h, w, k, _ints(draw, 1, 3), _ints(draw, 0, k // 2), _ints(draw, 1, 2))


def op_gates(draw, shape):
    c, h, w = shape
    return Gate(draw(st.sampled_from(["se", "se_pool", "global_add", "aspp"])), c, h, w)


def op_norms(draw, shape):
    c = shape[0]
    kind = draw(
        st.sampled_from(
            ["group", "instance", "instance_affine", "instance_running", "group_fn", "instance_fn"]
        )
    )
    groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    per_group = (c // groups if kind.startswith("group") else 1) * shape[1] * shape[2]
    assume(per_group > 1)  # PyTorch refuses to normalise a single value
    return Norm(kind, c, groups)


def op_activations(draw, shape):
    kinds = ["tanh", "sigmoid", "nn.Tanh", "nn.Sigmoid", "silu", "batchnorm"]
    return Act(draw(st.sampled_from(kinds)), shape[0])


def op_softmax(draw, shape):
    dims = [None, 1, 2, 3, -1, -2]
    if draw(st.integers(0, 7)):  # mostly a dim of more than one element (else: a constant)
        dims = [d for d in dims if shape[(1 if d is None else d) % 4 - 1] > 1] or dims
    dim = draw(st.sampled_from(dims))
    styles = ["fn", "module"] if dim is None else ["fn", "method", "module"]
    return Softmax(dim, log=draw(st.booleans()), style=draw(st.sampled_from(styles)))


def op_const_matmul(draw, shape):
    c, h, w = shape
    along = draw(st.sampled_from(["rows", "cols", "channels", "vector"]))
    top = {"rows": min(MAX_SIDE, 2 * h), "cols": min(MAX_SIDE, 2 * w)}.get(along, MAX_CHANNELS)
    return ConstMatmul(along, c, h, w, _ints(draw, 1, top), fn=draw(st.booleans()))


def op_chunks(draw, shape):
    kind = draw(st.sampled_from(["chunk", "split", "unbind"]))
    dim = 1 if kind == "unbind" else draw(st.sampled_from([1, 2, 3, -1, -2]))
    n = shape[dim % 4 - 1]
    arg = None
    if kind == "chunk":
        arg = _ints(draw, 1, min(n, 5))
    elif kind == "split" and draw(st.booleans()):
        arg = _ints(draw, 1, n)
    elif kind == "split":  # a list of sizes
        cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=3)) - {n})
        arg = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
    m = len(torch.empty(n).chunk(arg) if kind == "chunk" else torch.empty(n).split(arg or 1))
    pick = _ints(draw, -m, m - 1) if draw(st.booleans()) else _one_slice(draw, m)
    return Chunks(kind, dim, arg, pick, m, shape[0], reverse=draw(st.booleans()))


def op_window_algebra(draw, shape):
    c, h, w = shape
    wh = draw(st.sampled_from([d for d in range(1, min(h, 8) + 1) if h % d == 0]))
    ww = draw(st.sampled_from([d for d in range(1, min(w, 8) + 1) if w % d == 0]))
    style = draw(st.sampled_from(["swin", "grid"]))
    return Windows(c, wh, ww, style, draw(st.sampled_from(WINDOW_INNER_ALGEBRA)))


def op_tensor_algebra(draw, shape):
    """softmax / log_softmax (explicit or implicit dim), a constant matrix product, a chunk /
    split / unbind put back together, or windows with a constant matrix, a q/k/v split or
    padded channels inside."""
    kinds = [op_softmax, op_const_matmul, op_chunks, op_window_algebra]
    return draw(st.sampled_from(kinds))(draw, shape)


OP_FAMILIES: dict[str, Callable] = {
    "plain": op_plain,
    "conv_pool": op_conv_pool,
    "dilated": op_dilated,
    "conv_padding_mode": op_conv_padding_mode,
    "conv_transpose": op_conv_transpose,
    "adaptive_pool": op_adaptive,
    "resize_nearest": _resize("nearest"),
    "resize_nearest_exact": _resize("nearest-exact"),
    "resize_bilinear": _resize("bilinear"),
    "resize_bicubic": _resize("bicubic"),
    "resize_area": _resize("area"),
    "pad_constant": _pad("constant"),
    "pad_reflect": _pad("reflect"),
    "pad_replicate": _pad("replicate"),
    "pad_circular": _pad("circular"),
    "slicing": op_slicing,
    "pixel_shuffle": op_pixel_shuffle,
    "channels_last": op_channels_last,
    "tokens": op_tokens,
    "windows": op_windows,
    "patch_merge": op_patch_merge,
    "axis_reduce": op_axis_reduce,
    "roll_flip": op_roll_flip,
    "unfold_fold": op_unfold_fold,
    "gates": op_gates,
    "norms": op_norms,
    "activations": op_activations,
    "tensor_algebra": op_tensor_algebra,
}

MERGE_FAMILIES = {
    "merge_add_mul": [("add", 1), ("mul", 1), ("sub", 1)],
    "cat_channels": [("cat", 1)],
    "cat_spatial": [("cat", 2), ("cat", 3), ("cat", -1), ("cat", -2)],
}

FAMILIES = [*OP_FAMILIES, *MERGE_FAMILIES]


def _op_step(draw, b: NetBuilder, cur: int, family: str) -> int | None:
    return b.add(OP_FAMILIES[family](draw, b.shapes[cur]), cur, family=family)


def _adapt(draw, b: NetBuilder, i: int, c: int | None, h: int | None, w: int | None):
    """Resize node ``i`` to (h, w) (None: keep that axis) and 1x1-conv it to c channels."""
    ci, hi, wi = b.shapes[i]
    size = (h or hi, w or wi)
    if size != (hi, wi):
        mode = draw(st.sampled_from(["nearest", "bilinear", "area"]))
        i = b.add(Resize(mode, size=size), i, family="adapter")
        if i is None:
            return None
    if c is not None and c != ci:
        i = b.add(Conv(ci, c, 1), i, family="adapter")
    return i


def _merge_step(draw, b: NetBuilder, cur: int, family: str, branch_families) -> int | None:
    """A branch from an earlier node (0-2 ops), adapted to the current node's shape, merged."""
    src = _ints(draw, 0, cur)
    j = src
    for _ in range(_ints(draw, 0, 2)):
        j = _op_step(draw, b, j, draw(st.sampled_from(branch_families))) or j
    kind, dim = draw(st.sampled_from(MERGE_FAMILIES[family]))
    c, h, w = b.shapes[cur]
    cj, hj, wj = b.shapes[j]
    if kind != "cat":
        j = _adapt(draw, b, j, c, h, w)
    elif dim == 1:
        j = _adapt(draw, b, j, None if c + cj <= MAX_CHANNELS else 1, h, w)
    elif dim % 4 == 2:
        j = _adapt(draw, b, j, c, min(hj, MAX_SIDE - h) or None, w)
    else:
        j = _adapt(draw, b, j, c, h, min(wj, MAX_SIDE - w) or None)
    if j is None:
        return None
    srcs = (j, cur) if draw(st.booleans()) else (cur, j)
    return b.add(Merge(kind, dim), *srcs, family=family)


def _step(draw, b, cur, family, branch_families):
    if family in MERGE_FAMILIES:
        return _merge_step(draw, b, cur, family, branch_families)
    return _op_step(draw, b, cur, family)


@st.composite
def fuzz_nets(draw, families: Sequence[str] = tuple(FAMILIES), required: str | None = None,
              max_steps: int = 5):  # fmt: skip
    """A random model: input (1-3, 5-24, 5-24), up to ``max_steps`` steps, each an op or a
    merged branch of a family drawn from ``families``; ``required``: one step of that family
    (retried a few times, else the example is rejected)."""
    shape = (_ints(draw, 1, 3), _ints(draw, 5, 24), _ints(draw, 5, 24))
    b = NetBuilder(shape)
    op_families = [f for f in families if f in OP_FAMILIES] or ["plain"]
    n = _ints(draw, 0 if required else 1, max_steps)
    at = _ints(draw, 0, n) if required else -1
    cur = 0
    for i in range(n + (required is not None)):
        if i == at:
            nxt = None
            for _ in range(4):
                nxt = _step(draw, b, cur, required, op_families)
                if nxt is not None:
                    break
            assume(nxt is not None)
        else:
            nxt = _step(draw, b, cur, draw(st.sampled_from(list(families))), op_families)
        cur = nxt if nxt is not None else cur
    assume(cur > 0)
    return b.build(cur)


__all__ = [
    "one_thread",
    "FAMILIES",
    "MERGE_FAMILIES",
    "OP_FAMILIES",
    "Act",
    "Adaptive",
    "AxisReduce",
    "ChannelsLast",
    "Chunks",
    "ConstMatmul",
    "Conv",
    "ConvT",
    "FuzzNet",
    "FuzzOp",
    "Gate",
    "Merge",
    "NetBuilder",
    "Norm",
    "Pad",
    "PatchMerge",
    "Pool",
    "Resize",
    "RollFlip",
    "Shuffle",
    "Slice",
    "Softmax",
    "Tokens",
    "UnfoldFold",
    "Unshuffle",
    "Verdict",
    "Windows",
    "assert_exact_or_refused",
    "chain",
    "check_net",
    "dag",
    "fuzz_nets",
    "oracle_boxes",
    "probe_units",
]
