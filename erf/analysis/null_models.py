"""Closed-form null models of the ERF of an n-layer k×k conv stack with no activation. Pure numpy.

Setting: ``n`` stride-1 k×k convolutions with "same" zero padding and no bias, C channels,
probed at one output unit with a unit gradient on every output channel, on an input larger
than the TRF (side ``1 + n(k - 1)``), so no path from the unit reaches the padding. Write
``g_p = ∂y/∂x_p`` for one input channel at input offset p from the unit. By the chain rule
``g_p`` is a sum over paths: a path picks, at each layer l, a channel ``c_l`` and a kernel
offset ``a_l`` in {-(k-1)/2 .. (k-1)/2}², with ``a_1 + … + a_n = p``, and contributes the
product of the n weights ``w_l[c_l, c_{l-1}, a_l]`` it uses.

**Box model** (uniform weights, every weight 1/fan_in = 1/(C k²)): every path carries the same
product, so ``g_p`` is proportional to the number of offset sequences summing to p, which is
the n-fold convolution of the k×k box with itself: ``B_n = b_n ⊗ b_n`` with
``b_n = box_k * … * box_k`` (n times, 1-D). The measured map of a uniform linear stack is
exactly ``B_n`` up to a constant, under every reduction that does not change the sign
(``abs``, ``relu``, ``square`` gives ``B_n²``).

**Square-root model** (random signed weights, i.i.d. zero-mean, variance σ², independent
across layers and positions, no activation): the gradient no longer depends on the input, and
over weight draws

    E[g_p²] = Σ_{paths P, Q to p} E[Π_l w_l(P_l) w_l(Q_l)] = Σ_{P} σ^{2n}
            = σ^{2n} C^n k^{2n} B_n(p)

(C^n channel sequences, the output channel summed over; k^{2n} B_n(p) offset sequences),

because the factors of different layers are independent and, within a layer, E[w(P_l) w(Q_l)]
is σ² when P and Q use the same weight entry and 0 otherwise, so only P = Q survives (each
path uses each layer's weights once). The variance map is therefore the n-fold convolution of
one kernel's squared-weight (variance) profile, which for i.i.d. weights is flat: ``B_n`` again.
That is what ``probe.reduce=square`` measures (exactly, in expectation over draws). Under
``abs`` the map is E|g_p|; ``g_p`` is a sum of many path products, close to Gaussian, and for a
zero-mean Gaussian E|g| = √(2/π) · √(E g²), so the ``abs`` map is ∝ √B_n (approximately: the
path products are not Gaussian, which the Monte-Carlo test bounds). A ReLU gate per unit
multiplies each path by a 0/1 factor that halves the variance per layer on average, leaving
the shape (to first order) unchanged, which is why random + ReLU follows √B_n too. √B_n is
wider than B_n: its Gaussian σ is √2 times larger, and Luo's size, a threshold at
(1 - 0.9545) of the centre, counts more pixels.

Luo sizes here use ``erf.analysis.metrics.luo_size`` on the 2-D map, the same definition as
the measured maps; both models' support is exactly the TRF, so at small depth the size is
capped by the TRF side (ERF/TRF near 1) and the size curve starts below the √n line fitted
to its large-depth part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from erf.analysis.metrics import loglog_slope, luo_size

NULL_MODELS = ("box", "sqrt_box")


def box_power(n: int, kernel_size: int = 3) -> np.ndarray:
    """``b_n``: the n-fold 1-D convolution of a length-``kernel_size`` box with itself, length
    ``1 + n (kernel_size - 1)``, scaled to sum 1 (float64). ``n`` >= 1, odd ``kernel_size``."""
    n, k = int(n), int(kernel_size)
    if n < 1:
        raise ValueError(f"depth must be >= 1, got {n}")
    if k < 1 or k % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {k}")
    box = np.full(k, 1.0 / k)
    out = box
    for _ in range(n - 1):
        out = np.convolve(out, box)
    return out / out.sum()


def null_map(n: int, kernel_size: int = 3, model: str = "box") -> np.ndarray:
    """The [S, S] null-model map (S = TRF side ``1 + n(k - 1)``), 1 at the centre:
    ``box`` = B_n = b_n ⊗ b_n (uniform weights, no activation); ``sqrt_box`` = √B_n (random
    signed weights under ``abs``: the square root of the variance map). See the module text."""
    if model not in NULL_MODELS:
        raise ValueError(f"unknown null model {model!r}; allowed: {list(NULL_MODELS)}")
    b = box_power(n, kernel_size)
    m = np.outer(b, b)
    if model == "sqrt_box":
        m = np.sqrt(m)
    c = m.shape[0] // 2
    return m / m[c, c]


def null_size(n: int, kernel_size: int = 3, model: str = "box") -> float:
    """Luo size (pixels) of ``null_map(n, kernel_size, model)``."""
    return luo_size(null_map(n, kernel_size, model))


def null_curves(depths: Sequence[int], kernel_size: int = 3) -> list[dict[str, Any]]:
    """Per null model: Luo size, TRF side and ERF/TRF at each depth, and the log-log slopes of
    size and ERF/TRF against depth (``erf.analysis.metrics.loglog_slope``)."""
    xs = [int(d) for d in depths]
    trf = [1 + d * (int(kernel_size) - 1) for d in xs]
    out = []
    for model in NULL_MODELS:
        sizes = [null_size(d, kernel_size, model) for d in xs]
        ratio = [s / t for s, t in zip(sizes, trf)]
        out.append(
            {
                "model": model,
                "depths": xs,
                "trf_size": trf,
                "erf_size": sizes,
                "erf_trf_ratio": ratio,
                "erf_size_slope": loglog_slope(xs, sizes)[0] if len(xs) > 1 else float("nan"),
                "erf_trf_ratio_slope": loglog_slope(xs, ratio)[0] if len(xs) > 1 else float("nan"),
            }
        )
    return out
