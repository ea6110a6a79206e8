"""Measured support (erf.probe.support): the union over random inputs of the pixels with a
nonzero input gradient. Oracles: the graph TRF (exact) for nets it can analyse, and nets
built so that the answer is known (a dead side, a global op, an untraceable branch)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from erf.probe.held import hold_context
from erf.probe.support import (
    OWN_WEIGHTS_CONVENTION,
    SUPPORT_CONVENTION,
    SUPPORT_PLAIN_CONVENTION,
    completion_order,
    first_global_layer,
    measured_support,
    support_copy,
    support_trf,
    trf_or_support,
)
from erf.rf.graph import graph_rf
from erf.rf.theory import theoretical_rf
from erf.rf.trf import LOCAL_CONVENTION

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
    trf = trf_or_support(model, shape, "blocks.0", n_inputs=2)  # the graph follows the tokens
    assert trf.source == "graph" and trf.is_global and trf.global_from == "blocks.0.attn"
    assert first.startswith(trf.global_from)


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


# ------------------------------------------------- the architecture, not the init: support_copy


class ZeroInitBranch(nn.Module):
    """x + branch(x), the branch two 3x3 convs whose output is zeroed at init, as timm does:
    ``zero="norm"``: its last BatchNorm's weight is 0 (``zero_init_last``); ``zero="scale"``:
    a zero layer-scale gamma. A data-dependent ``if`` keeps torch.fx out (the fallback runs).
    Oracle by kernel arithmetic: the shortcut reads the unit's own pixel (1x1 stem), the
    branch a 5x5 square (two 3x3 convs), so the architecture's TRF is 5x5."""

    def __init__(self, zero: str = "norm") -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 1)
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2)
        self.gamma = nn.Parameter(torch.ones(2, 1, 1))
        nn.init.zeros_(self.bn2.weight if zero == "norm" else self.gamma)

    def forward(self, x):
        x = self.stem(x)
        y = self.gamma * self.bn2(self.conv2(torch.tanh(self.bn1(self.conv1(x)))))
        return x + y if x.sum() != 12345.0 else x  # the `if` on a tensor: untraceable


@pytest.mark.parametrize("zero", ["norm", "scale"])
def test_a_zero_initialised_branch_counts_in_the_measured_support(zero):
    model = ZeroInitBranch(zero)
    own = measured_support(model, SHAPE, None, n_inputs=2, redraw=False)
    assert own.box == ((16, 16), (16, 16))  # the old fallback: the shortcut's pixel only
    trf = trf_or_support(model, SHAPE, None, n_inputs=2)
    assert trf.source == "measured_support" and "cannot trace" in trf.notes[0]
    assert trf.size == (5, 5) and trf.box == ((14, 18), (14, 18))  # the branch's 5x5
    assert trf.convention == SUPPORT_PLAIN_CONVENTION and not trf.global_context  # no gate
    assert "float64 copy" in trf.convention and "lower bound" not in trf.convention


def _state(model: nn.Module) -> dict:
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "training": {n: m.training for n, m in model.named_modules()},
        "grad": {n: p.requires_grad for n, p in model.named_parameters()},
    }


def test_the_users_model_is_left_bitwise_unchanged():
    model = ZeroInitBranch("norm").train()
    model.conv1.requires_grad_(False)
    before = _state(model)
    trf_or_support(model, SHAPE, None, n_inputs=2)
    first_global_layer(model, SHAPE, None, n_inputs=2)
    after = _state(model)
    assert after["training"] == before["training"] and all(after["training"].values())
    assert after["grad"] == before["grad"]
    for name, t in before["tensors"].items():
        now = after["tensors"][name]
        assert now.dtype == t.dtype and now.device == t.device, name
        assert torch.equal(now, t), name  # bitwise: running stats and zero weights included
    assert not model.bn2.weight.any()


