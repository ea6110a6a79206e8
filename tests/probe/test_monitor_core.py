"""The ERF monitor's measuring core (erf.probe.monitor): the guard that puts back whatever a
measurement changed, the probing rank, the settings' checks."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from erf.probe.monitor import MonitorSettings, probing_rank, undisturbed


def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))


def test_undisturbed_puts_back_modes_flags_gradients_and_every_generator():
    model = _model().train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    model[0].bias.requires_grad_(False)
    model(torch.randn(2, 1, 5, 5)).sum().backward()
    grad = model[0].weight.grad
    values = grad.clone()
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    with undisturbed(model):
        assert model[0].weight.grad is None  # set aside: nothing accumulates into it
        model.eval()
        model[1].train()
        for p in model.parameters():
            p.requires_grad_(not p.requires_grad)
        model[0].weight.grad = torch.ones_like(model[0].weight)
        torch.rand(3), np.random.rand(3), random.random()
    assert [m.training for m in model] == [True, False, True] and model.training
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
    assert model[0].weight.grad is grad and torch.equal(grad, values)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]


def test_undisturbed_restores_even_when_the_body_raises():
    model = _model().train()
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"), undisturbed(model):
        model.eval()
        torch.rand(5)
        raise RuntimeError("boom")
    assert model.training and torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_undisturbed_measures_with_gradients_inside_no_grad_and_inference_mode(context):
    x = torch.ones(2, requires_grad=True)
    with context(), undisturbed(_model()):
        (grad,) = torch.autograd.grad((3 * x).sum(), x)
    assert grad.tolist() == [3.0, 3.0]


def test_only_rank_0_of_an_initialised_group_probes(monkeypatch):
    assert probing_rank()  # no group: the only process
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    assert not probing_rank()
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 0)
    assert probing_rank()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, "every=0 is not allowed: expected an integer >= 1"),
        ({"every": 2.5}, "every=2.5 is not allowed"),
        ({"input_shape": (1, 0, 8)}, "input_shape=(1, 0, 8) is not allowed"),
        ({"target": 3}, "target=3 is not allowed: expected a module name or null"),
        ({"r2_min": 2}, "r2_min=2 is not allowed: expected a number in [0, 1]"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        MonitorSettings(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_epoch_is_due_when_every_divides_it():
    settings = MonitorSettings(every=3)
    assert [e for e in range(10) if settings.due(e)] == [0, 3, 6, 9]
