"""Graph TRF of window attention: timm's Swin (window partition, shifted windows with
torch.roll, patch merging). Oracles: window arithmetic, and the gradient support of a float64
copy with positive weights (nothing cancels) for the centre row, the centre column and the
corners of each stage."""

import pytest
import torch
from helpers.gradient_support import mask_bounds, positive_float64
from torch import nn

from erf.rf.graph import graph_rf

timm = pytest.importorskip("timm")
SHAPE = (3, 64, 64)  # 4 x 4 patches: a 16 x 16 token grid, 4 x 4 windows, shift 2


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    model = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, img_size=64, window_size=4
    )
    return positive_float64(model)


@pytest.fixture(scope="module")
def graph(swin):
    return graph_rf(swin, SHAPE)


def _support_boxes(model, target, units):
    """Per (row, col) of ``target``'s [B, H, W, C] output: the bounding box of the input
    pixels its gradient reaches."""
    out = {}
    handle = dict(model.named_modules())[target].register_forward_hook(
        lambda m, i, o: out.setdefault("y", o)
    )
    x = (torch.rand(1, *SHAPE, dtype=torch.float64) + 0.5).requires_grad_()
    try:
        model(x)
    finally:
        handle.remove()
    boxes = []
    for r, c in units:
        (grad,) = torch.autograd.grad(out["y"][0, r, c].sum(), x, retain_graph=True)
        boxes.append(mask_bounds((grad[0].abs().sum(0) != 0).numpy()))
    return boxes


def _probe_units(h, w):
    units = {(h // 2, c) for c in range(w)} | {(r, w // 2) for r in range(h)}
    return sorted(units | {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)})


@pytest.mark.parametrize(
    "target", ["layers.0.blocks.0", "layers.0", "layers.1.downsample", "layers.1"]
)
def test_swin_stage_units_get_exactly_the_box_of_their_gradient_support(swin, graph, target):
    h, w = graph.nodes[graph.node_name(target)].shape[:2]
    units = _probe_units(h, w)
    engine = [graph.unit_interval(target, u, clipped=True) for u in units]
    assert engine == _support_boxes(swin, target, units)


def test_a_swin_unit_reads_its_window_before_the_shift(graph):
    # token (8, 8) sits in window rows 8..11 and cols 8..11: pixels 32..47
    rf = graph.for_target("layers.0.blocks.0")
    assert rf.interval((8, 8)) == ((32, 47), (32, 47))
    assert rf.varies_by_unit and rf.size_range == ((16, 16), (16, 16))


def test_the_shifted_block_joins_neighbouring_windows_and_its_wrapped_window(graph):
    # block 1 rolls by 2: token 8 reads tokens 6..9 of block 0, which read windows 4..11;
    # the last window wraps (the shift mask of -100 weakens, not cuts, the dependence)
    rf = graph.for_target("layers.0")
    assert rf.interval((8, 8)) == ((16, 47), (16, 47))
    assert rf.size_range == ((32, 64), (32, 64))


def test_patch_merging_halves_the_token_grid(graph):
    rf = graph.for_target("layers.1.downsample")
    assert rf.out_shape == (8, 8)
    assert rf.interval((4, 4)) == graph.unit_interval("layers.0", (8, 8)) == ((16, 47),) * 2


def test_a_node_inside_the_windows_is_refused_as_a_target_in_one_line(graph):
    with pytest.raises(ValueError, match="split into windows") as e:
        graph.for_target("layers.0.blocks.0.attn")
    assert "\n" not in str(e.value)


class WindowsThenConv(nn.Module):
    """A map split into 2 x 2 windows (window index in the batch dim), then a conv on the
    windows: no rule reads a conv over window positions."""

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        t = t.reshape(-1, c, 2, 2)
        return nn.functional.avg_pool2d(t, 2)


def test_an_op_without_a_window_rule_is_refused_in_one_line_naming_its_node():
    with pytest.raises(TypeError, match="avg_pool2d.*split into windows") as e:
        graph_rf(WindowsThenConv(), (1, 8, 8))
    assert "\n" not in str(e.value)
