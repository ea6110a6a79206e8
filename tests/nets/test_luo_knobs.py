"""The study knobs of erf.nets.luo: ConvStack's weight_scale (init gain), ResidualStack's
branch_scale (alpha in act(x + alpha * branch(x))) and batch_norm (calibrated statistics)."""

import pytest
import torch
from torch import nn

from erf import ConvStack, measure_erf, theoretical_rf
from erf.nets.luo import ResidualStack


def test_weight_scale_multiplies_the_init_and_keeps_its_seed():
    base = ConvStack(depth=2, channels=3, init="random", seed=4)
    gained = ConvStack(depth=2, channels=3, init="random", seed=4, weight_scale=4)
    for a, b in zip(base, gained):
        if isinstance(a, nn.Conv2d):
            torch.testing.assert_close(b.weight, 4 * a.weight)


def test_weight_scale_saturates_tanh_but_only_scales_a_linear_stack():
    shape = (4, 15, 15)
    maps = {}
    for act in ("none", "tanh"):
        for gain in (1, 8):
            net = ConvStack(depth=4, channels=4, init="random", activation=act, weight_scale=gain)
            maps[act, gain] = measure_erf(net.double(), shape, n_samples=4, dtype=torch.float64).map
    lin = maps["none", 8] / maps["none", 8].max()
    torch.testing.assert_close(
        torch.from_numpy(lin), torch.from_numpy(maps["none", 1] / maps["none", 1].max())
    )
    tanh = maps["tanh", 8] / maps["tanh", 8].max()
    assert abs(tanh - maps["tanh", 1] / maps["tanh", 1].max()).max() > 0.05


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_non_positive_weight_scale_is_refused(bad):
    with pytest.raises(ValueError, match="weight_scale"):
        ConvStack(depth=2, weight_scale=bad)


def test_branch_scale_zero_leaves_the_identity_and_the_trf_unchanged():
    net = ResidualStack(blocks=3, channels=2, branch_scale=0.0)
    shape = (2, 21, 21)
    assert theoretical_rf(net, shape).size == (13, 13)  # 1 + 4 * 3: every branch still counts
    m = measure_erf(net, shape, n_samples=2).map
    assert (m > 0).sum() == 1 and m[10, 10] > 0  # only the centre pixel: relu(relu(x))


def test_branch_scale_one_is_the_usual_block_and_alpha_scales_the_branch():
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    plain = ResidualStack(blocks=1, channels=3, activation="none", seed=1)
    half = ResidualStack(blocks=1, channels=3, activation="none", seed=1, branch_scale=0.5)
    block = plain[0]
    branch = block.conv2(block.conv1(x))
    torch.testing.assert_close(plain(x), x + branch)
    torch.testing.assert_close(half(x), x + 0.5 * branch)


def test_a_negative_branch_scale_is_refused():
    with pytest.raises(ValueError, match="branch_scale"):
        ResidualStack(blocks=1, branch_scale=-0.5)


def test_batch_norm_is_calibrated_on_noise_and_left_in_eval_mode():
    net = ResidualStack(blocks=2, channels=4, batch_norm=True, seed=3)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 4 and not net.training
    assert all(int(bn.num_batches_tracked) == 4 for bn in norms)
    # the first conv of a Kaiming stack on N(0, 1) inputs has per-channel variance ~ 2
    var = norms[0].running_var
    assert ((var > 0.5) & (var < 8)).all()
    # in eval mode the branch output is normalised: near zero mean, unit variance per channel
    x = torch.randn(32, 4, 32, 32, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        z = net[0].bn1(net[0].conv1(x))
    assert z.mean().abs() < 0.1 and (z.var(dim=(0, 2, 3)) - 1).abs().max() < 0.2
    again = ResidualStack(blocks=2, channels=4, batch_norm=True, seed=3)
    torch.testing.assert_close(again[1].bn2.running_var, net[1].bn2.running_var)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ConvStack(depth=10, kernel_size=101, channels=2000),
        lambda: ResidualStack(blocks=5, kernel_size=101, channels=2000),
    ],
    ids=["conv_stack", "residual_stack"],
)
def test_a_stack_of_more_than_2_31_weights_is_refused_before_it_allocates(build):
    with pytest.raises(ValueError, match=r"more than 2\^31") as e:
        build()
    assert "\n" not in str(e.value)
