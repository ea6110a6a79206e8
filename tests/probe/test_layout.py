"""Feature-map layouts: channels-last maps, token sequences with prefix tokens, vectors,
dense outputs and outputs that are not one tensor (erf.probe.layout and the probe engines).

Oracles are exact: a channels-last copy of a map has the NCHW map's ERF, bit for bit; a patch
token at the patch embedding sees exactly its patch; a prefix token that is a parameter sees
nothing, and after a global mean it sees everything.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

import erf
from erf.probe.layout import (
    Grid,
    aspect_error,
    resolve_grid,
    select_output,
    shrink_fits,
    unit_in_input,
)
from erf.probe.measure import ProbeInterrupted


def _seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=0.5)
    return module


class ChannelsLast(nn.Module):
    """Two 3x3 convs, the result returned as [B, H, W, C] (no module witnesses the layout)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.Tanh(), nn.Conv2d(channels, channels, 3)
        )

    def forward(self, x):
        return self.body(x).permute(0, 2, 3, 1)


class TinyViT(nn.Module):
    """Patch embedding (a p x p conv, stride p), flattened to tokens, ``prefix`` learned
    prefix tokens in front; ``mix`` adds the mean over all tokens to each token (global)."""

    def __init__(
        self, patch: int = 4, dim: int = 6, prefix: int = 1, mix: bool = False, declare: bool = True
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.prefix = nn.Parameter(torch.randn(1, prefix, dim))
        self.tokens = nn.Identity()  # a module whose output is the token sequence
        self.mixer = nn.Identity()
        self.mix = mix
        if declare:
            self.num_prefix_tokens = prefix

    def forward(self, x):
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = self.tokens(torch.cat([self.prefix.expand(x.shape[0], -1, -1), t], dim=1))
        if self.mix:
            t = t + t.mean(dim=1, keepdim=True)
        return self.mixer(t)


def _support(result) -> np.ndarray:
    return result.map > 0


# --------------------------------------------------------------------------- channels-last


def test_a_channels_last_map_has_the_erf_of_its_nchw_original():
    model = _seeded(ChannelsLast())
    nhwc = erf.measure_erf(model, (3, 24, 24), n_samples=3, batch_size=3, progress=False)
    nchw = erf.measure_erf(
        model, (3, 24, 24), target="body", n_samples=3, batch_size=3, progress=False
    )
    assert nhwc.meta["layout"] == "NHWC" and nhwc.target_shape == (8, 22, 22)
    assert nhwc.position == nchw.position == (11, 11)
    np.testing.assert_array_equal(nhwc.total, nchw.total)


def test_the_channels_last_support_is_the_5x5_trf_not_a_strip():
    """The symptom: [B, 22, 22, 8] read as [B, C=22, H=22, W=8] gave a column strip."""
    result = erf.measure_erf(_seeded(ChannelsLast()), (3, 24, 24), n_samples=2, progress=False)
    rows, cols = np.nonzero(_support(result))
    # unit (11, 11) of the valid second conv reads conv-1 units 11..13 -> input 10..14
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 14, 10, 14)


def test_a_channel_of_a_channels_last_map_is_its_last_dim():
    model = _seeded(ChannelsLast())
    nhwc = erf.measure_erf(model, (3, 24, 24), n_samples=2, channel=5, progress=False)
    nchw = erf.measure_erf(model, (3, 24, 24), target="body", n_samples=2, channel=5)
    np.testing.assert_array_equal(nhwc.total, nchw.total)


def test_a_square_map_whose_channels_equal_its_side_is_refused_naming_the_option():
    y = torch.zeros(1, 22, 22, 22)  # no module, no graph: nothing decides
    with pytest.raises(ValueError, match=r"both \[C, H, W\] and \[H, W, C\].*probe\.layout=NHWC"):
        resolve_grid(y, (24, 24), where="m", graph_dims=lambda: None)


