"""Every model source is built under the run's seed: the same ``seed`` gives bitwise the same
weights (torchvision, timm, user classes), another seed other weights, and metrics.json
records ``model_seed``."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from erf.app.build import seeded_model
from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job

SOURCES = {
    "torchvision resnet18": ["model=torchvision", "model.name=resnet18"],
    "timm resnet10t": ["model=timm", "model.name=resnet10t"],
    "custom TinyNet": ["model=custom", "+model._target_=helpers.custom_net.TinyNet"],
}


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _weights(overrides, seed):
    if "model=timm" in overrides:
        pytest.importorskip("timm")
    cfg = _cfg(*overrides, f"seed={seed}")
    torch.manual_seed(1000 + seed)  # the global RNG state before the build must not matter
    return seeded_model(cfg.model, cfg.seed).state_dict()


@pytest.mark.parametrize("overrides", SOURCES.values(), ids=SOURCES.keys())
def test_the_same_seed_builds_bitwise_equal_weights(overrides):
    a, b = _weights(overrides, 3), _weights(overrides, 3)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("overrides", SOURCES.values(), ids=SOURCES.keys())
def test_another_seed_builds_other_weights(overrides):
    a, b = _weights(overrides, 3), _weights(overrides, 4)
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_building_a_model_leaves_the_global_rng_as_it_was():
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    seeded_model(_cfg(*SOURCES["custom TinyNet"]).model, 0)
    assert torch.equal(torch.rand(3), expected)


TINY = ["model.depth=2", "model.channels=1", "probe.n_samples=2", "probe.batch_size=2"]


def test_a_measurement_records_its_model_seed_and_no_normalisation_for_noise(tmp_path):
    metrics = run_job(_cfg(*TINY, "seed=5"), tmp_path)
    assert metrics["model_seed"] == 5
    assert metrics["inputs"] == "gaussian"
    assert metrics["inputs_normalization"] is None  # noise is already in normalised units


def test_photos_on_a_timm_model_are_normalised_with_its_pretrained_cfg(tmp_path):
    pytest.importorskip("timm")
    pytest.importorskip("skimage")
    cfg = _cfg(
        "model=timm", "model.name=test_resnet", "inputs=photos", "inputs.size=[32,32]",
        "probe.n_samples=2", "probe.batch_size=2", "probe.target=layer1",
    )  # fmt: skip
    metrics = run_job(cfg, tmp_path)
    assert metrics["inputs_normalization"] == {
        "mean": [0.5, 0.5, 0.5],  # timm's test_resnet pretrained_cfg (not ImageNet's)
        "std": [0.5, 0.5, 0.5],
        "source": "timm pretrained_cfg (test_resnet)",
    }
