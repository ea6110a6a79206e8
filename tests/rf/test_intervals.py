"""One-axis interval math (erf.rf.intervals) against PyTorch: output sizes, and each interval
rule against the index maps of PyTorch's own kernels (gradient support, forward and backward)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from erf.rf.intervals import (
    adaptive_interval,
    conv_transpose_interval,
    hull,
    interpolate_interval,
    output_size,
)

# --------------------------------------------------------------------------- output size


def test_ceil_mode_last_window_must_start_inside():
    # n=5, k=2, s=2, p=1: ceil((5+2-1-1)/2)+1 = 4, but window 3 starts at 3*2 = 6 >= 5+1 -> 3
    assert output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert output_size(5, 2, 2, 1, ceil_mode=False) == 3  # floor(5/2)+1
    # n=8, k=3, s=2: floor(5/2)+1 = 3, ceil -> 4 (window 3 starts at 6 < 8)
    assert output_size(8, 3, 2, 0, ceil_mode=True) == 4


# --------------------------------------------------------------------------- interval rules


def supports_1d(fn, n_in: int, dtype=torch.float64) -> list[list[int]]:
    """Per output index of ``fn`` on a (1, 1, 1, n_in) map: input indices with a nonzero
    Jacobian entry (PyTorch's own index arithmetic, forward and backward)."""
    x = torch.rand(1, 1, 1, n_in, dtype=dtype) + 0.5
    jac = torch.autograd.functional.jacobian(lambda t: fn(t).flatten(), x).reshape(-1, n_in)
    return [np.nonzero(row.numpy())[0].tolist() for row in jac]


def assert_rule_matches(rule, supports, n_out):
    """Each real unit's rule equals the hull of its support (None when empty); on [a, b], real
    or virtual, the rule equals the hull of its units' rules (so hulls can be propagated)."""
    for u, support in enumerate(supports):
        expected = (min(support), max(support)) if support else None
        assert rule((u, u)) == expected, f"unit {u}"
    for a in range(-3, n_out + 3):
        for b in range(a, n_out + 3):
            singles = None
            for u in range(a, b + 1):
                singles = hull(singles, rule((u, u)))
            assert rule((a, b)) == singles, (a, b)


@pytest.mark.parametrize(
    "mode, n_in, n_out, scale, align",
    [
        ("nearest", 5, 10, None, None),
        ("nearest", 7, 3, None, None),
        ("nearest", 4, 9, None, None),
        ("nearest", 5, 7, 1.5, None),  # scale_factor given: the kernel uses 1/1.5, not 5/7
        ("nearest", 10, 3, 0.3, None),
        ("nearest-exact", 5, 7, None, None),
        ("nearest-exact", 7, 3, None, None),
        ("nearest-exact", 6, 10, 1.7, None),
        ("bilinear", 4, 8, None, False),
        ("bilinear", 5, 7, None, False),
        ("bilinear", 7, 3, None, False),
        ("bilinear", 5, 7, 1.5, False),
        ("bilinear", 4, 8, None, True),
        ("bilinear", 5, 9, None, True),  # integer source positions: lambda 0, one pixel
        ("bilinear", 7, 3, None, True),
        ("bicubic", 4, 8, None, False),
        ("bicubic", 5, 7, None, False),
        ("bicubic", 4, 7, None, True),
        ("area", 7, 3, None, None),
        ("area", 5, 8, None, None),
    ],
)
def test_interpolate_interval_matches_pytorch_index_maps(mode, n_in, n_out, scale, align):
    kw = {"mode": mode, "align_corners": align}
    kw.update({"scale_factor": (1.0, scale)} if scale else {"size": (1, n_out)})
    supports = supports_1d(lambda t: F.interpolate(t, **kw), n_in)
    assert len(supports) == n_out
    assert_rule_matches(lambda iv: interpolate_interval(iv, n_in, n_out, mode, scale, align),
                        supports, n_out)  # fmt: skip


@pytest.mark.parametrize(
    "k, s, p, out_pad, n_in",
    [(3, 2, 1, 1, 5), (4, 2, 1, 0, 5), (2, 2, 0, 0, 4), (1, 2, 0, 1, 4), (5, 3, 2, 2, 4)],
)
def test_conv_transpose_interval_matches_pytorch(k, s, p, out_pad, n_in):
    # (1, 2, 0, 1): odd outputs read no input (bias only) -> None
    w = torch.rand(1, 1, 1, k, dtype=torch.float64) + 0.5

    def fn(t):
        return F.conv_transpose2d(t, w, stride=(1, s), padding=(0, p), output_padding=(0, out_pad))

    supports = supports_1d(fn, n_in)
    n_out = len(supports)
    assert n_out == (n_in - 1) * s - 2 * p + k + out_pad
    for u, support in enumerate(supports):  # units in output_padding reach past the input
        rule = conv_transpose_interval((u, u), k, s, p)
        clipped = rule and (max(rule[0], 0), min(rule[1], n_in - 1))
        assert clipped == ((min(support), max(support)) if support else None), f"unit {u}"


@pytest.mark.parametrize("n_in, n_out", [(7, 3), (10, 4), (5, 8), (13, 7), (6, 6)])
def test_adaptive_interval_matches_adaptive_avg_pool(n_in, n_out):
    supports = supports_1d(lambda t: F.adaptive_avg_pool2d(t, (1, n_out)), n_in)
    assert_rule_matches(lambda iv: adaptive_interval(iv, n_in, n_out), supports, n_out)


@pytest.mark.parametrize(
    "mode, n_in, n_out",
    [("bilinear", 9, 45), ("bilinear", 7, 35), ("bicubic", 9, 45), ("bilinear", 5, 7)],
)
def test_float32_maps_use_float32_source_indices(mode, n_in, n_out):
    # 9 -> 45: output 2's source is 0 exactly, but 0.2f * 2.5 - 0.5 lands a hair past it in
    # float32, so a float32 map reads pixels 0 and 1 there (a float64 map reads pixel 0 only)
    fn = lambda t: F.interpolate(t, size=(1, n_out), mode=mode, align_corners=False)  # noqa: E731
    supports = supports_1d(fn, n_in, torch.float32)
    rule = lambda iv: interpolate_interval(iv, n_in, n_out, mode, single=True)  # noqa: E731
    for u, support in enumerate(supports):
        assert rule((u, u)) == (min(support), max(support)), u