def test_the_graph_analysis_decides_a_square_map_it_followed_through_a_permute():
    model = _seeded(ChannelsLast(channels=22))  # output [B, 22, 22, 22], channels last
    nhwc = erf.measure_erf(model, (3, 24, 24), n_samples=1, progress=False)
    nchw = erf.measure_erf(model, (3, 24, 24), target="body", n_samples=1, progress=False)
    assert nhwc.meta["layout"] == "NHWC" and "graph" in nhwc.meta["layout_decided_by"]
    np.testing.assert_array_equal(nhwc.total, nchw.total)


def test_the_layout_option_decides_an_ambiguous_map():
    model = _seeded(ChannelsLast(channels=22))
    nhwc = erf.measure_erf(model, (3, 24, 24), n_samples=1, layout="NHWC", progress=False)
    nchw = erf.measure_erf(model, (3, 24, 24), target="body", n_samples=1, progress=False)
    assert nhwc.meta["layout_decided_by"] == "probe.layout"
    np.testing.assert_array_equal(nhwc.total, nchw.total)


def test_a_conv2d_output_is_nchw_whatever_its_shape():
    y = torch.zeros(1, 22, 22, 22)
    grid = resolve_grid(y, (24, 24), where="m", module=nn.Conv2d(3, 22, 3))
    assert grid.layout == "NCHW" and grid.decided_by.startswith("NCHW (Conv2d")


def test_the_aspect_error_is_zero_for_one_stride_and_grows_with_mismatch():
    assert aspect_error(7, 10, 224, 320) == 0
    assert aspect_error(56, 96, 224, 224) == pytest.approx(20.0)


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("position,block", [("center", (2, 2)), ((1, 3), (1, 3))])
def test_a_patch_token_sees_exactly_its_patch(position, block):
    model = _seeded(TinyViT(patch=4, prefix=1))
    result = erf.measure_erf(
        model, (3, 16, 20), target="tokens", position=position, n_samples=2, progress=False
    )
    assert result.meta["layout"] == "tokens" and result.meta["prefix_tokens"] == 1
    assert result.meta["grid"] == [4, 5] and result.position == block
    expected = np.zeros((16, 20), dtype=bool)
    r, c = block
    expected[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = True
    np.testing.assert_array_equal(_support(result), expected)


def test_the_class_token_of_the_embedding_sees_nothing_and_after_a_global_mean_everything():
    model = _seeded(TinyViT(patch=4, prefix=1, mix=True))
    at_embedding = erf.measure_erf(
        model, (3, 16, 16), target="tokens", position="cls", n_samples=2, progress=False
    )
    mixed = erf.measure_erf(model, (3, 16, 16), position="cls", n_samples=2, progress=False)
    assert at_embedding.position == "prefix:0" and not at_embedding.map.any()
    assert _support(mixed).all()


def test_register_tokens_come_from_the_models_declared_count():
    model = _seeded(TinyViT(patch=4, prefix=5))  # 1 class + 4 register tokens
    result = erf.measure_erf(model, (3, 16, 16), target="tokens", n_samples=1, progress=False)
    assert result.meta["prefix_tokens"] == 5
    assert "num_prefix_tokens" in result.meta["layout_decided_by"]
    expected = np.zeros((16, 16), dtype=bool)
    expected[8:12, 8:12] = True
    np.testing.assert_array_equal(_support(result), expected)


def test_the_last_prefix_token_is_probed_by_index():
    model = _seeded(TinyViT(patch=4, prefix=5, mix=True))
    result = erf.measure_erf(model, (3, 16, 16), position="prefix:4", n_samples=1)
    assert result.position == "prefix:4" and _support(result).all()
    with pytest.raises(ValueError, match=r"5 prefix token\(s\), 0\.\.4"):
        erf.measure_erf(model, (3, 16, 16), position="prefix:5", n_samples=1)


def test_an_undeclared_prefix_count_is_inferred_only_when_one_grid_fits():
    model = _seeded(TinyViT(patch=4, prefix=1, declare=False))  # 1 + 8x8 tokens
    result = erf.measure_erf(model, (3, 32, 32), target="tokens", n_samples=1, progress=False)
    assert (
        result.meta["prefix_tokens"] == 1 and "fits the input" in result.meta["layout_decided_by"]
    )


def test_a_token_count_that_several_grids_explain_is_refused_naming_the_options():
    y = torch.zeros(1, 5, 6)  # 1 + 2x2 or 4 + 1x1
    with pytest.raises(ValueError, match=r"probe\.grid=\[h,w\] and probe\.prefix_tokens"):
        resolve_grid(y, (8, 8), where="m")


def test_the_grid_option_decides_the_token_grid():
    grid = resolve_grid(torch.zeros(1, 5, 6), (8, 8), where="m", grid=(2, 2))
    assert (grid.prefix_tokens, grid.height, grid.width) == (1, 2, 2)
    assert grid.index((1, 0), None) == (3, slice(None))


def test_a_prefix_position_on_a_map_without_prefix_tokens_is_refused():
    model = _seeded(ChannelsLast())
    with pytest.raises(ValueError, match="names a prefix token"):
        erf.measure_erf(model, (3, 24, 24), position="cls", n_samples=1)


def test_a_torchvision_vit_patch_token_sees_its_patch():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=16
    )
    result = erf.measure_erf(vit, (3, 32, 32), target="encoder.dropout", n_samples=1)
    assert result.meta["prefix_tokens"] == 1 and result.meta["grid"] == [4, 4]
    expected = np.zeros((32, 32), dtype=bool)
    expected[16:24, 16:24] = True
    np.testing.assert_array_equal(_support(result), expected)
    after = erf.measure_erf(vit, (3, 32, 32), target="encoder.layers.encoder_layer_0", n_samples=1)
    assert _support(after).all()  # one global attention block: the whole image


