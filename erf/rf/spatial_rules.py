"""Rules for ops that map each unit to a window of its input's units.

Convolutions and transposed convolutions, pooling, adaptive pooling, interpolation, padding
and pixel (un)shuffle, as modules and as functions: each rule turns the op's arguments into
one-axis interval rules (erf.rf.intervals) and the nominal stride it applies.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
from torch import fx, nn

from erf.rf.boxes import AxisMap, AxisRule, box_rule, shift, taps_map
from erf.rf.builder_core import BuilderCore
from erf.rf.intervals import (
    adaptive_interval,
    affine_interval,
    conv_interval,
    conv_taps,
    conv_transpose_interval,
    conv_transpose_taps,
    interpolate_interval,
    pad_source,
)
from erf.rf.node_values import NodeOp, spatial_hw

CIRCULAR_NOTE = (
    "circular padding: border units also read the opposite border (in their exact per-unit "
    "boxes; the nominal span is the zero-padding one)"
)
MIRROR_NOTE = (
    "reflection/replication padding: border units read mirrored/edge pixels (in their exact "
    "per-unit boxes; the nominal span is the zero-padding one)"
)


def _ntuple(v: Any, k: int) -> tuple[Any, ...]:
    """One value per spatial axis: an int repeated, a 1-sequence repeated, else the last k."""
    if isinstance(v, (tuple, list)):
        return tuple(v) * k if len(v) == 1 else tuple(v[-k:])
    return (v,) * k


def _conv(k: int, s: int, p: int, d: int, mode: str = "zeros") -> AxisRule:
    """A conv/pool axis: the interval rule, and exact taps (gaps between dilated taps; with a
    padding mode other than zeros, the mirrored/edge/wrapped units the padding holds)."""
    return AxisMap(
        lambda iv: conv_interval(iv, k, s, p, d),
        lambda u, n: conv_taps(u, k, s, p, d, n, mode),
    )


class SpatialRules(BuilderCore):
    """Rules for convolution, pooling, interpolation, padding and pixel-shuffle ops."""

    # ---- spatial modules

    def m_conv(self, op: NodeOp) -> None:
        m = op.module
        padding = _conv_padding(m.padding, m.kernel_size, m.dilation, len(m.kernel_size))
        self._pad_note(op, m.padding_mode)
        self._conv(op, m.kernel_size, m.stride, padding, m.dilation, m.padding_mode)

    def f_conv(self, op: NodeOp) -> None:
        kernel = self.shape(op.arg(1, "weight"))[2:]
        dilation = op.arg(5, "dilation", 1)
        padding = _conv_padding(op.arg(4, "padding", 0), kernel, dilation, len(kernel))
        self._conv(op, kernel, op.arg(3, "stride", 1), padding, dilation)

    def _conv(
        self, op: NodeOp, kernel: Any, stride: Any, padding: Any, dilation: Any, mode: str = "zeros"
    ) -> None:
        x = self.local_input(op)
        n = len(self.val(x).layout)
        k, s, p, d = (_ntuple(v, n) for v in (kernel, stride, padding, dilation))
        rules = tuple(_conv(k[i], s[i], p[i], d[i], mode) for i in range(n))
        self.spatial(op, x, rules, tuple(Fraction(v) for v in s))

    def m_conv_transpose(self, op: NodeOp) -> None:
        m = op.module
        self._conv_transpose(op, m.kernel_size, m.stride, m.padding, m.dilation)

    def f_conv_transpose(self, op: NodeOp) -> None:
        kernel = self.shape(op.arg(1, "weight"))[2:]
        stride, padding = op.arg(3, "stride", 1), op.arg(4, "padding", 0)
        self._conv_transpose(op, kernel, stride, padding, op.arg(7, "dilation", 1))

    def _conv_transpose(self, op: NodeOp, kernel: Any, stride: Any, padding: Any, dil: Any) -> None:
        x = self.local_input(op)
        n = len(self.val(x).layout)
        k, s, p, d = (_ntuple(v, n) for v in (kernel, stride, padding, dil))
        rules = tuple(
            AxisMap(
                lambda iv, i=i: conv_transpose_interval(iv, k[i], s[i], p[i], d[i]),
                lambda u, n, i=i: conv_transpose_taps(u, k[i], s[i], p[i], d[i]),
            )
            for i in range(n)
        )
        self.spatial(op, x, rules, tuple(Fraction(1, v) for v in s))

    def m_pool(self, op: NodeOp) -> None:
        m = op.module
        stride = m.stride or m.kernel_size
        self._conv(op, m.kernel_size, stride, getattr(m, "padding", 0), getattr(m, "dilation", 1))

    def f_pool(self, op: NodeOp) -> None:
        if op.name.startswith("lp_pool"):
            kernel = op.arg(2, "kernel_size")
            self._conv(op, kernel, op.arg(3, "stride") or kernel, 0, 1)
            return
        kernel = op.arg(1, "kernel_size")
        stride = op.arg(2, "stride") or kernel
        dilation = op.arg(4, "dilation", 1) if "max" in op.name else 1
        self._conv(op, kernel, stride, op.arg(3, "padding", 0), dilation)

    def m_adaptive(self, op: NodeOp) -> None:
        self.adaptive(op)

    def adaptive(self, op: NodeOp) -> None:
        """Adaptive pooling: exact windows; pooled to one unit per map (from more) it is global;
        an axis pooled to 1 alone reads its whole line (coordinate attention, strip pooling)."""
        x = self.local_input(op)
        n = len(self.val(x).layout)
        self.spatial_last(op, x)
        sizes = list(zip(self.shape(x)[-n:], self.shape(op.node)[-n:]))
        if all(b == 1 for _, b in sizes) and any(a > 1 for a, _ in sizes):
            self.set_global(op, "adaptive pooling to 1", scalar=True)
            return
        rules = tuple(
            None if a == b else (lambda iv, a=a, b=b: adaptive_interval(iv, a, b)) for a, b in sizes
        )
        if any(a % b for a, b in sizes):
            self.mark_irregular(op)
        self.spatial(op, x, rules, tuple(Fraction(a, b) for a, b in sizes))

    def m_upsample(self, op: NodeOp) -> None:
        m = op.module
        align = m.align_corners
        if isinstance(m, nn.UpsamplingBilinear2d):
            align = True
        self._interpolate(op, m.mode, align, m.scale_factor, m.recompute_scale_factor, False)

    def f_interpolate(self, op: NodeOp) -> None:
        self._interpolate(
            op,
            op.arg(3, "mode", "nearest"),
            op.arg(4, "align_corners"),
            op.arg(2, "scale_factor"),
            op.arg(5, "recompute_scale_factor"),
            op.arg(6, "antialias", False),
        )

    def _interpolate(
        self, op: NodeOp, mode: str, align: Any, scale: Any, recompute: Any, antialias: bool
    ) -> None:
        """nearest / nearest-exact / bilinear / bicubic / area, sizes from ShapeProp; the scale
        PyTorch's kernel uses is the user's scale_factor unless recompute_scale_factor."""
        x = self.local_input(op)
        if antialias:
            raise self.unsupported(op, "antialiased interpolation")
        n = len(self.val(x).layout)
        linear = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(n)
        if mode not in ("nearest", "nearest-exact", linear, "bicubic", "area"):
            raise self.unsupported(op, f"interpolation mode {mode!r} of a {n}-D map")
        if mode == linear:
            mode = "bilinear"  # the same rule on each axis
        self.spatial_last(op, x)
        sizes = list(zip(self.shape(x)[-n:], self.shape(op.node)[-n:]))
        plain = recompute or scale is None or mode == "area"
        scales = (None,) * n if plain else _ntuple(scale, n)
        meta = x.meta.get("tensor_meta")
        single = getattr(meta, "dtype", torch.float32) != torch.float64
        copied = all(a == b for a, b in sizes)  # bicubic's backward copies (cubic_source)
        rules = tuple(
            (
                lambda iv, a=a, b=b, s=s: interpolate_interval(
                    iv, a, b, mode, s, align, single, copied
                )
            )
            for (a, b), s in zip(sizes, scales)
        )
        if not all(mode == "nearest" and b % a == 0 and not s for (a, b), s in zip(sizes, scales)):
            self.mark_irregular(op)  # clamped borders, fractional scales
        self.spatial(op, x, rules, tuple(Fraction(a, b) for a, b in sizes))

    def m_pad(self, op: NodeOp) -> None:
        mode = type(op.module).__name__.rstrip("d").rstrip("123").replace("Pad", "").lower()
        self._pad(op, list(op.module.padding), "constant" if mode == "zero" else mode)

    def f_pad(self, op: NodeOp) -> None:
        self._pad(op, list(op.arg(1, "pad")), op.arg(2, "mode", "constant"))

    def _pad(self, op: NodeOp, pad: list[int], mode: str) -> None:
        """F.pad / *Pad2d: a shift by the left/top padding (negative pads crop); the exact taps
        of a padded unit are the input unit ``pad_source`` names (mirrored, edge or wrapped)."""
        x = self.local_input(op)
        v, nd = self.val(x), len(self.shape(x))
        j = nd - 1 - v.layout[0]
        if v.flat is not None and any(pad[2 * j : 2 * j + 2]):
            raise self.unsupported(op, "it pads the tokens of a flattened grid")
        if v.flat is not None:
            self.same(op, x)
            return
        rules: list[AxisRule | None] = []
        for d in v.layout:
            j = nd - 1 - d
            left = pad[2 * j] if 2 * j < len(pad) else 0
            right = pad[2 * j + 1] if 2 * j + 1 < len(pad) else 0
            if mode in ("constant", "zeros"):
                rules.append(shift(-left) if left else None)
                continue
            rules.append(AxisMap(shift(-left), _mirror_taps(left, right, mode)))
        self._pad_note(op, mode)
        self.same(op, x, rule=box_rule(*rules))

    def _pad_note(self, op: NodeOp, mode: str) -> None:
        if mode == "circular":
            self.note(op, CIRCULAR_NOTE)
        elif mode in ("reflect", "reflection", "replicate", "replication"):
            self.note(op, MIRROR_NOTE)

    def roll(self, op: NodeOp) -> None:
        """torch.roll along spatial dims: unit u holds input unit (u - shift) mod n."""
        shifts, dims = op.arg(1, "shifts"), op.arg(2, "dims")
        if dims is None:
            raise self.unsupported(op, "roll of the flattened tensor")
        shifts = list(shifts) if isinstance(shifts, (tuple, list)) else [shifts]
        self._permute_units(op, dims, lambda u, n, k: (u - k) % n, shifts)

    def flip(self, op: NodeOp) -> None:
        """torch.flip along spatial dims: unit u holds input unit n - 1 - u."""
        dims = op.args[1:] if op.node.op == "call_method" else (op.arg(1, "dims"),)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        self._permute_units(op, dims, lambda u, n, k: n - 1 - u, [0] * len(dims))

    def _permute_units(self, op: NodeOp, dims: Any, source: Any, params: list[int]) -> None:
        """An op that moves each unit of some dims to one input unit ``source(u, n, param)``:
        exact taps per unit; the interval rule is the hull of the taps of the real units in it
        (units past the map read nothing)."""
        x = self.local_input(op)
        v, nd = self.val(x), len(self.shape(x))
        dims = self.dims(op, dims, nd)
        if len(params) != len(dims):
            raise self.unsupported(op, f"{len(params)} shifts for {len(dims)} dims")
        if v.flat is not None:
            raise self.unsupported(op, "it moves tokens of a flattened grid")
        rules: list[AxisRule | None] = [None] * len(v.layout)
        hw = spatial_hw(self.shape(x), v.layout)
        for d, k in zip(dims, params):
            if d not in v.layout:
                continue
            ax = v.layout.index(d)
            n = hw[ax]
            rules[ax] = taps_map(lambda u, n_in, k=k: [source(u, n_in, k)], n, n)
        self.mark_irregular(op)
        self.same(op, x, rule=box_rule(*rules))

    def m_pixel_shuffle(self, op: NodeOp) -> None:
        self.pixel_shuffle(op, op.module.upscale_factor)

    def m_pixel_unshuffle(self, op: NodeOp) -> None:
        self.pixel_unshuffle(op, op.module.downscale_factor)

    def pixel_shuffle(self, op: NodeOp, r: int) -> None:
        """Output unit u reads input unit floor(u / r) (like nearest upsampling by r)."""
        rule = lambda iv: (iv[0] // r, iv[1] // r)  # noqa: E731
        self.spatial(op, self._map_2d(op), (rule, rule), (Fraction(1, r), Fraction(1, r)))

    def pixel_unshuffle(self, op: NodeOp, r: int) -> None:
        """Output unit u reads input units [u r, u r + r - 1] (a k=r, s=r window)."""
        rule = lambda iv: affine_interval(iv, r, 0, r - 1)  # noqa: E731
        self.spatial(op, self._map_2d(op), (rule, rule), (Fraction(r), Fraction(r)))

    def _map_2d(self, op: NodeOp) -> fx.Node:
        x = self.local_input(op)
        if len(self.val(x).layout) != 2:
            raise self.unsupported(op, "it needs a 2-D map")
        return x


def _mirror_taps(left: int, right: int, mode: str) -> Any:
    """Taps of reflect/replicate/circular padding by (left, right): negative pads crop first
    (as torch.nn.functional.pad), then the positive ones mirror, repeat or wrap the cropped
    axis."""
    crop_left, crop_right = max(-left, 0), max(-right, 0)

    def taps(u: int, n: int) -> list[int]:
        src = pad_source(u - max(left, 0), n - crop_left - crop_right, mode)
        return [] if src is None else [src + crop_left]

    return taps


def _conv_padding(padding: Any, kernel: Any, dilation: Any, n: int) -> tuple[int, ...]:
    """Left padding per axis (``n`` axes); "same" puts total // 2 of d(k-1) on the left,
    "valid" none."""
    if padding == "same":
        k, d = _ntuple(kernel, n), _ntuple(dilation, n)
        return tuple(d[i] * (k[i] - 1) // 2 for i in range(n))
    if padding == "valid":
        return (0,) * n
    return _ntuple(padding, n)


__all__ = ["CIRCULAR_NOTE", "MIRROR_NOTE", "SpatialRules"]
