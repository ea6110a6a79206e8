"""One-axis interval math of receptive fields: pure Python, no torch.

``chain_1d`` is the closed form of a chain (Araujo, Norris, Sim, Distill 2019: cumulative size,
effective stride and effective padding) and ``output_size`` PyTorch's conv/pool output length.
The interval rules map a range of output units of one op (conv, transposed conv,
padding/cropping, interpolation, adaptive pooling) to the range of input units it reads; the
closed form (erf.rf.theory) and the graph analysis (erf.rf.graph) are built on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Interval = tuple[int, int]  # inclusive (start, end) of units on one axis


# --------------------------------------------------------------------------- chains


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
# interval per node (tests/rf/test_intervals.py checks both against PyTorch's index maps). "Real"
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


def conv_taps(
    u: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    n_in: int | None = None,
    mode: str = "zeros",
) -> list[int]:
    """Input units output unit ``u`` of a conv/pool reads: ``u s - p + j d`` for j < k. With a
    ``mode`` other than zeros (``padding_mode`` reflect/replicate/circular) the taps that land
    in the padding read the input units ``pad_source`` names (needs ``n_in``)."""
    taps = [u * stride - padding + j * dilation for j in range(kernel)]
    if mode in ("zeros", "constant") or n_in is None:
        return taps
    return [i for t in taps if (i := pad_source(t, n_in, mode)) is not None]


def pad_source(j: int, n: int, mode: str) -> int | None:
    """Input unit that position ``j`` of an axis of ``n`` units padded by ``mode`` holds (j < 0
    or j >= n lies in the padding): constant/zeros: none there; reflect: mirrored without the
    edge; replicate: the edge; circular: wrapped. As torch.nn.functional.pad (one reflection)."""
    if 0 <= j < n:
        return j
    if mode in ("reflect", "reflection"):
        return -j if j < 0 else 2 * (n - 1) - j
    if mode in ("replicate", "replication"):
        return 0 if j < 0 else n - 1
    if mode == "circular":
        return j % n
    return None


def conv_transpose_taps(
    u: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> list[int]:
    """Input units output unit ``u`` of a ConvTranspose2d reads: input i writes outputs
    ``i s - p + j d`` (j < k), so u reads ``(u + p - j d) / s`` where that divides exactly."""
    out = []
    for j in range(kernel):
        t = u + padding - j * dilation
        if t % stride == 0:
            out.append(t // stride)
    return sorted(out)


def conv_transpose_interval(
    iv: Interval, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> Interval | None:
    """ConvTranspose2d: the hull of ``conv_transpose_taps`` over the units [a, b] (None when no
    input reaches them). Taps of u + s are those of u plus one, so the extremes lie among the
    first and the last s units."""
    a, b = iv

    def taps(units: range) -> list[int]:
        return [t for u in units for t in conv_transpose_taps(u, kernel, stride, padding, dilation)]

    first = taps(range(a, min(b, a + stride - 1) + 1))
    if not first:
        return None
    return (min(first), max(taps(range(max(a, b - stride + 1), b + 1))))


def crop_interval(iv: Interval, offset: int, size: int) -> Interval | None:
    """Piece ``[offset, offset + size)`` of a concatenation: its own units read by [a, b]."""
    lo, hi = max(iv[0], offset), min(iv[1], offset + size - 1)
    return (lo - offset, hi - offset) if lo <= hi else None


def adaptive_interval(iv: Interval, n_in: int, n_out: int) -> Interval:
    """Adaptive pooling / ``mode="area"``: unit u reads ``[floor(u n_in / n_out),
    ceil((u + 1) n_in / n_out) - 1]`` (PyTorch's start_index/end_index)."""
    return ((iv[0] * n_in) // n_out, -((-(iv[1] + 1) * n_in) // n_out) - 1)


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
    u: int,
    n_in: int,
    n_out: int,
    scale: float | None,
    align_corners: bool,
    cubic: bool,
    single: bool = False,
) -> tuple[int, float]:
    """(index, lambda) of output u for linear/cubic modes, as aten's
    area_pixel_compute_source_index + guard_index_and_lambda: in float64 arithmetic, or with
    ``single`` in float32 as PyTorch computes it for float32 (and half) maps, where a source
    that is an integer in exact arithmetic can land a hair past it (9 -> 45 rows: output row 2
    reads rows 0 and 1, with weight 7e-9)."""
    real = 0 <= u < n_out
    f = np.float32 if single else float
    if align_corners:
        ratio = f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0.0)
        src = float(ratio * f(u))
    else:
        ratio = f(1.0 / scale) if scale else f(n_in) / f(n_out)
        if single and not cubic:
            # ratio * (u + 0.5) - 0.5 as one fused multiply-add (one rounding), as PyTorch's
            # bilinear CPU kernel computes it (the product of two float32s is exact in float64)
            src = float(np.float32(float(ratio) * (u + 0.5) - 0.5))
        else:  # bicubic's kernel rounds the product first
            src = float(ratio * (f(u) + f(0.5)) - f(0.5))
        if real and not cubic and src < 0:
            src = 0.0
    i = math.floor(float(np.float32(src)))
    if real:
        i = min(i, n_in - 1)
        return i, min(max(src - i, 0.0), 1.0)
    return i, src - i


