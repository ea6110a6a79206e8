"""``probe.target=auto`` (erf.app.build.resolve_target) on models whose maps become tokens."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from erf.app.build import last_block, layer_names, resolve_target


def _vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=16
    )


def test_auto_on_a_vit_is_refused_naming_its_last_block_instead_of_the_patch_embedding():
    with pytest.raises(ValueError, match=r"turns its map into tokens.*probe\.target=encoder"):
        resolve_target("auto", _vit(), (3, 32, 32))


def test_auto_on_a_cnn_still_picks_the_last_local_map():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert resolve_target("auto", model, (3, 16, 16)) == "2"


def test_the_suggested_block_is_the_last_of_the_longest_block_list():
    model = nn.Module()
    model.stem = nn.Conv2d(3, 4, 3)
    model.blocks = nn.Sequential(*[nn.Identity() for _ in range(12)])
    model.head = nn.Sequential(nn.Identity())
    assert last_block(model) == "blocks.11"


def test_without_a_block_list_the_suggestion_is_the_last_child_or_the_module_itself():
    model = nn.Module()
    model.stem = nn.Conv2d(3, 4, 3)
    model.head = nn.Conv2d(4, 4, 1)
    assert last_block(model) == "head"
    assert last_block(nn.Conv2d(3, 4, 3)) == "<module>"


def test_layer_names_are_stages_or_a_list_and_any_other_word_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert layer_names([0, "2"], "profile.layers", model, (3, 16, 16)) == ["0", "2"]
    with pytest.raises(ValueError, match=r"^profile.layers='all'; use 'stages' or a list"):
        layer_names("all", "profile.layers", model, (3, 16, 16))


class _Untraceable(nn.Module):
    """Python control flow on a tensor value: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))

    def forward(self, x):
        return self.blocks(x) if x.sum() > -1e9 else x


def test_auto_on_a_model_without_a_trace_is_refused_naming_its_last_block():
    with pytest.raises(ValueError, match=r"^probe.target=auto reads .*probe\.target=blocks\.1$"):
        resolve_target("auto", _Untraceable(), (3, 16, 16))