def test_tokens_in_multi_unit_probes_equal_single_probes():
    model = _seeded(TinyViT(patch=4, prefix=1, mix=True))
    units = [("tokens", (0, 0)), ("tokens", "cls"), (None, (3, 3))]
    together = erf.measure_erfs(model, (3, 16, 16), units, n_samples=2, progress=False)
    for (target, position), got in zip(units, together):
        alone = erf.measure_erf(model, (3, 16, 16), target=target, position=position, n_samples=2)
        np.testing.assert_array_equal(got.total, alone.total)


def test_a_cropped_probe_of_a_token_target_is_refused():
    model = _seeded(TinyViT(patch=4, prefix=1))
    with pytest.raises(ValueError, match="crop=on"):
        erf.measure_erf(model, (3, 16, 16), target="tokens", n_samples=1, crop="on")


def test_a_resumed_class_token_probe_equals_the_uninterrupted_one(tmp_path):
    from erf.io.store import load_result, save_result

    model = _seeded(TinyViT(patch=4, prefix=1, mix=True))
    kwargs = dict(position="cls", n_samples=4, batch_size=1, progress=False)
    whole = erf.measure_erf(model, (3, 16, 16), **kwargs)
    saved = []
    with pytest.raises(ProbeInterrupted):
        erf.measure_erf(
            model, (3, 16, 16), **kwargs, should_stop=lambda: True,
            on_checkpoint=lambda p: saved.append(p),
        )  # fmt: skip
    save_result(saved[-1], tmp_path / "c.npz")
    back = load_result(tmp_path / "c.npz")
    assert back.position == "prefix:0"
    resumed = erf.measure_erf(model, (3, 16, 16), **kwargs, resume=back)
    np.testing.assert_array_equal(resumed.total, whole.total)


def test_draws_probe_channels_last_maps_like_the_plain_probe():
    from erf.probe.draws import measure_erf_draws

    shape = (3, 24, 24)
    got = measure_erf_draws(
        lambda s: _seeded(ChannelsLast(), s), shape, draws=2, n_samples=2, vectorize=False
    )
    for m, result in enumerate(got):
        alone = erf.measure_erf(_seeded(ChannelsLast(), m), shape, n_samples=2, seed=m)
        np.testing.assert_array_equal(result.total, alone.total)