def test_support_copy_redraws_norm_affines_and_zero_tensors_only():
    model = ZeroInitBranch("scale")
    frozen = pytest.importorskip("torchvision.ops").FrozenBatchNorm2d(2)  # affine in buffers
    frozen.weight.zero_()
    model.add_module("frozen", frozen)
    with torch.no_grad():
        model.bn1.running_mean.fill_(3.0)
        model.bn1.running_var.fill_(7.0)
    dup = support_copy(model, seed=3)
    assert all(p.dtype == torch.float64 for p in dup.parameters())
    for bn in (dup.bn1, dup.bn2, dup.frozen):
        assert ((bn.weight >= 0.5) & (bn.weight <= 1.5)).all()
        assert bn.bias.abs().max() > 0 and not torch.equal(bn.bias, torch.zeros(2).double())
        assert not bn.running_mean.any() and torch.equal(bn.running_var, torch.ones(2).double())
    assert dup.gamma.abs().min() > 0 and dup.gamma.abs().max() < 0.2  # was all zero
    for name in ("stem.weight", "conv1.weight", "conv2.bias"):  # random init: kept
        assert torch.equal(dup.get_parameter(name), model.get_parameter(name).double())
    again = support_copy(model, seed=3)
    assert all(
        torch.equal(a, b) for a, b in zip(dup.state_dict().values(), again.state_dict().values())
    )
    assert not torch.equal(support_copy(model, seed=4).bn1.weight, dup.bn1.weight)


def _resnet10t_oracle(model: nn.Module, size: int) -> tuple:
    """The input box where the gradient of layer4's centre unit is nonzero, by hand: a float64
    copy with the zero-initialised (zero_init_last) BatchNorm weights set to 1, eval mode,
    two N(0, 1) inputs."""
    import copy

    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d) and not m.weight.any():
                m.weight.fill_(1.0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=gen, dtype=torch.float64, requires_grad=True)
    out = {}
    hook = ref.layer4.register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    ref(x)
    hook.remove()
    y = out["y"]
    y[:, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    mask = x.grad.abs().sum((0, 1)) > 0
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def test_resnet10t_layer4_support_is_the_architectures_trf():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False)
    assert not any(m.weight.any() for n, m in model.named_modules() if n.endswith("bn2"))
    # The support is probed directly: trf_or_support only falls back to it where the graph
    # analysis refuses (it did, on ResNet-D's avg-pool shortcuts, before 8f25c05). At 224 the
    # TRF, 199 px by kernel arithmetic, spans rows -3..195: 196 px of it inside the input.
    s = measured_support(model, (3, 224, 224), "layer4")
    assert s.box == _resnet10t_oracle(model, 224) == ((0, 195), (0, 195))
    own = measured_support(model, (3, 224, 224), "layer4", redraw=False)
    assert own.size == (43, 43)  # what the raw init's support said
    # 256: the whole 199 px fit inside the input (layer4 is 8x8, its centre unit (4, 4)); the
    # TRF the job gets, measured or from the graph, is that box.
    trf = trf_or_support(model, (3, 256, 256), "layer4")
    assert trf.interval((4, 4), clipped=True) == _resnet10t_oracle(model, 256)
    assert trf.size == (199, 199) and trf.interval((4, 4)) == ((29, 227), (29, 227))


def test_levit_first_stage_is_global_once_its_zero_initialised_norms_are_redrawn():
    timm = pytest.importorskip("timm")
    model = timm.create_model("levit_128s", pretrained=False)
    shape = (3, 224, 224)
    # LeViT's attention/MLP output norms start at weight 0: the raw init sees a 31 px square
    assert not measured_support(model, shape, "stages.0", n_inputs=2, redraw=False).covers_input
    # ... but attention mixes every token of the stage: the TRF is the whole input
    assert measured_support(model, shape, "stages.0", n_inputs=2).covers_input  # redrawn
    trf = trf_or_support(model, shape, "stages.0", n_inputs=2)  # and the graph agrees
    assert trf.source == "graph" and trf.is_global and trf.size == (224, 224)
    assert trf.global_from.startswith("stages.0.blocks.0.attn")


# ------------------------------- gates and norm statistics held constant, as the graph holds them


