"""timm models for real (offline weights, names, checkpoints) and the normalisation each
model's weights expect (``erf.nets.zoo.input_normalization``)."""

import socket

import pytest
import torch
from torch import nn

from erf.nets import ConvStack
from erf.nets.zoo import WeightsUnavailable, input_normalization, timm_model, torchvision_model

timm = pytest.importorskip("timm")

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture
def no_network(monkeypatch):
    """Every connection or DNS lookup is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_pretrained_timm_offline_names_the_file_to_download_without_a_network_call(
    monkeypatch, tmp_path, no_network
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(WeightsUnavailable) as info:
        timm_model("resnet18", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    hub_id = timm.models.get_pretrained_cfg("resnet18").hf_hub_id  # timm/resnet18.a1_in1k
    assert f"download model.safetensors from https://huggingface.co/{hub_id}" in message
    assert "model.checkpoint=<path>" in message
    assert str(tmp_path / "hf" / "hub") in message
    assert no_network == []


def test_pretrained_timm_offline_loads_a_file_placed_in_the_hub_cache(
    monkeypatch, tmp_path, no_network
):
    from safetensors.torch import save_file

    hub_id = timm.models.get_pretrained_cfg("resnet10t").hf_hub_id
    snapshot = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}" / "refs").mkdir()
    (tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}" / "refs" / "main").write_text("abc")
    torch.manual_seed(5)
    weights = timm.create_model("resnet10t").state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, snapshot / "model.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = timm_model("resnet10t", pretrained=True)
    assert torch.equal(model.conv1[0].weight, weights["conv1.0.weight"])
    assert no_network == []


def test_an_unknown_timm_name_lists_close_matches_on_one_line():
    with pytest.raises(ValueError) as info:
        timm_model("resnet181")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown timm model 'resnet181'; close matches: ")
    matches = message.split("close matches: ")[1].split(", ")
    assert "resnet18" in matches and len(matches) <= 5


def test_a_timm_model_loads_a_state_dict_saved_from_the_same_architecture(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("resnet10t")
    torch.save(source.state_dict(), tmp_path / "w.pth")
    torch.manual_seed(2)
    model = timm_model("resnet10t", checkpoint=tmp_path / "w.pth")
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_model_timm_with_model_checkpoint_loads_it_through_build_model(tmp_path):
    from omegaconf import OmegaConf

    from erf.app.build import build_model

    torch.manual_seed(3)
    source = timm.create_model("resnet10t")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")
    cfg = OmegaConf.create(
        {"_target_": "erf.nets.zoo.timm_model", "name": "resnet10t", "pretrained": False,
         "checkpoint": str(tmp_path / "w.pth")}
    )  # fmt: skip
    model = build_model(cfg)
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_a_timm_model_is_normalised_with_its_pretrained_cfg_mean_and_std():
    model = timm_model("vit_tiny_patch16_224")
    mean, std, source = input_normalization(model)
    assert (mean, std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # timm's ViT-AugReg statistics
    assert source == "timm pretrained_cfg (vit_tiny_patch16_224)"


def test_a_timm_model_built_directly_is_normalised_with_its_pretrained_cfg_too():
    mean, std, source = input_normalization(timm.create_model("resnet10t"))
    assert (mean, std) == IMAGENET and source == "timm pretrained_cfg (resnet10t)"


def test_torchvision_weights_normalise_with_their_transforms_mean_and_std(monkeypatch):
    import torchvision.models as tvm

    real_get_model = tvm.get_model
    monkeypatch.setattr(  # no download: the weights' values do not matter here
        tvm, "get_model", lambda name, weights=None, **kw: real_get_model(name, weights=None, **kw)
    )
    mean, std, source = input_normalization(torchvision_model("resnet18", weights="IMAGENET1K_V1"))
    assert (mean, std) == IMAGENET
    assert source == "torchvision ResNet18_Weights.IMAGENET1K_V1"


def test_random_init_torchvision_and_own_models_get_the_imagenet_default():
    for model in (torchvision_model("resnet18"), ConvStack(2, channels=3), nn.Conv2d(3, 1, 3)):
        assert input_normalization(model) == (*IMAGENET, "ImageNet default")