# --------------------------------------------------------------------------- vectors and dense


def test_a_logit_vector_is_a_one_by_one_grid_whose_erf_is_global():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    result = erf.measure_erf(_seeded(model), (3, 8, 8), channel=2, n_samples=1, progress=False)
    assert result.meta["layout"] == "vector" and result.target_shape == (3, 1, 1)
    assert _support(result).all()


def test_a_dense_output_at_twice_the_input_resolution_is_probed_at_its_centre():
    model = _seeded(nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)))
    result = erf.measure_erf(model, (3, 10, 10), n_samples=1, progress=False)
    assert result.target_shape == (3, 20, 20) and result.position == (10, 10)
    # output unit 10 of the 2x grid is the top-left sub-pixel of input pixel 5
    assert result.meta["unit_in_input"] == [4.75, 4.75]
    rows, cols = np.nonzero(_support(result))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 6, 4, 6)


def test_unit_in_input_maps_grid_centres_to_pixel_centres():
    assert unit_in_input((3, 3), (7, 7), (224, 224)) == (111.5, 111.5)
    assert unit_in_input("prefix:0", (4, 4), (16, 16)) is None


# --------------------------------------------------------------------------- non-tensor outputs


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return {"out": y, "aux": y[:, :2]}


def test_a_dict_output_is_refused_listing_its_keys():
    with pytest.raises(
        ValueError, match=r"out: \[B, 4, 8, 8\], aux: \[B, 2, 8, 8\].*probe\.output"
    ):
        erf.measure_erf(_seeded(DictOut()), (3, 8, 8), n_samples=1, batch_size=1)


def test_the_output_option_picks_a_dict_entry():
    model = _seeded(DictOut())
    got = erf.measure_erf(model, (3, 8, 8), output="aux", n_samples=2, progress=False)
    plain = erf.measure_erf(model, (3, 8, 8), target="conv", channel=None, n_samples=2)
    assert got.target_shape == (2, 8, 8)
    assert (_support(got) == _support(plain)).all()


def test_a_missing_key_lists_the_choices():
    with pytest.raises(ValueError, match=r"no 'logits'.*choices: out: .*aux: "):
        erf.measure_erf(_seeded(DictOut()), (3, 8, 8), output="logits", n_samples=1)


@dataclasses.dataclass
class ModelOutput:
    last_hidden_state: torch.Tensor
    pooled: torch.Tensor


def test_tuple_namedtuple_dataclass_and_paths_select_the_same_tensor():
    y = torch.ones(2, 4, 3, 3)
    pair = namedtuple("Pair", "features logits")(y, y[:, 0])
    assert select_output((y, 1.0), 0, "m") is y
    assert select_output(pair, "features", "m") is y and select_output(pair, "0", "m") is y
    assert select_output(ModelOutput(y, y[:, 0]), "last_hidden_state", "m") is y
    assert select_output({"feats": [y, y]}, "feats.1", "m") is y


def test_a_selected_non_tensor_is_refused():
    with pytest.raises(ValueError, match="selects a float, not a tensor"):
        select_output((torch.ones(1), 1.0), 1, "m")


def test_an_output_option_on_a_tensor_is_refused():
    with pytest.raises(ValueError, match="has no parts to choose from"):
        select_output(torch.ones(1, 2, 3, 3), "out", "m")


def test_a_grid_reports_its_shape_and_its_decision():
    grid = Grid("NHWC", 8, 4, 5, decided_by="x")
    assert grid.shape == (8, 4, 5) and grid.index((1, 2), 3) == (1, 2, 3)
    assert grid.describe() == {"layout": "NHWC", "grid": [4, 5], "layout_decided_by": "x"}


