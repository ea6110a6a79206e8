"""``model._target_`` names a model, nothing else (erf.app.build.check_model_targets): every
target is checked before Hydra calls anything. Marker payloads show nothing ran."""

import pickle

import pytest
from omegaconf import OmegaConf
from torch import nn

from erf.app.build import build_model


class _WritesMarker:
    """Unpickling it creates the file ``path`` (what a crafted checkpoint would do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _build(**spec):
    return build_model(OmegaConf.create(spec))


def test_builtins_open_is_refused_before_it_truncates_a_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    with pytest.raises(ValueError, match="not a torch nn.Module class") as e:
        _build(_target_="builtins.open", file=str(victim), mode="w")
    assert victim.read_text() == "precious" and "\n" not in str(e.value)


def test_torch_load_of_a_crafted_pickle_is_refused_before_it_runs(tmp_path):
    marker, payload = tmp_path / "ran", tmp_path / "payload.pt"
    payload.write_bytes(pickle.dumps(_WritesMarker(marker)))
    with pytest.raises(ValueError, match="torch.load"):
        _build(_target_="torch.load", f=str(payload), weights_only=False)
    assert not marker.exists()


def test_a_nested_target_is_checked_too(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    spec = {"_target_": "builtins.open", "file": str(victim), "mode": "w"}
    with pytest.raises(ValueError, match=r"model\.block\._target_"):
        _build(_target_="torch.nn.Sequential", block=spec)
    assert victim.read_text() == "precious"


def make_net(width: int = 2) -> nn.Module:
    return nn.Conv2d(1, width, 3)


@pytest.mark.parametrize(
    "spec",
    [
        {"_target_": "torch.nn.Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
        {"_target_": "erf.nets.luo.ConvStack", "depth": 2},
        {"_target_": "erf.nets.zoo.torchvision_model", "name": "resnet18"},
        {"_target_": f"{__name__}.make_net", "width": 3},
    ],
    ids=["module_class", "erf_net", "erf_factory", "annotated_factory"],
)
def test_module_classes_and_factories_annotated_to_return_a_module_are_built(spec):
    assert isinstance(_build(**spec), nn.Module)


def test_a_missing_module_says_how_to_put_it_on_the_path():
    with pytest.raises(ValueError, match="PYTHONPATH") as e:
        _build(_target_="no_such_pkg_4f2.MyNet")
    assert "\n" not in str(e.value)