def linear_source(
    u: int,
    n_in: int,
    n_out: int,
    scale: float | None = None,
    align_corners: bool = False,
    single: bool = False,
) -> Interval:
    """Source pixels of output u for ``mode="bilinear"`` (one axis): ``i0`` and, when its weight
    lambda is nonzero and ``i0 < n_in - 1``, ``i0 + 1``. Identity when n_out == n_in.
    ``single``: float32 index arithmetic (``_source_index``)."""
    if n_out == n_in:
        return (u, u)
    i0, lam = _source_index(u, n_in, n_out, scale, align_corners, cubic=False, single=single)
    real = 0 <= u < n_out
    i1 = i0 + 1 if lam > 0 and (not real or i0 < n_in - 1) else i0
    return (i0, i1)


def cubic_source(
    u: int,
    n_in: int,
    n_out: int,
    scale: float | None = None,
    align_corners: bool = False,
    single: bool = False,
    copied: bool = False,
) -> Interval:
    """Source pixels of output u for ``mode="bicubic"``: taps ``i0-1 .. i0+2`` (clamped to the
    input for real units), only ``i0`` when lambda is 0 (the other weights vanish).
    ``single``: float32 index arithmetic (``_source_index``). ``copied``: every spatial axis
    of the map keeps its size, and PyTorch's bicubic backward then copies the gradient,
    whatever the scale factor: identity. An axis that keeps its size beside one that does
    not reads its taps at the given scale (a scale factor of 1.3 on 3 columns mixes them)."""
    if copied:
        return (u, u)
    i0, lam = _source_index(u, n_in, n_out, scale, align_corners, cubic=True, single=single)
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
    single: bool = False,
    copied: bool = False,
) -> Interval:
    """F.interpolate / nn.Upsample along one axis (sizes from the actual shapes; ``scale`` is the
    user's scale_factor when PyTorch passes it to the kernel, else None; ``single``: the map is
    float32 or half, whose linear/cubic source indices PyTorch computes in float32;
    ``copied``: every spatial axis keeps its size (``cubic_source``))."""
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
            linear_source(a, n_in, n_out, scale, ac, single)[0],
            linear_source(b, n_in, n_out, scale, ac, single)[1],
        )
    if mode == "bicubic":  # taps shrink to one pixel where lambda is 0: look 3 units inside
        ac = bool(align_corners)
        first, last = range(a, min(a + 3, b) + 1), range(max(b - 3, a), b + 1)
        return (
            min(cubic_source(u, n_in, n_out, scale, ac, single, copied)[0] for u in first),
            max(cubic_source(u, n_in, n_out, scale, ac, single, copied)[1] for u in last),
        )
    if mode == "area":
        return adaptive_interval(iv, n_in, n_out)
    raise ValueError(f"interpolation mode {mode!r} is not supported")


__all__ = [
    "Interval",
    "adaptive_interval",
    "affine_interval",
    "chain_1d",
    "conv_interval",
    "conv_taps",
    "conv_transpose_interval",
    "conv_transpose_taps",
    "crop_interval",
    "cubic_source",
    "hull",
    "interpolate_interval",
    "linear_source",
    "nearest_source",
    "output_size",
    "pad_source",
]