class Gated(nn.Module):
    """conv 3x3 -> ReLU -> ``mid`` (a gate or a norm over the whole map) -> conv 3x3 -> global
    average pool. ``untraceable``: a data-dependent ``if`` that returns the same either way
    keeps torch.fx out, so ``trf_or_support`` must fall back; the twin without it is the graph's.
    Oracle by kernel arithmetic: the per-pixel path of ``conv2`` reads a 5x5 square."""

    def __init__(self, mid: nn.Module, untraceable: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.act = nn.ReLU()  # exact zeros into the gate: no x / x anywhere
        self.mid = mid
        self.conv2 = nn.Conv2d(8, 2, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.untraceable = untraceable

    def forward(self, x):
        y = self.pool(self.conv2(self.mid(self.act(self.conv1(x)))))
        if self.untraceable and x.sum() == 12345.0:  # the `if` on a tensor
            return y + 0
        return y


def _mid(kind: str) -> nn.Module:
    if kind.startswith("timm."):
        pytest.importorskip("timm")
    from torchvision.ops import SqueezeExcitation

    def timm_layer(module: str, name: str):
        import importlib

        return getattr(importlib.import_module(module), name)

    make = {
        "torchvision.SqueezeExcitation": lambda: SqueezeExcitation(8, 4),
        "timm.SEModule": lambda: timm_layer("timm.layers", "SEModule")(8, rd_channels=4),
        "timm.EcaModule": lambda: timm_layer("timm.layers", "EcaModule")(8),
        "timm.ChannelAttn": lambda: timm_layer("timm.layers.cbam", "ChannelAttn")(8, rd_channels=4),
        "timm.SqueezeExcite": lambda: timm_layer(
            "timm.models._efficientnet_blocks", "SqueezeExcite"
        )(8),
        "GroupNorm(1, 8)": lambda: nn.GroupNorm(1, 8),
        "GroupNorm(4, 8)": lambda: nn.GroupNorm(4, 8),
        "InstanceNorm2d": lambda: nn.InstanceNorm2d(8, affine=True),
        "LayerNorm(C, H, W)": lambda: nn.LayerNorm([8, 32, 32]),
        "timm.GroupNorm1": lambda: timm_layer("timm.layers", "GroupNorm1")(8),
        "timm.GroupNormAct": lambda: timm_layer("timm.layers", "GroupNormAct")(8, num_groups=2),
    }  # fmt: skip
    return make[kind]()


MIDS = [
    "torchvision.SqueezeExcitation", "timm.SEModule", "timm.EcaModule", "timm.ChannelAttn",
    "timm.SqueezeExcite", "GroupNorm(1, 8)", "GroupNorm(4, 8)", "InstanceNorm2d",
    "LayerNorm(C, H, W)", "timm.GroupNorm1", "timm.GroupNormAct",
]  # fmt: skip
LOCAL_5x5 = ((14, 18), (14, 18))


@pytest.mark.parametrize("kind", MIDS)
def test_the_fallback_holds_gates_and_norm_statistics_constant_as_the_graph_does(kind):
    torch.manual_seed(1)  # an init whose squeeze ReLU is alive (at seed 0 it is dead for SE)
    model = Gated(_mid(kind))
    # every dependence counted: the gate / the statistics reach every pixel
    assert measured_support(model, SHAPE, "conv2", n_inputs=2, redraw=False).covers_input
    trf = trf_or_support(model, SHAPE, "conv2", n_inputs=2)
    assert trf.source == "measured_support" and "cannot trace Gated" in trf.notes[0]
    assert trf.box == LOCAL_5x5 and not trf.is_global  # the per-pixel path: 5x5
    assert trf.global_context and trf.convention == SUPPORT_CONVENTION
    assert trf.convention.startswith(LOCAL_CONVENTION) and "float64 copy" in trf.convention
    twin = Gated(model.mid, untraceable=False)
    try:
        graph = theoretical_rf(twin, input_shape=SHAPE, target="conv2")
    except TypeError:  # EcaModule's expand_as has no graph rule: kernel arithmetic only
        assert kind == "timm.EcaModule"
        return
    assert graph.source == "graph" and graph.global_context
    assert graph.interval(CENTRE, clipped=True) == trf.box
    assert graph.convention == LOCAL_CONVENTION


def test_support_records_which_held_modules_ran_before_the_unit():
    model = Gated(_mid("GroupNorm(1, 8)"))
    s = measured_support(model, SHAPE, "conv2", n_inputs=2)
    assert s.held == ("mid",) and s.global_context and s.convention == SUPPORT_CONVENTION
    s = measured_support(model, SHAPE, "act", n_inputs=2)  # before the norm: nothing held
    assert s.held == () and not s.global_context and s.convention == SUPPORT_PLAIN_CONVENTION
    s = measured_support(model, SHAPE, "conv2", n_inputs=2, redraw=False)
    assert s.held == () and s.covers_input and s.convention == OWN_WEIGHTS_CONVENTION


def test_an_instance_norm_with_running_statistics_is_pointwise_and_holds_nothing():
    model = Gated(nn.InstanceNorm2d(8, affine=True, track_running_stats=True))
    trf = trf_or_support(model, SHAPE, "conv2", n_inputs=2)  # the probe runs in eval mode
    assert trf.box == LOCAL_5x5 and not trf.global_context
    assert trf.convention == SUPPORT_PLAIN_CONVENTION


def test_a_global_pool_after_a_gate_is_where_the_support_turns_global():
    model = Gated(_mid("torchvision.SqueezeExcitation"))
    trf = trf_or_support(model, SHAPE, "pool", n_inputs=2)
    assert trf.is_global and trf.size == (32, 32) and not trf.global_context
    assert trf.convention == SUPPORT_PLAIN_CONVENTION
    # the gate's own squeeze path (mid.avgpool, mid.fc1, ...) is global but held constant:
    # the gated map is not, so the first global layer is the pool
    assert trf.global_from == "pool"


@pytest.mark.parametrize("kind", MIDS)
def test_holding_changes_no_value_only_the_gradient(kind):
    """Oracle: the same module with its own class's forward, in float64, same weights."""
    torch.manual_seed(1)
    model = Gated(_mid(kind), untraceable=False).double().eval()
    held = support_copy(model, seed=0)
    ref = Gated(_mid(kind), untraceable=False).double().eval()
    ref.load_state_dict(held.state_dict())  # the copy's redrawn affines, the class forwards
    x = torch.randn(3, *SHAPE, dtype=torch.float64, requires_grad=True)
    y_ref = ref.conv2(ref.mid(ref.act(ref.conv1(x))))
    y_held = held.conv2(held.mid(held.act(held.conv1(x))))
    assert torch.allclose(y_held, y_ref, rtol=1e-10, atol=1e-12)
    plain = Gated(_mid(kind), untraceable=False).double().eval()
    plain.load_state_dict(model.state_dict())
    hold_context(plain)  # in place, no redraw: the model's own function
    assert torch.allclose(plain(x), model(x), rtol=1e-10, atol=1e-12)
    (g_ref,) = torch.autograd.grad(y_ref[0, :, 16, 16].sum(), x)
    (g_held,) = torch.autograd.grad(y_held[0, :, 16, 16].sum(), x)
    assert (g_ref[0, 0] != 0).all()  # through the gate or the statistics: everywhere
    nz = g_held[0, 0].nonzero()
    assert (nz.min(0).values.tolist(), nz.max(0).values.tolist()) == ([14, 14], [18, 18])


def test_maxvit_mbconv_with_its_se_gate_gets_the_graphs_local_box():
    """timm's MaxViT: the graph answers up to the first attention, so its box for the first
    MBConv (whose SE gate it holds constant) is the oracle for the support of the copy."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("maxvit_nano_rw_256", pretrained=False, img_size=64)
    shape, target = (3, 64, 64), "stages.0.blocks.0.conv"
    graph = theoretical_rf(model, input_shape=shape, target=target)
    assert graph.global_context and graph.interval((8, 8), clipped=True) == ((27, 37), (27, 37))
    s = measured_support(model, shape, target, n_inputs=2)
    assert s.position == (8, 8) and s.box == graph.interval((8, 8), clipped=True)
    assert s.held == (f"{target}.se",) and s.global_context


def test_the_job_title_says_local_box_for_a_held_support_as_for_the_graph():
    from erf.io.job import heatmap_title

    model = Gated(_mid("GroupNorm(1, 8)"))
    trf = trf_or_support(model, SHAPE, "conv2", n_inputs=2)
    metrics = {"trf_size": 5.0, "trf_source": "measured_support", "trf_bound": "lower"}
    title = heatmap_title({**metrics, "trf_convention": trf.convention})
    assert title.endswith("(local box: gates and norm statistics held constant)")
    plain = trf_or_support(model, SHAPE, "act", n_inputs=2)  # before the norm
    assert "local box" not in heatmap_title({**metrics, "trf_convention": plain.convention})


def _timm(module: str, name: str):
    import importlib

    pytest.importorskip("timm")
    return getattr(importlib.import_module(module), name)


# The gate classes (and norm settings) the Gated fallback tests above do not build; each runs
# on an NCHW [2, 8, 6, 6] map (SqueezeExciteCl: NHWC), in float64.
HELD_KINDS = {
    "timm.SEModule(add_maxpool)": lambda: _timm("timm.layers", "SEModule")(
        8, rd_channels=4, add_maxpool=True
    ),
    "timm.EffectiveSEModule": lambda: _timm("timm.layers", "EffectiveSEModule")(8),
    "timm.EffectiveSEModule(add_maxpool)": lambda: _timm("timm.layers", "EffectiveSEModule")(
        8, add_maxpool=True
    ),
    "timm.SqueezeExciteCl": lambda: _timm("timm.layers.squeeze_excite", "SqueezeExciteCl")(
        8, rd_channels=4
    ),
    "timm.senet.SEModule": lambda: _timm("timm.models.senet", "SEModule")(8, reduction=2),
    "timm.EseModule": lambda: _timm("timm.models.hgnet", "EseModule")(8),
    "timm.EcaModule(use_mlp)": lambda: _timm("timm.layers", "EcaModule")(8, use_mlp=True),
    "timm.CecaModule": lambda: _timm("timm.layers", "CecaModule")(8),
    "timm.LightChannelAttn": lambda: _timm("timm.layers.cbam", "LightChannelAttn")(
        8, rd_channels=4
    ),
    "GroupNorm(2, 8, affine=False)": lambda: nn.GroupNorm(2, 8, affine=False),
    "LayerNorm(C, H, W, no affine)": lambda: nn.LayerNorm([8, 6, 6], elementwise_affine=False),
    "InstanceNorm2d(no affine)": lambda: nn.InstanceNorm2d(8),
}


SEED = 1


@pytest.mark.parametrize("kind", list(HELD_KINDS))
def test_a_held_gate_or_norm_keeps_its_value_and_its_unit_reads_only_its_own_pixel(kind):
    """Oracle: the class's own forward on the same weights; the held unit's gradient reaches
    its own pixel only (the gate / statistics detached), the class's reaches further."""
    torch.manual_seed(SEED)
    module = HELD_KINDS[kind]().double().eval()
    held = copy.deepcopy(module)
    ctx = hold_context(held)
    assert ctx.gates + ctx.norms == ("",)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    unit = (0, slice(None), 2, 3)
    if kind == "timm.SqueezeExciteCl":  # channels-last
        x, unit = x.permute(0, 2, 3, 1).contiguous(), (0, 2, 3, slice(None))
    x_ref, x_held = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_held = module(x_ref), held(x_held)
    if ctx.gates:
        assert torch.equal(y_held, y_ref)  # the gate recomputed as the class does, bit for bit
    else:
        assert torch.allclose(y_held, y_ref, rtol=1e-10, atol=1e-12)
    assert ctx.ran == [""]
    (g_ref,) = torch.autograd.grad(y_ref[unit].sum(), x_ref)
    (g_held,) = torch.autograd.grad(y_held[unit].sum(), x_held)
    own = torch.zeros_like(x, dtype=torch.bool)
    own[unit] = True
    assert (g_held[~own] == 0).all() and (g_held[own] != 0).any()
    assert (g_ref[~own] != 0).any()  # the class's gate / statistics read other pixels


def test_a_group_norm_on_a_vector_holds_nothing():
    norm = nn.GroupNorm(2, 8).double()
    held = copy.deepcopy(norm)
    ctx = hold_context(held)
    x = torch.randn(3, 8, dtype=torch.float64)
    assert ctx.norms == ("",) and torch.equal(held(x), norm(x)) and ctx.ran == []


def test_a_gate_class_missing_an_attribute_its_held_gate_reads_is_left_as_it_is():
    gate = _timm("timm.layers", "SEModule")(8, rd_channels=4)
    del gate.add_maxpool  # as a timm release without the attribute would build it
    ctx = hold_context(gate)
    assert ctx.gates == () and "forward" not in vars(gate)


class _Floor(nn.Module):
    """conv 3x3, then floor: a step function, whose gradient is zero everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        return torch.floor(self.conv(x))


def test_an_empty_support_has_size_zero_and_no_trf():
    s = measured_support(_Floor(), (1, 8, 8), None, n_inputs=1)
    assert s.box is None and s.size == (0, 0) and not s.mask.any()
    with pytest.raises(ValueError, match=r"support of unit \(4, 4\) of None is empty"):
        support_trf(s)


class ClassTokenMLP(nn.Module):
    """4 x 4 patches (stride 4; 5 x 6 of a 20 x 24 input: 1 + 30 tokens, unambiguous) as
    [B, N, C] tokens behind a learned class token, then a per-token Linear: the grid tokens
    read their patch, the class token reads nothing."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.mlp(torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1))


def test_a_prefix_token_falls_back_to_the_support_which_before_any_mixing_is_empty(caplog):
    empty = pytest.raises(ValueError, match="support of unit prefix:0 of 'mlp' is empty")
    with caplog.at_level("WARNING", logger="erf"), empty:
        trf_or_support(ClassTokenMLP(), (1, 20, 24), "mlp", "prefix:0", n_inputs=1)
    assert "the graph analysis boxes grid units only, not prefix tokens" in caplog.text


class _ChannelsLastNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.LayerNorm(4)  # uniform weights: the all-channel unit gradient is zero

    def forward(self, x):
        return self.norm(self.conv(x).permute(0, 2, 3, 1))


def test_the_support_probe_keeps_the_probes_own_warnings_out_of_the_log(caplog):
    from erf.probe.measure import probe_units
    from erf.probe.options import ProbeOptions

    model = _ChannelsLastNorm()
    with caplog.at_level("WARNING", logger="erf"):
        probe_units(model, (1, 8, 8), [("norm", "center")], ProbeOptions(n_samples=1))
    assert "LayerNorm over the channels with uniform weights" in caplog.text  # the probe warns
    caplog.clear()
    with caplog.at_level("WARNING", logger="erf"):
        s = measured_support(model, (1, 8, 8), "norm", n_inputs=1, redraw=False)
    assert s.box is None and caplog.text == ""


def test_a_model_without_submodules_has_no_first_global_layer():
    class Bare(nn.Module):  # a global output, but no module to name
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(2, 1, 3, 3))

        def forward(self, x):
            return torch.conv2d(x, self.w, padding=1).mean((2, 3), keepdim=True)

    assert first_global_layer(Bare(), (1, 8, 8), None, redraw=False) is None


def test_a_module_the_forward_never_calls_cannot_be_a_target():
    class Spare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.spare = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 1)

        def forward(self, x):  # spare is registered, never called
            return self.conv(x)

    model = Spare()
    with pytest.raises(ValueError, match="module 'spare' was not called in the forward pass"):
        completion_order(model, (1, 8, 8), "spare")


def test_the_fallback_checks_n_inputs_once_the_graph_refuses():
    class CumSum(nn.Module):  # cumsum has no graph rule
        def forward(self, x):
            return torch.cumsum(x, 2)

    with pytest.raises(ValueError, match="n_inputs must be >= 1, got 0"):
        trf_or_support(CumSum(), (1, 8, 8), None, n_inputs=0)
