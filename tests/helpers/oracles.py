"""Exact oracles computed with numpy, independent of the code under test."""

import numpy as np


def box_convolution_1d(depth: int, kernel: int) -> np.ndarray:
    """The depth-fold convolution of a length-``kernel`` box (unnormalised, exact integers)."""
    out = np.array([1.0])
    for _ in range(depth):
        out = np.convolve(out, np.ones(kernel))
    return out


def box_convolution_2d(depth: int, kernel: int, size: int) -> np.ndarray:
    """Outer product of the 1-D box convolution, centred at (size//2, size//2) of a size² map."""
    v = box_convolution_1d(depth, kernel)
    half = len(v) // 2
    c = size // 2
    out = np.zeros((size, size))
    out[c - half : c + half + 1, c - half : c + half + 1] = np.outer(v, v)
    return out
