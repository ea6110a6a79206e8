"""Real-model loading and real-image inputs, offline: weights from files, clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from erf.nets.zoo import WeightsUnavailable, load_checkpoint, timm_model, torchvision_model
from erf.probe.inputs import image_folder


def test_torchvision_model_without_weights_is_built_offline():
    model = torchvision_model("resnet18")
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)


def test_unknown_torchvision_model_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: .*resnet50"):
        torchvision_model("resnet5")


def test_weights_from_a_state_dict_path_are_loaded(tmp_path):
    source = torchvision_model("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    loaded = torchvision_model("resnet18", weights=str(path))
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_unknown_weights_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        torchvision_model("resnet18", weights="IMAGENET9K")


def test_unreachable_pretrained_weights_name_the_cache_file_to_fill(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailable) as info:
        torchvision_model("resnet18", weights="DEFAULT")
    message = str(info.value)
    assert str(tmp_path / "checkpoints" / "resnet18-") in message
    assert "\n" not in message


def test_missing_or_corrupt_or_mismatched_checkpoints_are_one_line_errors(tmp_path):
    model = torch.nn.Conv2d(1, 1, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(model, tmp_path / "nope.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="could not be read"):
        load_checkpoint(model, tmp_path / "bad.pth")
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsUnavailable, match="does not fit"):
        load_checkpoint(model, tmp_path / "other.pth")


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"state": {}}, "epoch": 3},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DistributedDataParallel
        lambda sd: {"model": {f"_orig_mod.{k}": v for k, v in sd.items()}},  # torch.compile
    ],
    ids=["state_dict", "model_state_dict", "ddp_prefix", "compiled_prefix"],
)
def test_a_training_checkpoint_of_the_same_architecture_is_accepted(tmp_path, wrap):
    source = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    torch.save(wrap(source.state_dict()), tmp_path / "c.pth")
    target = load_checkpoint(
        torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)), tmp_path / "c.pth"
    )
    assert torch.equal(target[0].weight, source[0].weight)


def test_timm_model_without_timm_installed_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_timm(name, *args, **kwargs):
        if name == "timm":
            raise ImportError("no timm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(ValueError, match="pip install timm"):
        timm_model("resnet18")


def _write_images(root, n_per_class=3, size=(40, 30)):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")


def test_image_folder_yields_resized_centre_cropped_normalised_batches(tmp_path):
    _write_images(tmp_path)
    loader = image_folder(str(tmp_path), (16, 16), batch_size=4)
    batches = [x for x, _ in loader]
    assert [b.shape for b in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
    assert batches[0].min() < 0  # ImageNet normalisation moves pixels below 0


def test_image_folder_order_is_a_seeded_shuffle(tmp_path):
    _write_images(tmp_path)
    first = [next(iter(image_folder(str(tmp_path), (8, 8), 6, seed=s)))[1].tolist() for s in (0, 0)]
    assert first[0] == first[1]


def test_missing_image_folder_says_where_to_put_the_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageFolder layout"):
        image_folder(str(tmp_path / "missing"), (8, 8), 2)


def test_segmentation_models_build_offline_without_backbone_weights(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    model = torchvision_model("fcn_resnet50")
    assert model.eval()(torch.zeros(1, 3, 32, 32))["out"].shape == (1, 21, 32, 32)


def test_a_truncated_image_is_named_in_one_line(tmp_path):
    _write_images(tmp_path)
    good = next((tmp_path / "cats").iterdir()).read_bytes()
    (tmp_path / "cats" / "bad.png").write_bytes(good[: len(good) // 3])
    loader = image_folder(str(tmp_path), (8, 8), batch_size=64)
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png") as err:
        list(loader)
    assert "\n" not in str(err.value)


def test_fewer_images_than_samples_is_refused(tmp_path):
    _write_images(tmp_path)
    with pytest.raises(ValueError, match="has 6 images but probe.n_samples=64"):
        image_folder(str(tmp_path), (8, 8), batch_size=4, n_samples=64)
