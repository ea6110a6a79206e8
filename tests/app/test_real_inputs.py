"""Real-image inputs (imagefolder, photos) are normalised with the probed model's own mean/std
(``erf.app.build.build_inputs``); ``inputs.normalize=false`` leaves them in [0, 1]."""

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from erf.app.build import build_inputs, inputs_record
from erf.app.config import CONFIG_DIR
from erf.nets.zoo import timm_model

timm = pytest.importorskip("timm")


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _folder(root):
    (root / "a").mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "a" / "0.png")
    return root


def test_imagefolder_batches_use_the_timm_model_mean_and_std(tmp_path):
    model = timm_model("test_resnet")  # pretrained_cfg mean = std = (0.5, 0.5, 0.5)
    args = ["inputs=imagefolder", f"inputs.root={_folder(tmp_path)}", "inputs.size=[16,16]"]
    args.append("probe.n_samples=1")  # the folder holds one image
    raw = next(iter(build_inputs(_cfg(*args, "inputs.normalize=false"), (3, 16, 16), model)))[0]
    normalised = next(iter(build_inputs(_cfg(*args), (3, 16, 16), model)))[0]
    torch.testing.assert_close(normalised, (raw - 0.5) / 0.5)


@pytest.mark.parametrize("source", ["photos", "imagefolder"])
def test_unnormalised_real_inputs_record_no_normalisation(source):
    cfg = _cfg(f"inputs={source}", "inputs.normalize=false", "+inputs.root=x")
    assert inputs_record(cfg, timm_model("test_resnet"))["inputs_normalization"] is None


def test_real_inputs_without_a_model_are_normalised_with_imagenets_mean_and_std():
    record = inputs_record(_cfg("inputs=photos"), None)["inputs_normalization"]
    assert record == {  # torchvision's published ImageNet statistics
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "source": "ImageNet default"
    }  # fmt: skip


def test_a_source_a_probe_job_cannot_build_is_refused_naming_the_allowed_ones():
    # inputs=dataset belongs to training jobs (erf.app.build.probe_inputs)
    with pytest.raises(ValueError, match=r"^inputs.source='dataset'; allowed: \['gaussian'"):
        build_inputs(_cfg("inputs=dataset"), (3, 16, 16))


def test_an_imagefolder_job_records_the_folder_it_read(tmp_path):
    from erf.app.jobs import run_job
    from erf.io.store import read_json

    root = _folder(tmp_path / "images")
    cfg = _cfg(
        "inputs=imagefolder", f"inputs.root={root}", "inputs.size=[16,16]", "probe.n_samples=1",
        "model.depth=2", "model.channels=3", "fit.bootstrap=0",
    )  # fmt: skip
    run_job(cfg, tmp_path / "job")
    metrics = read_json(tmp_path / "job" / "metrics.json")
    assert (metrics["inputs"], metrics["inputs_root"]) == ("imagefolder", str(root))
    assert metrics["n_samples"] == 1
