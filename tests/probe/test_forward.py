"""Probing leaves the caller's model exactly as it found it (erf.probe.forward.probing)."""

import pytest
import torch
from torch import nn

from erf import measure_erf


def _net():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Conv2d(2, 1, 3))


def test_a_batchnorm_the_user_froze_in_a_training_model_stays_frozen():
    model = _net().train()
    model[1].eval()  # frozen statistics, the rest training
    measure_erf(model, (1, 9, 9), n_samples=2)
    assert model.training and model[0].training and not model[1].training


def test_a_mixed_precision_model_keeps_each_tensor_dtype_and_device():
    model = _net()
    model[3].double()  # the head in float64, the rest float32
    before = {k: v.dtype for k, v in model.state_dict().items()}
    measure_erf(model, (1, 9, 9), n_samples=2, dtype=torch.float32)
    assert {k: v.dtype for k, v in model.state_dict().items()} == before
    assert model[3].weight.dtype == torch.float64 and model[0].weight.dtype == torch.float32


def test_probing_in_float64_leaves_the_float32_gradients_as_they_were():
    model = _net()
    model(torch.randn(2, 1, 9, 9)).sum().backward()
    grad = model[0].weight.grad
    before = grad.clone()
    measure_erf(model, (1, 9, 9), n_samples=2, dtype=torch.float64)
    assert model[0].weight.grad is grad and grad.dtype == torch.float32
    assert torch.equal(grad, before)


def test_a_channels_last_model_comes_back_channels_last_and_a_plain_one_plain():
    model = _net().to(memory_format=torch.channels_last)
    measure_erf(model, (1, 9, 9), n_samples=2, channels_last=False)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = _net()
    measure_erf(plain, (1, 9, 9), n_samples=2, channels_last=True)
    assert plain[0].weight.is_contiguous()


@pytest.mark.parametrize("key", ["compile", "fast", "channels_last"])
def test_a_switch_given_as_a_string_is_refused_not_read_as_true(key):
    with pytest.raises(
        ValueError, match=f"{key}='false' is not allowed: expected (null or )?true or false"
    ):
        measure_erf(_net(), (1, 9, 9), n_samples=2, **{key: "false"})
