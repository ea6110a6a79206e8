"""Theoretical receptive field (TRF) of a chain of layers (Araujo, Norris, Sim, Distill 2019).

Per axis, layer ``l`` has effective kernel ``k_l = d_l (K_l - 1) + 1`` (dilation applied),
stride ``s_l`` and left/top padding ``p_l``; with products over the layers before ``l``:

    size              r0 = 1 + sum_l (k_l - 1) * prod_{i<l} s_i
    effective stride  S0 = prod_l s_l
    effective padding P0 = sum_l p_l * prod_{i<l} s_i

Output unit ``u`` sees input pixels ``[-P0 + u S0, -P0 + u S0 + r0 - 1]`` (inclusive; may run
outside the input). All pairs are ``(rows, cols)`` in input pixels. The math is pure Python; the
torch adapter only reads module attributes and turns an ``nn.Sequential`` into layer specs.

This module also holds the one-axis interval rules (conv, transposed conv, padding/cropping,
interpolation, adaptive pooling) that erf.rf.graph back-propagates through arbitrary models, and
``theoretical_rf`` dispatches to that graph analysis for anything that is not a plain chain.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

import numpy as np

Pair = tuple[int, int]
Stride = tuple["int | Fraction", "int | Fraction"]
Interval = tuple[int, int]  # inclusive (start, end) of units on one axis


# --------------------------------------------------------------------------- pure math


def chain_1d(
    kernels: Sequence[int], strides: Sequence[int], paddings: Sequence[int]
) -> list[tuple[int, int, int]]:
    """Cumulative ``(size r, effective stride S, effective padding P)`` after each layer, one axis.

    ``kernels`` are effective (dilated) kernel sizes, ``paddings`` left paddings, in pixels.
    """
    r, s_eff, p_eff = 1, 1, 0
    out = []
    for k, s, p in zip(kernels, strides, paddings, strict=True):
        r += (k - 1) * s_eff
        p_eff += p * s_eff
        s_eff *= s
        out.append((r, s_eff, p_eff))
    return out


def output_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    pad_right: int | None = None,
    ceil_mode: bool = False,
) -> int:
    """PyTorch's output length of a conv/pool over ``n`` input pixels (one axis).

    ``floor((n + p_left + p_right - d(k-1) - 1) / s) + 1``; with ``ceil_mode`` the division rounds
    up but the last window must start inside the input or the left padding. ``pad_right``
    defaults to ``padding`` (symmetric).
    """
    pr = padding if pad_right is None else pad_right
    span = n + padding + pr - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


# --------------------------------------------------------------------------- interval rules
#
# One rule per op and axis: the output units [a, b] (inclusive, unclipped integers: they may be
# negative or past the map for units that only exist in a later layer's padding) map to the
# inclusive interval of input units they read, or None when they read none. Every rule is
# [a, b] -> [lo(a), hi(b)] with lo, hi nondecreasing (bicubic: the extremes of the 4 units at
# each end), so the hull of images is the image of the hull and graphs can propagate one
# interval per node (tests/test_theory.py checks both against PyTorch's index maps). "Real"
# units 0 <= u < n_out follow PyTorch's index arithmetic (clamps included); virtual units
# extrapolate without clamping.


def hull(a: Interval | None, b: Interval | None) -> Interval | None:
    """Smallest interval holding both (None is the empty interval)."""
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]))


def affine_interval(iv: Interval, stride: int, offset: int, extent: int = 0) -> Interval:
    """Unit u reads ``[u*stride + offset, u*stride + offset + extent]``.

    Conv/pool: ``stride=s, offset=-p_left, extent=d(k-1)``; padding/cropping by ``l`` on the
    left: ``(1, -l)``; slicing ``start::step``: ``(step, start)``; pixel unshuffle by r:
    ``(r, 0, r-1)``.
    """
    return (iv[0] * stride + offset, iv[1] * stride + offset + extent)


def conv_interval(
    iv: Interval, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> Interval:
    """Conv2d/MaxPool2d/AvgPool2d (one axis; ``padding`` = left padding)."""
    return affine_interval(iv, stride, -padding, dilation * (kernel - 1))


def conv_transpose_interval(
    iv: Interval, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> Interval | None:
    """ConvTranspose2d: input i writes outputs ``[i s - p, i s - p + d(k-1)]``, so [a, b] reads
    ``[ceil((a + p - d(k-1)) / s), floor((b + p) / s)]`` (None when no input reaches them)."""
    lo = -((-(iv[0] + padding - dilation * (kernel - 1))) // stride)
    hi = (iv[1] + padding) // stride
    return (lo, hi) if lo <= hi else None


def crop_interval(iv: Interval, offset: int, size: int) -> Interval | None:
    """Piece ``[offset, offset + size)`` of a concatenation: its own units read by [a, b]."""
    lo, hi = max(iv[0], offset), min(iv[1], offset + size - 1)
    return (lo - offset, hi - offset) if lo <= hi else None


def adaptive_interval(iv: Interval, n_in: int, n_out: int) -> Interval:
    """Adaptive pooling / ``mode="area"``: unit u reads ``[floor(u n_in / n_out),
    ceil((u + 1) n_in / n_out) - 1]`` (PyTorch's start_index/end_index)."""
    return ((iv[0] * n_in) // n_out, -((-(iv[1] + 1) * n_in) // n_out) - 1)


def _scale_ratio(n_in: int, n_out: int, scale: float | None) -> float:
    """PyTorch's compute_scales_value: 1/scale_factor when one was given, else n_in/n_out."""
    return 1.0 / scale if scale else n_in / n_out


def nearest_source(
    u: int, n_in: int, n_out: int, scale: float | None = None, exact: bool = False
) -> int:
    """Source index of output u for ``mode="nearest"`` (``exact``: ``"nearest-exact"``).

    As aten's nearest_idx: identity when n_out == n_in, ``u >> 1`` when n_out == 2 n_in, else
    ``floor(u * s)`` (or ``floor((u + 0.5) * s)``) in float32 with s = 1/scale or n_in/n_out,
    clamped at n_in - 1 for real units.
    """
    if not exact and n_out == n_in:
        return u
    if not exact and n_out == 2 * n_in:
        return u >> 1
    s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    src = np.float32((u + 0.5) * float(s)) if exact else np.float32(u) * s
    i = math.floor(float(src))
    return min(i, n_in - 1) if 0 <= u < n_out else i


def _source_index(
    u: int, n_in: int, n_out: int, scale: float | None, align_corners: bool, cubic: bool
) -> tuple[int, float]:
    """(index, lambda) of output u for linear/cubic modes, as aten's
    area_pixel_compute_source_index + guard_index_and_lambda (float64 arithmetic)."""
    real = 0 <= u < n_out
    if align_corners:
        ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = ratio * u
    else:
        src = _scale_ratio(n_in, n_out, scale) * (u + 0.5) - 0.5
        if real and not cubic and src < 0:
            src = 0.0
    i = math.floor(float(np.float32(src)))
    if real:
        i = min(i, n_in - 1)
        return i, min(max(src - i, 0.0), 1.0)
    return i, src - i


def linear_source(
    u: int, n_in: int, n_out: int, scale: float | None = None, align_corners: bool = False
) -> Interval:
    """Source pixels of output u for ``mode="bilinear"`` (one axis): ``i0`` and, when its weight
    lambda is nonzero and ``i0 < n_in - 1``, ``i0 + 1``. Identity when n_out == n_in."""
    if n_out == n_in:
        return (u, u)
    i0, lam = _source_index(u, n_in, n_out, scale, align_corners, cubic=False)
    real = 0 <= u < n_out
    i1 = i0 + 1 if lam > 0 and (not real or i0 < n_in - 1) else i0
    return (i0, i1)


def cubic_source(
    u: int, n_in: int, n_out: int, scale: float | None = None, align_corners: bool = False
) -> Interval:
    """Source pixels of output u for ``mode="bicubic"``: taps ``i0-1 .. i0+2`` (clamped to the
    input for real units), only ``i0`` when lambda is 0 (the other weights vanish)."""
    i0, lam = _source_index(u, n_in, n_out, scale, align_corners, cubic=True)
    lo, hi = (i0, i0) if lam == 0 else (i0 - 1, i0 + 2)
    if 0 <= u < n_out:
        lo, hi = min(max(lo, 0), n_in - 1), min(max(hi, 0), n_in - 1)
    return (lo, hi)


def interpolate_interval(
    iv: Interval,
    n_in: int,
    n_out: int,
    mode: str,
    scale: float | None = None,
    align_corners: bool | None = None,
) -> Interval:
    """F.interpolate / nn.Upsample along one axis (sizes from the actual shapes; ``scale`` is the
    user's scale_factor when PyTorch passes it to the kernel, else None)."""
    a, b = iv
    if mode == "nearest" or mode == "nearest-exact":
        exact = mode == "nearest-exact"
        return (
            nearest_source(a, n_in, n_out, scale, exact),
            nearest_source(b, n_in, n_out, scale, exact),
        )
    if mode == "bilinear":
        ac = bool(align_corners)
        return (
            linear_source(a, n_in, n_out, scale, ac)[0],
            linear_source(b, n_in, n_out, scale, ac)[1],
        )
    if mode == "bicubic":  # taps shrink to one pixel where lambda is 0: look 3 units inside
        ac = bool(align_corners)
        first, last = range(a, min(a + 3, b) + 1), range(max(b - 3, a), b + 1)
        return (
            min(cubic_source(u, n_in, n_out, scale, ac)[0] for u in first),
            max(cubic_source(u, n_in, n_out, scale, ac)[1] for u in last),
        )
    if mode == "area":
        return adaptive_interval(iv, n_in, n_out)
    raise ValueError(f"interpolation mode {mode!r} is not supported")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LayerRF:
    """One layer of the chain and the cumulative TRF after it (pairs are ``(rows, cols)``).

    ``kernel`` is the effective kernel ``d(k-1)+1``; ``padding`` the layer's left/top padding;
    ``size``/``eff_stride``/``eff_padding`` are r, S, P from the input up to this layer's output;
    ``out_shape`` is its output ``(h, w)``, or ``None`` when the input shape is unknown.
    """

    name: str
    kernel: Pair
    stride: Pair
    padding: Pair
    size: Pair
    eff_stride: Pair
    eff_padding: Pair
    out_shape: Pair | None = None


@dataclass(frozen=True)
class TheoreticalRF:
    """TRF of one output: ``size`` r0, ``stride`` S0, ``padding`` P0 per axis ``(rows, cols)``.

    Chains (closed form) fill ``layers``. Graph analysis (erf.rf.graph) leaves ``layers`` empty and
    adds: ``size`` = the span of the centre unit ``(h // 2, w // 2)``; ``stride`` =
    ``(start(u + q) - start(u)) / q`` at the centre, with q the denominator of the nominal stride
    (an ``int``, or a ``fractions.Fraction`` after upsampling / transposed convs, where units
    alternate between spans); ``padding`` = ``-start(unit 0)``.

    Extra fields: ``is_global`` (every output unit sees the whole input: adaptive pooling to 1,
    spatial means, flatten + Linear; then ``size`` is the input ``(H, W)``, ``stride`` (0, 0) and
    ``padding`` (0, 0)); ``global_context`` (the local TRF is exact but a global path modulates
    it: squeeze-excitation gates, i.e. per-channel scalars computed from the whole map, or
    normalisation statistics over the spatial dims); ``path_sizes`` (``((rows, cols), number of
    input->target paths with that span)``, sorted; max = the TRF when branches are aligned);
    ``min_path``/``max_path`` (one example path, fx node names from input to target); ``notes``;
    ``target`` (fx node name); ``graph`` (the ``erf.rf.graph.GraphRF`` it came from, used by
    ``interval`` and ``at``).
    """

    size: Pair
    stride: Stride
    padding: Pair
    layers: tuple[LayerRF, ...] = ()
    input_shape: Pair | None = None
    out_shape: Pair | None = None
    is_global: bool = False
    global_context: bool = False
    path_sizes: tuple[tuple[Pair, int], ...] = ()
    notes: tuple[str, ...] = ()
    target: str | None = None
    min_path: tuple[str, ...] = ()
    max_path: tuple[str, ...] = ()
    graph: Any = field(default=None, repr=False, compare=False)

    def interval(self, unit: Pair, clipped: bool = False) -> tuple[Pair, Pair]:
        """Inclusive input span ``((r_start, r_end), (c_start, c_end))`` seen by output ``unit``.

        ``unit`` is ``(row, col)`` in the output map. Unclipped, it may extend past the input;
        ``clipped=True`` clips to ``[0, H-1] x [0, W-1]`` (needs ``input_shape``). Graph results
        back-propagate the unit exactly (spans may vary between units after upsampling) and clip
        every intermediate map: the exact bounding box of the input pixels the unit reads.
        """
        if self.graph is not None and self.target is not None:
            return self.graph.unit_interval(self.target, unit, clipped=clipped)
        spans = []
        for ax in range(2):
            start = -self.padding[ax] + unit[ax] * self.stride[ax]
            spans.append((start, start + self.size[ax] - 1))
        if clipped:
            if self.input_shape is None:
                raise ValueError("interval(clipped=True) needs input_shape")
            spans = [
                (max(a, 0), min(b, self.input_shape[ax] - 1)) for ax, (a, b) in enumerate(spans)
            ]
        return spans[0], spans[1]

    @property
    def center_offset(self) -> tuple[float, float]:
        """Input position of the centre of output unit 0 per axis: ``-P + (r - 1) / 2``."""
        return (
            -self.padding[0] + (self.size[0] - 1) / 2,
            -self.padding[1] + (self.size[1] - 1) / 2,
        )

    @property
    def center_unit(self) -> Pair | None:
        """Centre ``(h // 2, w // 2)`` of the output map, or ``None`` if ``out_shape`` unknown."""
        if self.out_shape is None:
            return None
        return (self.out_shape[0] // 2, self.out_shape[1] // 2)

    @property
    def min_path_size(self) -> Pair | None:
        """Smallest path span (by area, then rows), or None without path statistics."""
        return min((s for s, _ in self.path_sizes), key=_area_key, default=None)

    @property
    def max_path_size(self) -> Pair | None:
        """Largest path span (by area, then rows): the TRF for aligned graphs."""
        return max((s for s, _ in self.path_sizes), key=_area_key, default=None)

    def at(self, name: str) -> TheoreticalRF:
        """The TRF at layer ``name``: a ``LayerRF.name`` of the chain (e.g. "5"), or for graph
        results any target ``GraphRF.for_target`` accepts (module path or fx node name)."""
        if self.graph is not None:
            return self.graph.for_target(name)
        names = [layer.name for layer in self.layers]
        if name not in names:
            raise ValueError(f"no layer named {name!r} in the chain; layers: {', '.join(names)}")
        i = names.index(name)
        layer = self.layers[i]
        return TheoreticalRF(
            size=layer.size,
            stride=layer.eff_stride,
            padding=layer.eff_padding,
            layers=self.layers[: i + 1],
            input_shape=self.input_shape,
            out_shape=layer.out_shape,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists, Fractions floats; ``graph`` is left out)."""

        def plain(v: Any) -> Any:
            if isinstance(v, Fraction):
                return v.numerator if v.denominator == 1 else float(v)
            if isinstance(v, LayerRF):
                return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        d = {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name != "graph"}
        d["center_offset"] = list(self.center_offset)
        return d


def _area_key(size: Pair) -> tuple[int, int]:
    return (size[0] * size[1], size[0])


# --------------------------------------------------------------------------- layer specs


@dataclass(frozen=True)
class _Spec:
    """One validated layer: raw kernel, stride, left padding, dilation, right padding, ceil."""

    name: str
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    pad_right: Pair
    ceil_mode: bool = False

    @property
    def eff_kernel(self) -> Pair:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))


def _pair(value: Any, where: str, field: str, minimum: int) -> Pair:
    """``int`` or ``(rows, cols)`` pair of ints ``>= minimum``, else ValueError naming the field."""

    def is_int(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(value):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(map(is_int, value))):
        raise ValueError(f"{where}: {field} must be an int or a (rows, cols) pair, got {value!r}")
    pair = (int(value[0]), int(value[1]))
    if min(pair) < minimum:
        raise ValueError(f"{where}: {field} must be >= {minimum}, got {value!r}")
    return pair


def _spec(
    index: int,
    name: str,
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any = 1,
    pad_right: Any = None,
    ceil_mode: bool = False,
) -> _Spec:
    where = f"layer {index} ({name!r})"
    pad = _pair(padding, where, "padding", 0)
    return _Spec(
        name=name,
        kernel=_pair(kernel, where, "kernel", 1),
        stride=_pair(stride, where, "stride", 1),
        padding=pad,
        dilation=_pair(dilation, where, "dilation", 1),
        pad_right=pad if pad_right is None else _pair(pad_right, where, "pad_right", 0),
        ceil_mode=bool(ceil_mode),
    )


def _specs_from_tuples(layers: Sequence[Any]) -> list[_Spec]:
    """``(kernel, stride, padding[, dilation])`` tuples -> specs, named by their index."""
    specs = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (3, 4):
            raise ValueError(
                f"layer {i}: expected (kernel, stride, padding[, dilation]), got {layer!r}"
            )
        specs.append(_spec(i, str(i), *layer))
    return specs


def _pointwise_types() -> tuple[type, ...]:
    """Spatially 1x1 modules. Norms' spatial statistics are treated as constants (as in the TF
    receptive_field library): GroupNorm/InstanceNorm, or BatchNorm in train mode, strictly make
    every output depend on the whole input."""
    from torch import nn

    return (
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
        nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
        nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.BatchNorm2d, nn.GroupNorm,
        nn.InstanceNorm2d, nn.LocalResponseNorm,
    )  # fmt: skip


def _flatten(module: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of nested Sequential/ModuleList containers in forward order, with module paths.

    Reads ``_modules`` (what ``Sequential.forward`` iterates) rather than ``named_children``,
    which skips a module instance that appears twice (e.g. ``[conv, relu] * 3``).
    """
    from torch import nn

    for name, child in module._modules.items():
        if child is None:
            continue
        path = f"{prefix}{name}"
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            yield from _flatten(child, path + ".")
        else:
            yield path, child


def _module_spec(index: int, path: str, m: Any) -> _Spec:
    """Spec of one leaf module; TypeError for anything the chain analysis cannot handle."""
    from torch import nn

    if isinstance(m, nn.Conv2d):
        k, s, d = m.kernel_size, m.stride, m.dilation
        if m.padding == "same":  # PyTorch: total d(k-1), left total // 2, rest on the right
            total = [di * (ki - 1) for ki, di in zip(k, d, strict=True)]
            left, right = [t // 2 for t in total], [t - t // 2 for t in total]
            return _spec(index, path, k, s, tuple(left), d, pad_right=tuple(right))
        pad = 0 if m.padding == "valid" else m.padding
        return _spec(index, path, k, s, pad, d)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = m.kernel_size if m.stride is None else m.stride
        d = getattr(m, "dilation", 1)  # AvgPool2d has none
        return _spec(index, path, m.kernel_size, stride, m.padding, d, ceil_mode=m.ceil_mode)
    if isinstance(m, _pointwise_types()):
        return _spec(index, path, 1, 1, 0)
    raise TypeError(
        f"module {path!r} of type {type(m).__name__} is not supported by the chain analysis of "
        "theoretical_rf (Conv2d, MaxPool2d, AvgPool2d and pointwise/normalisation layers only)"
    )


def _specs_from_module(model: Any) -> list[_Spec]:
    from torch import nn

    if not isinstance(model, (nn.Sequential, nn.ModuleList)):
        raise TypeError(
            f"theoretical_rf: model of type {type(model).__name__} is not supported by the chain "
            "analysis; pass an nn.Sequential or a list of (kernel, stride, padding[, dilation])"
        )
    return [_module_spec(i, path, m) for i, (path, m) in enumerate(_flatten(model))]


def _hw(input_shape: Sequence[int] | None) -> Pair | None:
    if input_shape is None:
        return None
    if len(input_shape) not in (2, 3):
        raise ValueError(f"input_shape must be (C, H, W) or (H, W), got {input_shape!r}")
    return int(input_shape[-2]), int(input_shape[-1])


# --------------------------------------------------------------------------- entry point


def theoretical_rf(
    model_or_layers: Any, input_shape: Sequence[int] | None = None, target: str | None = None
) -> TheoreticalRF:
    """TRF of a chain (closed form) or of any ``nn.Module`` (graph analysis, erf.rf.graph).

    Args:
        model_or_layers: a list/tuple of ``(kernel, stride, padding[, dilation])`` tuples (each
            entry an int or a ``(rows, cols)`` pair; padding is the left/top padding), or an
            ``nn.Sequential``/``nn.ModuleList`` (nested ones are flattened) of Conv2d, MaxPool2d,
            AvgPool2d and pointwise layers: closed form. Any other ``nn.Module`` (or a
            Sequential with other layers, or a ``target``): graph analysis with torch.fx.
        input_shape: ``(C, H, W)`` (or ``(H, W)`` for the closed form); optional for the closed
            form (gives every layer its PyTorch output shape), required for graph analysis.
        target: graph analysis: a module path as in ``model.named_modules()`` (called once) or
            an fx node name; None = the model output. Closed form: a layer name (``.at``).
    """
    from torch import nn

    if isinstance(model_or_layers, (list, tuple)):
        rf = _closed_form(_specs_from_tuples(model_or_layers), input_shape)
        return rf if target is None else rf.at(str(target))
    if isinstance(model_or_layers, nn.ModuleList) or (
        isinstance(model_or_layers, nn.Sequential) and target is None and _is_chain(model_or_layers)
    ):
        rf = _closed_form(_specs_from_module(model_or_layers), input_shape)
        return rf if target is None else rf.at(str(target))
    if not isinstance(model_or_layers, nn.Module):
        raise TypeError(
            f"theoretical_rf: expected an nn.Module or a list of (kernel, stride, padding"
            f"[, dilation]) tuples, got {type(model_or_layers).__name__}"
        )
    if input_shape is None:
        raise ValueError(
            f"input_shape is needed for graph analysis of {type(model_or_layers).__name__} "
            "(pass (C, H, W))"
        )
    from erf.rf.graph import graph_rf

    return graph_rf(model_or_layers, input_shape).for_target(target)


def _is_chain(model: Any) -> bool:
    """True when every leaf of the (nested) Sequential has a closed-form spec."""
    try:
        _specs_from_module(model)
    except TypeError:
        return False
    return True


def _closed_form(specs: list[_Spec], input_shape: Sequence[int] | None) -> TheoreticalRF:
    """Closed-form TRF of validated layer specs (see the module docstring)."""
    hw = _hw(input_shape)
    axes = [
        chain_1d(
            [s.eff_kernel[ax] for s in specs],
            [s.stride[ax] for s in specs],
            [s.padding[ax] for s in specs],
        )
        for ax in range(2)
    ]
    layers, shape = [], hw
    for i, spec in enumerate(specs):
        if shape is not None:
            new = tuple(
                output_size(
                    shape[ax],
                    spec.kernel[ax],
                    spec.stride[ax],
                    spec.padding[ax],
                    spec.dilation[ax],
                    spec.pad_right[ax],
                    spec.ceil_mode,
                )  # fmt: skip
                for ax in range(2)
            )
            if min(new) < 1:
                raise ValueError(
                    f"layer {i} ({spec.name!r}): input of size {shape} is too small "
                    f"(output size would be {new})"
                )
            shape = new
        (r0, s0, p0), (r1, s1, p1) = axes[0][i], axes[1][i]
        layers.append(
            LayerRF(
                name=spec.name,
                kernel=spec.eff_kernel,
                stride=spec.stride,
                padding=spec.padding,
                size=(r0, r1),
                eff_stride=(s0, s1),
                eff_padding=(p0, p1),
                out_shape=shape,
            )
        )
    last = layers[-1] if layers else None
    return TheoreticalRF(
        size=last.size if last else (1, 1),
        stride=last.eff_stride if last else (1, 1),
        padding=last.eff_padding if last else (0, 0),
        layers=tuple(layers),
        input_shape=hw,
        out_shape=shape,
    )


__all__ = [
    "Interval",
    "LayerRF",
    "TheoreticalRF",
    "adaptive_interval",
    "affine_interval",
    "chain_1d",
    "conv_interval",
    "conv_transpose_interval",
    "crop_interval",
    "cubic_source",
    "hull",
    "interpolate_interval",
    "linear_source",
    "nearest_source",
    "output_size",
    "theoretical_rf",
]
