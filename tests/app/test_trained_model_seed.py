"""A training job's model is built under the run's seed like every other model
(``erf.app.build.build_trained_model``): the same seed gives bitwise the same initial
weights, another seed other weights, for classes that draw their init from torch's RNG."""

from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from erf.app.build import build_trained_model

DATA = SimpleNamespace(name="stub", num_classes=2, in_channels=3)


def _weights(seed, global_seed=0):
    cfg = OmegaConf.create({"seed": seed, "model": {"_target_": "helpers.custom_net.TinyNet"}})
    torch.manual_seed(global_seed)  # the global RNG state before the build must not matter
    return build_trained_model(cfg, DATA).state_dict()


def test_the_same_seed_builds_the_same_trained_model_and_another_seed_another():
    a, b, c = _weights(3, global_seed=1), _weights(3, global_seed=2), _weights(4, global_seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_building_the_trained_model_leaves_the_global_rng_as_it_was():
    torch.manual_seed(9)
    expected = torch.rand(3)
    cfg = OmegaConf.create({"seed": 0, "model": {"_target_": "helpers.custom_net.TinyNet"}})
    torch.manual_seed(9)
    build_trained_model(cfg, DATA)
    assert torch.equal(torch.rand(3), expected)
