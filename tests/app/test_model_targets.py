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


def make_from_options(options: dict) -> nn.Module:
    return nn.Conv2d(1, options["width"], 3)


@pytest.mark.parametrize(
    "spec",
    [
        {"_target_": "torch.nn.Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
        {"_target_": "erf.nets.luo.ConvStack", "depth": 2},
        {"_target_": "erf.nets.zoo.torchvision_model", "name": "resnet18"},
        {"_target_": f"{__name__}.make_net", "width": 3},
        {"_target_": f"{__name__}.make_from_options", "options": {"width": 3}},
    ],
    ids=["module_class", "erf_net", "erf_factory", "annotated_factory", "dict_argument"],
)
def test_module_classes_and_factories_annotated_to_return_a_module_are_built(spec):
    assert isinstance(_build(**spec), nn.Module)


def test_a_missing_module_says_how_to_put_it_on_the_path():
    with pytest.raises(ValueError, match="PYTHONPATH") as e:
        _build(_target_="no_such_pkg_4f2.MyNet")
    assert "\n" not in str(e.value)


CALLED = []  # a factory refused before the call never records one


def returns_a_number() -> nn.Module:
    return 42  # annotated as a module, returns something else


def unresolvable_annotation() -> "NoSuchModuleType":  # noqa: F821
    CALLED.append("unresolvable_annotation")
    return nn.Identity()


def test_a_factory_that_returns_no_module_is_refused_naming_what_it_built():
    with pytest.raises(TypeError, match=r"^model._target_ built a int, not a torch nn.Module$"):
        _build(_target_=f"{__name__}.returns_a_number")


def test_a_factory_whose_return_annotation_does_not_evaluate_is_not_taken_for_a_model():
    CALLED.clear()
    with pytest.raises(ValueError, match=r"unresolvable_annotation' is not a torch nn.Module"):
        _build(_target_=f"{__name__}.unresolvable_annotation")
    assert CALLED == []


def test_a_missing_class_in_an_existing_module_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"model._target_='torch.nn.NoSuchLayer9': no such") as e:
        _build(_target_="torch.nn.NoSuchLayer9")
    assert "\n" not in str(e.value)


def test_a_module_whose_own_import_fails_names_the_missing_dependency(tmp_path, monkeypatch):
    # not "no such module ... PYTHONPATH": the user's module exists, its dependency does not
    (tmp_path / "net_with_dep_5b.py").write_text("import no_such_dependency_5b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as e:
        _build(_target_="net_with_dep_5b.Net")
    assert e.value.name == "no_such_dependency_5b"
