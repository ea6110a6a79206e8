"""A training job's model and probe inputs follow its data (erf.app.build: build_trained_model,
probe_shape, probe_inputs): settings that contradict the data are refused in one line before
anything is written, and ``inputs=dataset`` probes on the val images in order."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from erf.app.build import build_data_from, build_trained_model, probe_inputs, probe_shape
from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job

TRAIN = ["setting=classification", "data.train_size=8", "data.val_size=8", "model.blocks=1"]


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[*TRAIN, *overrides])


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model.classes=3",
            "model.classes=3 but generated_classification has 4 classes; set model.classes=null",
        ),
        ("model.in_channels=1", "model.in_channels=1 but generated_classification images have 3"),
        ("inputs.channels=1", "inputs.channels=1 but the data has 3"),
        (
            "inputs=dataset inputs.size=[16,16]",
            "inputs.source=dataset probes on the 32x32 val images; inputs.size=[16, 16] differs",
        ),
    ],
)
def test_settings_that_contradict_the_data_are_refused_before_anything_is_written(
    tmp_path, override, message
):
    job = tmp_path / "job"
    with pytest.raises(ValueError) as info:
        run_job(_cfg(*override.split()), job)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not job.exists()


@pytest.mark.parametrize("classes", ["null", "4"])
def test_the_model_gets_as_many_outputs_as_the_data_has_classes(classes):
    cfg = _cfg(f"model.classes={classes}")
    model = build_trained_model(cfg, build_data_from(cfg))
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert last.out_features == 4  # generated_classification: one class per radius, 4 radii


def test_dataset_inputs_are_the_val_images_in_order_in_probe_sized_batches():
    cfg = _cfg("inputs=dataset", "probe.batch_size=3", "data.val_size=5")
    data = build_data_from(cfg)
    shape = probe_shape(cfg, data)
    assert shape == (3, 32, 32)
    batches = list(probe_inputs(cfg, data, shape))
    assert [len(b[0]) for b in batches] == [3, 2]
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    for i in range(5):
        x, y = data.val[i]
        assert torch.equal(images[i], x) and labels[i] == y
