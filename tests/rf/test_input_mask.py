"""``GraphRF.input_mask``: the exact set of input pixels a unit depends on (the atlas shares
backward passes by it). Oracles by hand: dilation leaves gaps, circular padding wraps to the
opposite border, reflection reads only pixels inside the input, a global target reads all."""

import numpy as np
import pytest
from torch import nn

from erf.rf.graph import graph_rf


def _pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(mask))}


def test_a_dilated_kernel_reads_every_other_pixel():
    graph = graph_rf(nn.Conv2d(1, 1, 3, dilation=2, padding=2), (1, 9, 9))
    assert _pixels(graph.input_mask(None, (4, 4))) == {(r, c) for r in (2, 4, 6) for c in (2, 4, 6)}


@pytest.mark.parametrize(
    "mode, rows",
    [("zeros", {0, 1}), ("reflect", {0, 1}), ("circular", {7, 0, 1})],
)
def test_the_corner_unit_reads_what_its_padding_reads(mode, rows):
    graph = graph_rf(nn.Conv2d(1, 1, 3, padding=1, padding_mode=mode), (1, 8, 8))
    assert _pixels(graph.input_mask(None, (0, 0))) == {(r, c) for r in rows for c in rows}


def test_every_unit_of_a_global_target_reads_the_whole_input():
    graph = graph_rf(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1)), (1, 6, 6))
    assert graph.input_mask(None, (0, 0)).all()