def test_the_all_channel_probe_of_a_uniform_layernorm_is_flagged_as_measuring_nothing():
    torch.manual_seed(0)
    model = _seeded(TinyViT(patch=4, prefix=1))
    model.tokens = nn.LayerNorm(6)  # weight 1 at init
    result = erf.measure_erf(model, (3, 16, 16), target="tokens", n_samples=1, progress=False)
    assert "sum to a constant" in result.meta["probe_warnings"][0]
    assert result.meta["noise_only"] == result.meta["probe_warnings"][0]
    assert result.map.max() < 1e-5  # what the warning is about: rounding noise
    one_channel = erf.measure_erf(model, (3, 16, 16), target="tokens", n_samples=1, channel=0)
    assert "probe_warnings" not in one_channel.meta and one_channel.map.max() > 1e-3
    assert "noise_only" not in one_channel.meta


def test_an_unflagged_probe_has_no_probe_warnings():
    result = erf.measure_erf(_seeded(ChannelsLast()), (3, 24, 24), n_samples=1, progress=False)
    assert "probe_warnings" not in result.meta


# --------------------------------------------------------------------------- where the unit sits


def test_the_metrics_place_a_dense_outputs_centre_unit_at_its_exact_trf_centre():
    from erf.analysis.summary import erf_metrics

    model = _seeded(nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)))
    result = erf.measure_erf(model, (3, 10, 10), n_samples=1, progress=False)
    metrics = erf_metrics(result, erf.theoretical_rf(model, input_shape=(3, 10, 10)))
    assert metrics["unit_in_input"] == [5.0, 5.0] and metrics["unit_in_input_from"] == "TRF"
    assert metrics["layout"] == "NCHW" and metrics["grid"] == [20, 20]


def test_without_an_exact_trf_the_unit_is_placed_by_the_grid_scale_and_a_prefix_token_nowhere(
    monkeypatch,
):
    import erf.probe.support
    from erf.analysis.summary import erf_metrics
    from erf.probe.support import trf_or_support

    def no_graph(*args, **kwargs):
        raise ValueError("no graph analysis for this test")

    monkeypatch.setattr(erf.probe.support, "theoretical_rf", no_graph)
    model = _seeded(TinyViT(patch=4, prefix=1, mix=True))
    for position, expected in [("center", [9.5, 9.5]), ("cls", None)]:
        result = erf.measure_erf(model, (3, 16, 16), position=position, n_samples=1)
        trf = trf_or_support(model, (3, 16, 16), None, position, 0)
        metrics = erf_metrics(result, trf)
        assert trf.source == "measured_support" and trf.is_global
        assert metrics["unit_in_input"] == expected and metrics["prefix_tokens"] == 1


def test_a_tensor_whose_dims_match_no_reading_of_the_input_is_refused():
    """Attention heads [B, heads, N, head_dim] are no map of a 64 x 64 input."""
    with pytest.raises(ValueError, match=r"neither \[C, H, W\] nor \[H, W, C\].*probe\.layout"):
        resolve_grid(torch.zeros(1, 3, 17, 64), (64, 64), where="q_norm")


def test_a_valid_convolution_stack_on_a_non_square_input_is_read_as_nchw():
    """48 x 64 through ten unpadded 3x3 convs is 28 x 44: one margin of 20 on both axes."""
    grid = resolve_grid(torch.zeros(1, 32, 28, 44), (48, 64), where="m")
    assert grid.layout == "NCHW" and "valid layers" in grid.decided_by


def test_luo_size_is_referenced_to_the_probed_tokens_patch_not_the_image_centre():
    """With a global TRF the reference pixel is where the unit sits: token (1, 2) of a 4 x 4
    patch grid covers rows 4..7 and cols 8..11 of 16, centre (5.5, 9.5), rounded half up to
    (6, 10) (erf.analysis.metrics.erf_center), while the image centre (8, 8) lies outside."""
    from erf.analysis.summary import erf_metrics
    from erf.probe.support import trf_or_support

    model = _seeded(TinyViT(patch=4, prefix=1, mix=True))
    result = erf.measure_erf(model, (3, 16, 16), n_samples=2, position=(1, 2), progress=False)
    metrics = erf_metrics(result, trf_or_support(model, (3, 16, 16), None, (1, 2), 0))
    assert (metrics["center_row"], metrics["center_col"]) == (6, 10)


