"""User rules (erf.rf.register_rule): a module or function the engine does not know gets an
exact TRF once described, through the same rule table as the built-in ops; bad keys, bad rules
and malformed boxes are refused in one line."""

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from erf.rf import register_rule, unregister_rule
from erf.rf.builder import RULES, crop_safe_ops
from erf.rf.graph import graph_rf


class BlurPool(nn.Module):
    """A custom stride-2 average over 3x3 windows (padding 1): each unit u reads [2u-1, 2u+1]."""

    def forward(self, x):
        return F.avg_pool2d(x, 3, 2, 1)


class ChannelCumSum(nn.Module):
    """Spatially pointwise, but through an op the engine has no rule for."""

    def forward(self, x):
        return torch.cumsum(x, dim=1)


def my_gate(x):
    return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


fx.wrap("my_gate")


def _blur_rule(call, box):
    return tuple((2 * a - 1, 2 * b + 1) for a, b in box)


@pytest.fixture
def registered():
    keys = []

    def register(key, rule):
        register_rule(key, rule)
        keys.append(key)

    yield register
    for key in keys:
        unregister_rule(key)


def _net(*layers):
    return nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), *layers, nn.Conv2d(1, 1, 3, padding=1))


def test_a_box_rule_for_a_custom_module_gives_the_closed_form_trf(registered):
    registered(BlurPool, _blur_rule)
    # conv3 -> blur k3 s2 p1 -> conv3: r = 3 + 2 + 2*2 = 9, stride 2, padding 1 + 1 + 2 = 4
    rf = graph_rf(_net(BlurPool()), (1, 16, 16)).for_target(None)
    assert (rf.size, rf.stride, rf.padding) == ((9, 9), (2, 2), (4, 4))
    assert rf.interval((0, 3), clipped=True) == ((0, 4), (2, 10))


def test_the_rule_sees_the_module_and_the_input_and_output_sizes(registered):
    seen = []

    def rule(call, box):
        seen.append((type(call.module).__name__, call.in_hw, call.out_hw))
        return _blur_rule(call, box)

    registered(BlurPool, rule)
    graph_rf(_net(BlurPool()), (1, 16, 12)).for_target(None)
    assert seen[0] == ("BlurPool", (16, 12), (8, 6))


def test_a_custom_module_is_refused_until_it_has_a_rule_and_pointwise_after(registered):
    with pytest.raises(TypeError, match="cumsum"):
        graph_rf(_net(ChannelCumSum()), (1, 9, 9)).for_target(None)
    registered(ChannelCumSum, "pointwise")  # now a leaf with a rule
    assert graph_rf(_net(ChannelCumSum()), (1, 9, 9)).for_target(None).size == (5, 5)


def test_a_wrapped_function_gets_its_rule_by_name(registered):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.b(my_gate(self.a(x)))

    with pytest.raises(TypeError, match="my_gate"):
        graph_rf(Net(), (1, 9, 9)).for_target(None)
    registered("my_gate", "global")
    assert graph_rf(Net(), (1, 9, 9)).for_target(None).is_global


def test_a_rule_that_returns_a_malformed_box_is_refused_in_one_line_naming_it(registered):
    def backwards(call, box):
        return ((box[0][1], box[0][0] - 3), box[1])

    registered(BlurPool, backwards)
    with pytest.raises(
        ValueError, match=r"user rule .*backwards for BlurPool .*malformed box"
    ) as e:
        graph_rf(_net(BlurPool()), (1, 16, 16)).for_target(None)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("key", [42, "not a name", int, None])
def test_registering_something_that_is_neither_a_module_type_nor_a_function_name_fails(key):
    with pytest.raises(TypeError, match="register_rule"):
        register_rule(key, "pointwise")


def test_a_rule_must_be_pointwise_global_or_callable():
    with pytest.raises(TypeError, match="'pointwise', 'global' or a callable"):
        register_rule(BlurPool, "local")
    assert BlurPool not in RULES


def test_user_rules_share_the_table_with_the_built_in_ones(registered):
    assert RULES[nn.Conv2d].source == "erf" and "Conv2d" in crop_safe_ops()
    registered(BlurPool, _blur_rule)
    assert RULES[BlurPool].source == "user" and "BlurPool" not in crop_safe_ops()
    unregister_rule(nn.Conv2d)  # built-ins stay
    assert nn.Conv2d in RULES


def test_the_documented_example_registers_a_rule_that_gives_the_closed_form_trf():
    import re
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "trf.md").read_text()  # was in README.md
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "register_rule" in b]
    scope: dict = {}
    exec(compile(block, "docs/trf.md", "exec"), scope)  # the project's own docs, no user input
    blur = scope["BlurPool"]
    try:
        rf = graph_rf(_net(blur()), (1, 16, 16)).for_target(None)
        assert (rf.size, rf.stride, rf.padding) == ((9, 9), (2, 2), (4, 4))
    finally:
        unregister_rule(blur)
