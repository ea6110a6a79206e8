"""Property-based: closed-form TRF, graph TRF and the measured gradient's support agree
on random chains of convolutions and average pools."""

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from erf.rf.graph import graph_rf
from erf.rf.theory import theoretical_rf

SIZE = 48


@st.composite
def layer_specs(draw):
    """(kind, kernel, stride, padding, dilation) per layer; pools have dilation 1."""
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "avgpool"]))
        k = draw(st.integers(1, 5))
        s = draw(st.integers(1, 3))
        d = draw(st.integers(1, 3)) if kind == "conv" else 1
        p = draw(st.integers(0, k // 2))
        layers.append((kind, k, s, p, d))
    return layers


def _model(specs):
    layers = []
    for kind, k, s, p, d in specs:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
            nn.init.constant_(conv.weight, 1.0)
            layers.append(conv)
        else:
            layers.append(nn.AvgPool2d(k, stride=s, padding=p))
    return nn.Sequential(*layers).double().eval()


def _gap_free(specs):
    """Every kernel's taps are closer together than the RF of the layers before them."""
    r, stride = 1, 1
    for _, k, s, _, d in specs:
        if k > 1 and d * stride > r:
            return False
        r, stride = r + (d * (k - 1)) * stride, stride * s
    return True


def _support_box(model, unit):
    x = torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    y = model(x)
    y[0, 0, unit[0], unit[1]].backward()
    return x.grad[0, 0].numpy() != 0


def _read_by_any_unit(model):
    """Input pixels that some output unit reads: a strided layer whose windows do not reach
    the end of its input drops the trailing pixels, which no TRF box can know about."""
    x = torch.ones(1, 1, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    return x.grad[0, 0].numpy() != 0


@settings(max_examples=40, deadline=None, derandomize=True)  # same examples every CI run
@given(specs=layer_specs())
def test_closed_form_graph_and_gradient_support_agree(specs):
    model = _model(specs)
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 1, SIZE, SIZE, dtype=torch.float64))
    except RuntimeError:  # the input is too small for this chain
        assume(False)

    closed = theoretical_rf([(k, s, p, d) for _, k, s, p, d in specs], input_shape=(SIZE, SIZE))
    graph = graph_rf(model, (1, SIZE, SIZE)).for_target(None)
    assert (graph.size, graph.stride, graph.padding) == (closed.size, closed.stride, closed.padding)

    unit = (out.shape[-2] // 2, out.shape[-1] // 2)
    support = _support_box(model, unit)
    (r0, r1), (c0, c1) = closed.interval(unit, clipped=True)
    box = np.zeros_like(support)
    box[r0 : r1 + 1, c0 : c1 + 1] = True
    if _gap_free(specs):  # the whole box, less trailing pixels no unit reads
        assert np.array_equal(support, box & _read_by_any_unit(model))
    else:  # dilated / strided taps leave holes: inside the box, and it is the bounding box
        assert not (support & ~box).any()  # unless the border cut off the outermost taps
        if closed.interval(unit) == closed.interval(unit, clipped=True):
            rows, cols = np.nonzero(support)
            assert (rows.min(), rows.max(), cols.min(), cols.max()) == (r0, r1, c0, c1)
