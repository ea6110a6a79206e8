"""Measured support (erf.probe.support): the union over random inputs of the pixels with a
nonzero input gradient. Oracles: the graph TRF (exact) for nets it can analyse, and nets
built so that the answer is known (a dead side, a global op, an untraceable branch)."""

import numpy as np
import pytest
import torch
from torch import nn

from erf.probe.support import (
    completion_order,
    first_global_layer,
    measured_support,
    support_trf,
    trf_or_support,
)
from erf.rf.graph import graph_rf

SHAPE = (1, 32, 32)
CENTRE = (16, 16)


def _conv_stack() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(),
        nn.Conv2d(2, 2, 3, padding=1), nn.Tanh(),
        nn.Conv2d(2, 2, 3, padding=1),
    )  # fmt: skip


def test_support_of_a_smooth_conv_stack_is_its_exact_trf_box():
    model = _conv_stack()
    exact = graph_rf(model, SHAPE).for_target(None).interval(CENTRE, clipped=True)
    assert exact == ((13, 19), (13, 19))  # 7x7 around (16, 16)
    s = measured_support(model, SHAPE, None, n_inputs=2)
    assert s.box == exact and s.size == (7, 7)
    assert s.mask.sum() == 49 and not s.covers_input
    assert s.position == CENTRE and (s.n_inputs, s.seed) == (2, 0)


def test_a_dead_side_gives_a_support_strictly_inside_the_trf():
    model = _conv_stack()
    with torch.no_grad():
        model[0].weight[..., 0] = 0  # the first conv never reads its left neighbour
    exact = graph_rf(model, SHAPE).for_target(None).interval(CENTRE, clipped=True)
    s = measured_support(model, SHAPE, None, n_inputs=2)
    (r0, r1), (c0, c1) = exact
    inside = np.zeros_like(s.mask)
    inside[r0 : r1 + 1, c0 : c1 + 1] = True
    assert (s.mask <= inside).all() and s.mask.sum() < inside.sum()  # lower bound, not equal
    assert s.box == ((13, 19), (14, 19))  # loses exactly the leftmost column


class PoolBroadcast(nn.Module):
    """x + a 1x1 conv of the spatial mean, broadcast back: every unit sees every pixel."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return x + self.proj(self.pool(x)).expand_as(x)


class TinyAttention(nn.Module):
    """Single-head self-attention over the flattened tokens, reshaped back to NCHW."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(c, 3 * c)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # [B, N, C]
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(1, 2) / c**0.5, dim=-1) @ v
        return a.transpose(1, 2).reshape(b, c, h, w)


@pytest.mark.parametrize(
    "mixer, first", [(PoolBroadcast, "mix.pool"), (TinyAttention, "mix")], ids=["pool", "attn"]
)
def test_a_global_op_covers_the_input_and_first_global_layer_names_it(mixer, first):
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(1, 2, 3, padding=1))
    model.add_module("act", nn.Tanh())
    model.add_module("mix", mixer(2))
    model.add_module("head", nn.Conv2d(2, 2, 3, padding=1))
    assert not measured_support(model, SHAPE, "act", n_inputs=2).covers_input
    s = measured_support(model, SHAPE, "head", n_inputs=2)
    assert s.covers_input and s.box == ((0, 31), (0, 31))
    assert first_global_layer(model, SHAPE, "head", n_inputs=2) == first
    assert first_global_layer(model, SHAPE, "act", n_inputs=2) is None
    trf = support_trf(s, global_from=first)
    assert trf.is_global and trf.size == (32, 32) and trf.global_from == first


class _Pair(nn.Module):
    def forward(self, x):
        return x, x.mean()


class _First(nn.Module):
    def forward(self, pair):
        return pair[0]


def test_completion_order_lists_readable_outputs_up_to_the_target():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Tanh(), _Pair(), _First(), nn.Conv2d(2, 2, 3), nn.Flatten()
    )
    assert completion_order(model, SHAPE, "1") == ["0", "1"]
    # the tuple output of "2" is not a tensor the probe can read; a [B, C] vector is
    assert completion_order(model, SHAPE) == ["0", "1", "3", "4", "5"]


def test_an_untraceable_net_falls_back_to_the_measured_support_with_the_reason(caplog):
    from helpers.custom_net import BranchyNet

    model = BranchyNet()
    with caplog.at_level("WARNING", logger="erf"):
        trf = trf_or_support(model, (3, 32, 32), None, "center", seed=0, n_inputs=2)
    assert trf.source == "measured_support" and not trf.is_global
    assert trf.size == (5, 5) and trf.interval(CENTRE) == ((14, 18), (14, 18))
    assert trf.notes[0].startswith("TRF from measured support over 2 random inputs")
    assert "cannot trace BranchyNet" in trf.notes[0]
    assert "\n" not in trf.notes[0] and trf.notes[0] in caplog.text


def test_trf_or_support_keeps_the_exact_trf_when_the_graph_can_say():
    trf = trf_or_support(_conv_stack(), SHAPE, None, "center")
    assert trf.source == "closed_form" and trf.size == (7, 7)
    pooled = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1))
    trf = trf_or_support(pooled, SHAPE, None, "center")
    assert trf.source == "graph" and trf.is_global and trf.global_from == "1"


def test_bad_arguments_are_one_line_value_errors():
    with pytest.raises(ValueError, match="n_inputs must be >= 1"):
        measured_support(_conv_stack(), SHAPE, None, n_inputs=0)
    with pytest.raises(ValueError, match="no module named 'nope'"):
        completion_order(_conv_stack(), SHAPE, "nope")


# --------------------------------------------------------------------------- timm (tokens)


def test_vit_patch_token_sees_its_patch_and_one_block_of_attention_sees_everything():
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64)
    shape = (3, 64, 64)
    s = measured_support(model, shape, "patch_embed", n_inputs=2)
    assert s.target_shape == (192, 4, 4) and s.position == (2, 2)
    assert s.box == ((32, 47), (32, 47)) and s.mask.sum() == 16 * 16  # its own 16x16 patch
    s = measured_support(model, shape, "blocks.0", n_inputs=2)
    assert s.covers_input
    first = first_global_layer(model, shape, "blocks.0", n_inputs=2)
    assert first.startswith("blocks.0.attn.")  # the attention, not the qkv projection
    assert first not in ("blocks.0.attn.qkv", "blocks.0.attn.q_norm", "blocks.0.attn.k_norm")
    trf = trf_or_support(model, shape, "blocks.0", n_inputs=2)
    assert trf.source == "measured_support" and trf.is_global and trf.global_from == first
    assert "token outputs are not supported" in trf.notes[0]


def test_swin_first_stage_is_local_two_shifted_windows_wide():
    timm = pytest.importorskip("timm")
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=112)
    shape = (3, 112, 112)
    # Oracle by window arithmetic on the 28x28 token grid (4x4 patches, 7x7 windows): block 0
    # keeps token 14 in its window 14..20; block 1 (shift 3) mixes tokens 10..16, which block 0
    # had mixed with windows 7..13 and 14..20: tokens 7..20 = pixels 28..83.
    s = measured_support(model, shape, "layers.0.blocks.0", n_inputs=2)
    assert s.position == (14, 14) and s.box == ((56, 83), (56, 83))
    s = measured_support(model, shape, "layers.0", n_inputs=2)
    assert s.box == ((28, 83), (28, 83)) and not s.covers_input
    assert first_global_layer(model, shape, "layers.0", n_inputs=2) is None
