"""timm's token and channels-last models through the probe (pretrained=False, small inputs).

Exact oracles: a patch token at the patch embedding sees exactly its patch; a prefix token
(class, distillation, register) or any token after one global attention block sees the whole
image; Swin's windowed attention keeps the first stage local.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import erf

timm = pytest.importorskip("timm")


def _model(name: str, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs)


def _box(result) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(result.map > 0)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.fixture(scope="module")
def vit():
    return _model("vit_tiny_patch16_224", img_size=64)


def test_a_vit_patch_token_at_the_patch_embedding_sees_exactly_its_patch(vit):
    result = erf.measure_erf(vit, (3, 64, 64), target="patch_embed", n_samples=1)
    assert result.meta["layout"] == "tokens" and result.meta["grid"] == [4, 4]
    assert result.meta["prefix_tokens"] == 0  # the class token is added after the embedding
    assert result.position == (2, 2) and _box(result) == (32, 47, 32, 47)
    assert (result.map[32:48, 32:48] > 0).all()


def test_after_one_vit_block_a_patch_token_and_the_class_token_see_the_whole_image(vit):
    units = [("blocks.0", "center"), ("blocks.0", "cls")]
    patch, cls = erf.measure_erfs(vit, (3, 64, 64), units, n_samples=1)
    assert patch.meta["prefix_tokens"] == 1
    assert "num_prefix_tokens" in patch.meta["layout_decided_by"]
    assert (patch.map > 0).all() and (cls.map > 0).all()
    assert cls.position == "prefix:0"


def test_deit_distilled_has_two_prefix_tokens_and_its_distillation_token_is_probed_by_index():
    deit = _model("deit_tiny_distilled_patch16_224", img_size=64)
    dist = erf.measure_erf(deit, (3, 64, 64), target="blocks.0", position="prefix:1", n_samples=1)
    assert dist.meta["prefix_tokens"] == 2 and (dist.map > 0).all()


def test_register_tokens_shift_the_patch_grid():
    vit = _model("vit_tiny_patch16_224", img_size=64, reg_tokens=4)
    # norm1 of block 0 is a LayerNorm: probe one channel (the all-channel sum is constant)
    result = erf.measure_erf(vit, (3, 64, 64), target="blocks.0.norm1", channel=3, n_samples=1)
    assert result.meta["prefix_tokens"] == 5 and "probe_warnings" not in result.meta
    assert _box(result) == (32, 47, 32, 47)


def test_swin_stages_are_read_channels_last_and_the_patch_embedding_is_exact():
    swin = _model("swin_tiny_patch4_window7_224", img_size=112)
    patch = erf.measure_erf(swin, (3, 112, 112), target="patch_embed", channel=0, n_samples=1)
    assert patch.meta["layout"] == "NHWC" and patch.meta["grid"] == [28, 28]
    assert _box(patch) == (56, 59, 56, 59)  # unit (14, 14) of a stride-4, 4x4 patch conv
    flagged = erf.measure_erf(swin, (3, 112, 112), target="patch_embed", n_samples=1)
    assert "LayerNorm" in flagged.meta["probe_warnings"][0]  # the embedding ends in a norm


def test_swin_windowed_attention_keeps_the_first_stage_local():
    swin = _model("swin_tiny_patch4_window7_224", img_size=112)
    stage = erf.measure_erf(swin, (3, 112, 112), target="layers.0", n_samples=1)
    assert stage.meta["layout"] == "NHWC" and stage.target_shape == (96, 28, 28)
    r0, r1, c0, c1 = _box(stage)
    assert r0 <= 56 <= r1 and c0 <= 56 <= c1  # around the probed unit
    assert not (stage.map > 0).all()  # two windowed blocks do not reach the corners


def test_a_metaformer_has_nchw_conv_stages_and_token_attention_stages():
    caformer = _model("caformer_s18")
    conv_stage, attention_stage = erf.measure_erfs(
        caformer, (3, 64, 64), ["stages.0.blocks.0", "stages.2.blocks.0"], n_samples=1
    )
    assert conv_stage.meta["layout"] == "NCHW" and not (conv_stage.map > 0).all()
    assert attention_stage.meta["layout"] == "tokens"
    assert attention_stage.meta["prefix_tokens"] == 0 and attention_stage.meta["grid"] == [4, 4]
    assert (attention_stage.map > 0).all()
