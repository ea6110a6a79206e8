"""Hugging Face ``transformers`` vision models (``model=hf``, ``erf.nets.hf``): built offline
from tiny configs (2 blocks, 32 px), their ``ModelOutput`` entries probed with the grid and
prefix tokens read from the config, and the exact oracles the timm tests use:

- a patch token at the patch embedding sees exactly its patch;
- after one global attention block every token (class token too) sees the whole image;
- the HF and timm versions of one architecture with copied weights give the same map;
- the TRF (measured support: transformers models do not trace with torch.fx) is global for
  ViT after attention, and the same local box as timm's graph TRF for Swin's first windowed
  blocks and ConvNeXt's stages.

Skipped without transformers, except in CI (``CI`` set), where a missing package fails.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import erf
from erf.app.build import input_shape_for, seeded_model
from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job
from erf.nets.hf import hf_image_size, hf_model
from erf.nets.zoo import WeightsUnavailable, input_normalization

try:
    import transformers  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        pytest.fail("transformers is missing in CI: pip install -e '.[dev]' installs it")
    pytest.skip(
        "transformers is not installed (pip install 'erf-lab[hf]')", allow_module_level=True
    )

VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    image_size=32, patch_size=8, layer_norm_eps=1e-6,
)  # fmt: skip
DINO = {k: v for k, v in VIT.items() if k != "intermediate_size"} | {"mlp_ratio": 2}
SWIN = dict(
    image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=4
)
CONVNEXT = dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], layer_norm_eps=1e-6)
SEGFORMER = dict(
    num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
    patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
    decoder_hidden_size=32, num_labels=3,
)  # fmt: skip
ONE = dict(n_samples=1, seed=0)


def _build(name, **config):
    torch.manual_seed(0)
    return hf_model(name, **config)


def _box(result) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(result.map > 0)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


@pytest.fixture(scope="module")
def vit():
    return _build("ViTModel", add_pooling_layer=False, **VIT)


@pytest.fixture(scope="module")
def dino():
    return _build("dinov2_with_registers", num_register_tokens=4, **DINO)


@pytest.fixture(scope="module")
def swin():
    return _build("SwinConfig", **SWIN)


@pytest.fixture(scope="module")
def convnext():
    return _build("convnext", **CONVNEXT)


@pytest.fixture(scope="module")
def segformer():
    return _build("SegformerForSemanticSegmentation", **SEGFORMER)


# --------------------------------------------------------------------------- building offline


def test_a_class_a_config_class_and_a_model_type_name_the_five_architectures(
    vit, dino, swin, convnext, segformer
):
    built = [type(m).__name__ for m in (vit, dino, swin, convnext, segformer)]
    assert built == [
        "ViTModel", "Dinov2WithRegistersModel", "SwinModel", "ConvNextModel",
        "SegformerForSemanticSegmentation",
    ]  # fmt: skip
    assert vit.config.num_hidden_layers == 2 and vit.pooler is None  # a constructor keyword
    assert swin.config.window_size == 4 and convnext.config.hidden_sizes == [8, 16]


def test_without_transformers_model_hf_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    with pytest.raises(ValueError, match=r"model=hf needs the transformers package: .*\[hf\]"):
        hf_model("ViTModel")


def test_a_misspelt_setting_is_refused_naming_the_close_one():
    with pytest.raises(ValueError, match=r"^model.num_hiden_layers: .*close: num_hidden_layers"):
        hf_model("ViTModel", num_hiden_layers=2)


def test_an_unknown_name_is_refused_with_close_matches():
    with pytest.raises(ValueError, match=r"model.name='Vitmodel' .* close matches: .*ViTModel"):
        hf_model("Vitmodel")


def _hf_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=["model=hf", *overrides])


TINY_VIT_ARGS = [f"+model.{k}={v}" for k, v in VIT.items()]


def test_the_run_seed_draws_the_random_weights_of_model_hf():
    cfg = _hf_cfg(*TINY_VIT_ARGS)
    torch.manual_seed(99)  # the global RNG before the build must not matter
    a = seeded_model(cfg.model, 3).state_dict()
    b, c = seeded_model(cfg.model, 3).state_dict(), seeded_model(cfg.model, 4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.mlp.fc1.weight"], c["layers.0.mlp.fc1.weight"])


def test_the_input_size_of_a_run_defaults_to_the_configs_image_size(vit):
    assert input_shape_for(_hf_cfg(), vit) == (3, 32, 32)


def test_from_pretrained_loads_a_local_folder_and_its_preprocessor_statistics(vit, tmp_path):
    vit.save_pretrained(tmp_path)
    spec = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(spec))
    loaded = hf_model("ViTModel", weights=str(tmp_path), add_pooling_layer=False)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vit.state_dict().items())
    assert input_normalization(loaded)[:2] == ((0.5,) * 3, (0.25,) * 3)
    fresh = hf_model(str(tmp_path), add_pooling_layer=False)  # the folder's config, new weights
    assert fresh.config.hidden_size == 32 and type(fresh).__name__ == "ViTModel"


def test_from_pretrained_finds_a_repo_in_the_local_hub_cache(vit, tmp_path, monkeypatch):
    snapshot = tmp_path / "models--someone--tiny-vit" / "snapshots" / "abc123"
    vit.save_pretrained(snapshot)
    (tmp_path / "models--someone--tiny-vit" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-vit" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    loaded = hf_model("ViTModel", weights="someone/tiny-vit", add_pooling_layer=False)
    assert torch.equal(loaded.state_dict()["layers.1.mlp.fc2.weight"], vit.layers[1].mlp.fc2.weight)


def test_weights_missing_from_the_cache_are_a_one_line_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match=r"huggingface-cli download nobody/none") as err:
        hf_model("ViTModel", weights="nobody/none")
    assert "\n" not in str(err.value)


def test_a_folder_without_a_config_or_without_weights_is_a_one_line_error(vit, tmp_path):
    with pytest.raises(WeightsUnavailable, match=r"no config\.json usable in the folder") as err:
        hf_model(str(tmp_path))
    assert "\n" not in str(err.value)
    vit.config.save_pretrained(tmp_path)  # the config alone
    with pytest.raises(WeightsUnavailable, match=r"no weights usable in the folder") as err:
        hf_model("ViTModel", weights=str(tmp_path), add_pooling_layer=False)
    assert "\n" not in str(err.value)


def test_a_checkpoint_file_replaces_the_random_weights(vit, tmp_path):
    torch.save(vit.state_dict(), tmp_path / "vit.pt")
    torch.manual_seed(1)  # other random weights before the checkpoint
    loaded = hf_model("ViTModel", checkpoint=tmp_path / "vit.pt", add_pooling_layer=False, **VIT)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vit.state_dict().items())


def test_a_task_head_over_backbone_weights_keeps_its_random_head_and_says_so(vit, tmp_path, caplog):
    vit.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_resize": True}))
    with caplog.at_level("WARNING", logger="erf"):
        head = hf_model("ViTForImageClassification", weights=str(tmp_path), num_labels=3)
    assert "keep their random init (classifier.bias, classifier.weight)" in caplog.text
    assert torch.equal(head.vit.layers[1].mlp.fc2.weight, vit.layers[1].mlp.fc2.weight)
    assert input_normalization(head)[2] == "ImageNet default"  # no mean/std in the file


def test_the_image_size_of_a_config_may_be_a_pair():
    model = torch.nn.Module()
    model.config = type("Config", (), {"image_size": [32, 48]})()
    assert hf_image_size(model) == (32, 48)


# --------------------------------------------------------------------------- outputs and grids


def test_a_model_output_without_probe_output_is_refused_listing_its_entries(segformer):
    with pytest.raises(
        ValueError, match=r"SemanticSegmenterOutput \(logits: \[B, 3, 8, 8\].*probe\.output"
    ):
        erf.measure_erf(segformer, (3, 32, 32), **ONE)


def test_hidden_states_left_empty_by_the_model_are_named_with_the_setting_that_fills_them():
    bare = _build("ViTModel", output_hidden_states=False, **VIT)
    with pytest.raises(ValueError, match=r"'hidden_states' is None .*output_hidden_states=True"):
        erf.measure_erf(bare, (3, 32, 32), output="hidden_states.1", **ONE)


def test_the_vit_grid_and_class_token_are_read_from_the_config(vit):
    result = erf.measure_erf(vit, (3, 32, 32), output="hidden_states.1", **ONE)
    assert result.meta["grid"] == [4, 4] and result.meta["prefix_tokens"] == 1
    assert result.meta["layout_decided_by"] == "hf config (vit): cls_token + config.patch_size=8"


def test_deit_under_a_classification_head_has_its_class_and_distillation_tokens():
    deit = _build("DeiTForImageClassificationWithTeacher", **VIT)
    dist = erf.measure_erf(deit, (3, 32, 32), output="hidden_states.1", position="prefix:1", **ONE)
    assert dist.meta["prefix_tokens"] == 2 and dist.position == "prefix:1"
    assert "cls_token + distillation_token" in dist.meta["layout_decided_by"]


def test_dinov2_register_tokens_come_from_the_config(dino):
    result = erf.measure_erf(dino, (3, 32, 32), output="hidden_states.0", **ONE)
    assert (
        result.meta["prefix_tokens"] == 5
        and "num_register_tokens=4" in (result.meta["layout_decided_by"])
    )


def test_four_dimensional_model_outputs_are_nchw_by_the_transformers_convention(
    swin, convnext, segformer
):
    logits = erf.measure_erf(segformer, (3, 32, 32), output="logits", **ONE)
    stage = erf.measure_erf(swin, (3, 32, 32), output="reshaped_hidden_states.1", **ONE)
    last = erf.measure_erf(convnext, (3, 32, 32), output="last_hidden_state", **ONE)
    assert [r.target_shape for r in (logits, stage, last)] == [(3, 8, 8), (32, 8, 8), (16, 4, 4)]
    assert all("transformers outputs are [B, C, H, W]" in r.meta["layout_decided_by"] for r in
               (logits, stage, last))  # fmt: skip


def test_a_square_submodule_map_is_refused_naming_probe_layout(convnext):
    with pytest.raises(ValueError, match=r"\[8, 8, 8\]: both .* set probe.layout=NCHW"):
        erf.measure_erf(convnext, (3, 32, 32), target="encoder.stages.0", **ONE)


def test_a_dpt_depth_map_is_probed_as_its_one_channel_map_before_the_last_relu():
    shape = {k: v for k, v in VIT.items() if k not in ("layer_norm_eps", "num_hidden_layers")}
    dpt = _build(
        "DPTForDepthEstimation", **shape, num_hidden_layers=4, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16,
    )  # fmt: skip
    depth = erf.measure_erf(dpt, (3, 32, 32), target="head.head.4", **ONE)  # before ReLU, squeeze
    assert depth.target_shape == (1, 64, 64) and depth.position == (32, 32)  # at 2x the input
    assert depth.meta["layout_decided_by"] == "NCHW (Conv2d output)"
    assert depth.meta["unit_in_input"] == [15.75, 15.75]
    assert depth.map.max() > 0


# --------------------------------------------------------------------------- exact oracles


@pytest.mark.parametrize(
    ("model", "target", "output", "side"),
    [
        ("vit", "embeddings.patch_embeddings", None, 8),
        ("dino", "embeddings.patch_embeddings", None, 8),
        ("swin", None, "hidden_states.0", 2),
        ("convnext", "embeddings.patch_embeddings", None, 4),
    ],
)
def test_a_patch_token_at_the_patch_embedding_sees_exactly_its_patch(
    request, model, target, output, side
):
    result = erf.measure_erf(request.getfixturevalue(model), (3, 32, 32), target=target,
                             output=output, channel=0, **ONE)  # fmt: skip
    h = result.target_shape[1]
    start = (h // 2) * side  # the centre unit (h // 2, h // 2) of a stride-`side` grid
    assert _box(result) == (start, start + side - 1, start, start + side - 1)
    assert (result.map[start : start + side, start : start + side] > 0).all()


@pytest.mark.parametrize(
    ("model", "target"),
    [
        ("vit", "layers.0"),
        ("dino", "encoder.layer.0"),
        ("segformer", "segformer.stages.0.blocks.0"),
    ],
)
def test_after_one_global_attention_block_every_token_sees_the_whole_image(request, model, target):
    net = request.getfixturevalue(model)
    units = [(target, "center")] + ([(target, "cls")] if model != "segformer" else [])
    for result in erf.measure_erfs(net, (3, 32, 32), units, progress=False, **ONE):
        assert (result.map > 0).all()


def _timm_vit_with_weights_copied_to(hf_vit):
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    vt = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2, num_classes=0
    )
    for p in vt.parameters():  # nothing at its init value: every weight must be copied
        torch.nn.init.normal_(p, 0.0, 0.3)
    sd, new = vt.state_dict(), {}
    new["embeddings.cls_token"], new["embeddings.position_embeddings"] = (
        sd["cls_token"],
        sd["pos_embed"],
    )
    for s in ("weight", "bias"):
        new[f"embeddings.patch_embeddings.projection.{s}"] = sd[f"patch_embed.proj.{s}"]
        new[f"layernorm.{s}"] = sd[f"norm.{s}"]
        for i in range(2):
            b, h = f"blocks.{i}.", f"layers.{i}."
            for name, part in zip("qkv", sd[b + f"attn.qkv.{s}"].chunk(3)):
                new[h + f"attention.{name}_proj.{s}"] = part
            for src, dst in (("attn.proj", "attention.o_proj"), ("norm1", "layernorm_before"),
                             ("norm2", "layernorm_after"), ("mlp.fc1", "mlp.fc1"),
                             ("mlp.fc2", "mlp.fc2")):  # fmt: skip
                new[h + f"{dst}.{s}"] = sd[b + f"{src}.{s}"]
    hf_vit.load_state_dict(new, strict=True)
    return vt


def test_hf_and_timm_vits_with_copied_weights_give_the_same_maps():
    hv = _build("ViTModel", add_pooling_layer=False, **VIT)
    tv = _timm_vit_with_weights_copied_to(hv)
    units_hf = [
        ("layers.1", "center"),
        ("layers.1", "cls"),
        ("embeddings.patch_embeddings", (1, 2)),
    ]
    units_timm = [("blocks.1", "center"), ("blocks.1", "cls"), ("patch_embed", (1, 2))]
    kw = dict(n_samples=4, seed=0, progress=False)
    ours = erf.measure_erfs(hv, (3, 32, 32), units_hf, **kw)
    theirs = erf.measure_erfs(tv, (3, 32, 32), units_timm, **kw)
    for a, b in zip(ours, theirs):
        assert a.position == b.position and a.target_shape == b.target_shape
        np.testing.assert_allclose(a.map, b.map, rtol=1e-5, atol=1e-6 * b.map.max())


def _timm_convnext_with_weights_copied_to(hf_convnext):
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    tc = timm.models.convnext.ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 16, 16), num_classes=0)
    for p in tc.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    renames = [("stem.0.", "embeddings.patch_embeddings."), ("stem.1.", "embeddings.layernorm."),
               ("stages.", "encoder.stages."), (".downsample.", ".downsampling_layer."),
               (".blocks.", ".layers."), (".gamma", ".layer_scale_parameter"),
               (".conv_dw.", ".dwconv."), (".norm.", ".layernorm."), (".mlp.fc1.", ".pwconv1."),
               (".mlp.fc2.", ".pwconv2.")]  # fmt: skip
    new = {}
    for key, value in tc.state_dict().items():
        if key.startswith(("stages.2", "stages.3", "head")):
            continue
        for a, b in renames:
            key = key.replace(a, b)
        new[key] = value
    missing = hf_convnext.load_state_dict(new, strict=False).missing_keys
    assert missing == ["layernorm.weight", "layernorm.bias"]  # the pooled head's norm, unused
    return tc


def test_hf_and_timm_convnexts_with_copied_weights_give_the_same_maps():
    hc = _build("ConvNextModel", **CONVNEXT)
    tc = _timm_convnext_with_weights_copied_to(hc)
    kw = dict(n_samples=4, seed=0, progress=False)
    (ours,) = erf.measure_erfs(hc, (3, 64, 64), ["encoder.stages.1"], **kw)
    (theirs,) = erf.measure_erfs(tc, (3, 64, 64), ["stages.1"], **kw)
    assert ours.target_shape == theirs.target_shape == (16, 8, 8)
    np.testing.assert_allclose(ours.map, theirs.map, rtol=1e-5, atol=1e-6 * theirs.map.max())


# --------------------------------------------------------------------------- TRF


def test_the_vit_trf_is_global_after_attention_as_timms_graph_says(vit):
    timm = pytest.importorskip("timm")
    ours = erf.trf_or_support(vit, (3, 32, 32), "layers.0")
    tv = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2, num_classes=0
    )
    theirs = erf.trf_or_support(tv, (3, 32, 32), "blocks.0")
    assert ours.source == "measured_support" and theirs.source == "graph"
    assert ours.is_global and theirs.is_global
    assert ours.global_from == "layers.0.attention.o_proj"  # timm: blocks.0.attn


def test_swin_and_convnext_trfs_are_timms_local_boxes(swin):
    timm = pytest.importorskip("timm")
    ts = timm.models.swin_transformer.SwinTransformer(
        img_size=32,
        patch_size=2,
        embed_dim=16,
        depths=(2, 2),
        num_heads=(2, 2),
        window_size=4,
        num_classes=0,
    )
    window = erf.ProbeOptions(output="0")  # HF Swin blocks return (tokens, attentions)
    for hf_block, timm_block, side in (("0", "0", 8), ("1", "1", 16)):  # one window; shifted
        ours = erf.trf_or_support(swin, (3, 32, 32), f"encoder.layers.0.blocks.{hf_block}",
                                  options=window)  # fmt: skip
        theirs = erf.trf_or_support(ts, (3, 32, 32), f"layers.0.blocks.{timm_block}")
        assert not ours.is_global and ours.size == theirs.size == (side, side)
    hc = _build("ConvNextModel", num_stages=4, hidden_sizes=[8] * 4, depths=[1] * 4)
    tc = timm.models.convnext.ConvNeXt(depths=(1,) * 4, dims=(8,) * 4, num_classes=0)
    nchw = erf.ProbeOptions(layout="NCHW")
    ours = erf.trf_or_support(hc, (3, 96, 96), "encoder.stages.1", options=nchw)
    theirs = erf.trf_or_support(tc, (3, 96, 96), "stages.1")
    assert ours.size == theirs.size == (80, 80)  # 4 + 6*4 + 4 + 6*8: stem, 7x7 at strides 4, 8


# --------------------------------------------------------------------------- a job


def test_a_model_hf_job_records_the_layout_and_the_measured_support(tmp_path):
    cfg = _hf_cfg(
        *TINY_VIT_ARGS, "probe.target=layers.0", "probe.n_samples=2", "probe.batch_size=2",
    )  # fmt: skip
    metrics = run_job(cfg, tmp_path)
    assert metrics["trf_source"] == "measured_support" and metrics["trf_global_from"]
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["layout_decided_by"].startswith("hf config (vit)")


def test_weights_that_do_not_fit_the_configured_model_are_refused(vit, tmp_path):
    vit.save_pretrained(tmp_path)
    with pytest.raises(WeightsUnavailable, match=r"do not fit ViTModel .* differ in shape"):
        hf_model("ViTModel", weights=str(tmp_path), hidden_size=64, add_pooling_layer=False)


HF_ARCHS = sorted(p.stem for p in (CONFIG_DIR / "arch").glob("hf_*.yaml"))


@pytest.mark.parametrize("arch", HF_ARCHS)
def test_every_hf_arch_builds_with_an_output_that_exists_before_the_final_norm(arch):
    """Each configs/arch/hf_* composes into experiment=cross_arch, builds (on the meta device:
    no weights) and probes an output entry of the model: ``hidden_states.K`` with K at most
    its number of blocks (entry K is block K's output, before the final LayerNorm)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=cross_arch", f"arch={arch}"])
    assert cfg.model._target_ == "erf.nets.hf.hf_model" and cfg.label
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    with torch.device("meta"):
        model = hf_model(**{k: v for k, v in spec.items() if k != "_target_"})
    assert spec["weights"] is None and cfg.probe.target is None
    entry, _, k = cfg.probe.output.partition(".")
    assert entry in ("last_hidden_state", "hidden_states")
    if entry == "hidden_states":
        blocks = getattr(model.config, "num_hidden_layers", None) or len(model.config.depths)
        assert int(k) == blocks  # the last block's output: hidden_states[0] is the embedding