def test_erf_size_with_the_trf_uses_the_pixel_metrics_json_uses_on_a_strided_net():
    """Two stride-2 "same"-padded convs: the exact TRF of the centre unit is not centred on the
    grid-scale point, so the Python API needs ``trf=`` to match ``metrics.json``."""
    from erf.analysis.metrics import erf_center, unit_location
    from erf.analysis.summary import erf_metrics

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, stride=2, padding=1),
    )
    result = erf.measure_erf(model, (1, 16, 16), n_samples=8, progress=False)
    trf = erf.theoretical_rf(model, (1, 16, 16))
    (r0, r1), (c0, c1) = trf.interval(result.position)
    assert unit_location(result, trf) == ([(r0 + r1) / 2, (c0 + c1) / 2], "TRF")
    metrics = erf_metrics(result, trf, bootstrap=0)
    assert erf_center(result, unit_location(result, trf)[0]) == (
        metrics["center_row"],
        metrics["center_col"],
    )
    assert erf_center(result) != (metrics["center_row"], metrics["center_col"])  # grid scale
    assert erf.erf_size(result, trf=trf) == metrics["erf_size"]
    assert erf.erf_size(result, "mass", trf=trf, fraction=0.5) == metrics["mass_radius_50"]
    with pytest.raises(ValueError, match="needs the ERFResult"):
        erf.erf_size(result.map, trf=trf)


@pytest.mark.parametrize(
    "y, settings, message",
    [
        (torch.zeros(1, 4, 8, 8), {"layout": "NWHC"}, r"probe\.layout='NWHC'; allowed: \['auto'"),
        ((torch.zeros(1, 4, 8, 8),), {}, "m returned a tuple, not a tensor"),
        (torch.zeros(1, 17, 6), {"layout": "NCHW"}, r"NCHW needs a 4-D output; m is \[17, 6\]"),
        (torch.zeros(1, 2, 3, 8, 8), {}, r"m is \[2, 3, 8, 8\] per sample; the probe reads"),
        (torch.zeros(1, 17, 6), {"grid": (4, 5)}, r"17 tokens, which is not 0 prefix \+ 4x5 grid"),
        (torch.zeros(1, 7, 6), {}, "7 tokens, which no patch grid of the 16x16 input explains"),
    ],
)
def test_a_tensor_the_layout_cannot_read_is_refused_naming_what_decides(y, settings, message):
    with pytest.raises(ValueError, match=message) as info:
        resolve_grid(y, (16, 16), where="m", **settings)
    assert "\n" not in str(info.value)


def test_a_position_name_that_is_neither_a_place_nor_a_prefix_token_is_refused():
    with pytest.raises(ValueError, match=r"position must be .*'prefix:K', got 'middle'"):
        Grid("NCHW", 4, 8, 8).position("middle")


def test_a_target_that_returns_no_tensor_and_no_container_is_refused():
    with pytest.raises(ValueError, match="m returned a float, not a tensor"):
        select_output(1.0, None, "m")


def test_a_channel_outside_the_target_map_is_refused():
    model = _seeded(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match=r"channel 4 is outside 0\.\.3"):
        erf.measure_erf(model, (3, 8, 8), channel=4, n_samples=1)


def test_a_layernorm_over_more_than_the_channels_is_not_flagged():
    """Over [C, H, W] a unit's channels do not sum to a constant: the map is a real one."""
    model = nn.Sequential(_seeded(nn.Conv2d(3, 4, 3, padding=1)), nn.LayerNorm([4, 8, 8]))
    result = erf.measure_erf(model, (3, 8, 8), n_samples=1, progress=False)
    assert "probe_warnings" not in result.meta and result.map.max() > 1e-3


def test_a_map_at_one_stride_of_the_input_fits_as_shrunk_by_no_margin():
    assert shrink_fits(8, 16, 16, 32)  # stride 2, margin 0
    assert not shrink_fits(8, 12, 16, 16)  # square input, non-square map: two strides
