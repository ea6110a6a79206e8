"""ERFs of timm families on CPU (random init, 64 px, 2 samples), checked against the graph TRF.

For every model the probed map is finite and non-zero. Where the graph TRF is local (no
``global_context``), the map's non-zero support lies inside ``trf.interval(position,
clipped=True)``. Checked (timm 1.0.31):

* ResNet (resnet18 layer1, resnet10t layer1): local TRF, support inside. Built with
  ``zero_init_last=False``: timm zero-inits each residual branch's last BN, so at init the
  branches are off and the ERF is only the shortcut path (still inside the TRF, but it would
  not exercise the branches).
* resnet10t layer2: the graph FAILS, on purpose: its avg-down shortcut (AvgPool2d 2x2 stride 2,
  then a 1x1 conv) and the main path's 3x3 stride-2 conv have centres half a pixel apart, so
  the sum has no shift-invariant TRF ("branches ... are not aligned"). The ERF is still measured.
* ConvNeXt (convnext_atto stages.0): local TRF (LayerNorm2d normalises over channels only),
  support inside. Its blocks start with layer scale 1e-6, so their share of the map is tiny
  but non-zero.
* EfficientNet (efficientnet_b0 blocks.1): squeeze-excitation gates make the graph TRF
  ``global_context`` (the gate is a scalar of the whole map, treated as a constant); the ERF
  does reach beyond the local TRF, as it should. mobilenetv2_050 (the same inverted-residual
  blocks without SE): local, support inside.
* RegNet (regnetx_002 s2, ``zero_init_last=False`` as for ResNet): local, support inside.
* MetaFormer, NCHW stages: poolformer_s12 stages.0 normalises with GroupNorm(1, C), whose
  statistics span the whole map: graph TRF ``global_context``, ERF beyond the local TRF.
  convformer_s18 stages.0 (LayerNorm over channels, separable 7x7 convs; 96 px so its 79-px
  TRF fits): local, support inside.
* Large kernels: timm 1.0.31 has no RepLKNet, SLaK, UniRepLKNet or VAN (``timm.list_models``
  for *replk*, *lknet*, *slak*, *van_* is empty), so: convnext_atto with ``kernel_sizes=31``
  (31x31 depthwise; 128 px) and inception_next_atto (11-pixel band kernels); the 31-kernel
  block sees farther than the 7-kernel one.
* Not covered here: token models (ViT, DeiT, Swin): tests/rf/test_graph_tokens.py and
  tests/rf/test_graph_windows.py check their graph boxes against gradient support.
"""

import numpy as np
import pytest
import torch

from erf import measure_erf, theoretical_rf

timm = pytest.importorskip("timm")

SIZE = 64
KW = dict(n_samples=2, batch_size=2, device="cpu", seed=0)


def _model(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs).eval()


def _support(result):
    rows, cols = np.nonzero(result.map)
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def _inside(support, interval):
    return all(lo >= a and hi <= b for (lo, hi), (a, b) in zip(support, interval))


LOCAL = {
    "resnet18": ("resnet18", {"zero_init_last": False}, "layer1", SIZE),
    "resnet10t": ("resnet10t", {"zero_init_last": False}, "layer1", SIZE),
    "convnext_atto": ("convnext_atto", {}, "stages.0", SIZE),
    "mobilenetv2_050": ("mobilenetv2_050", {}, "blocks.2", SIZE),
    "regnetx_002": ("regnetx_002", {"zero_init_last": False}, "s2", SIZE),
    "convformer_s18": ("convformer_s18", {}, "stages.0", 96),
    "convnext_atto_k31": ("convnext_atto", {"kernel_sizes": 31}, "stages.0.blocks.0", 128),
    "inception_next_atto": ("inception_next_atto", {}, "stages.0.blocks.0", SIZE),
}


@pytest.mark.parametrize("name, kwargs, target, size", LOCAL.values(), ids=LOCAL.keys())
def test_a_local_timm_erf_is_finite_nonzero_and_inside_the_graph_trf(name, kwargs, target, size):
    model = _model(name, **kwargs)
    trf = theoretical_rf(model, input_shape=(3, size, size), target=target)
    assert not trf.global_context
    result = measure_erf(model, (3, size, size), target=target, **KW)
    assert np.isfinite(result.map).all() and result.map.sum() > 0
    interval = trf.interval(result.position, clipped=True)
    assert _inside(_support(result), interval), (_support(result), interval)


GLOBAL = {
    "efficientnet_b0 (squeeze-excitation)": ("efficientnet_b0", "blocks.1"),
    "poolformer_s12 (GroupNorm over the map)": ("poolformer_s12", "stages.0"),
}


@pytest.mark.parametrize("name, target", GLOBAL.values(), ids=GLOBAL.keys())
def test_global_context_is_flagged_by_the_graph_and_the_erf_reaches_beyond_the_local_trf(
    name, target
):
    model = _model(name)
    trf = theoretical_rf(model, input_shape=(3, SIZE, SIZE), target=target)
    assert trf.global_context
    result = measure_erf(model, (3, SIZE, SIZE), target=target, **KW)
    assert np.isfinite(result.map).all() and result.map.sum() > 0
    interval = trf.interval(result.position, clipped=True)
    assert not _inside(_support(result), interval)


def test_resnet10t_avg_down_shortcut_has_an_offset_graph_trf_holding_its_erf():
    # the 2x2 average-pool shortcut and the strided 3x3 path are centred apart, but their hull
    # moves by the same stride at every unit: one exact (size, stride, padding)
    model = _model("resnet10t", zero_init_last=False)
    rf = theoretical_rf(model, input_shape=(3, SIZE, SIZE), target="layer2")
    assert rf.source == "graph" and not rf.varies_by_unit
    assert rf.notes[0].startswith("offset branches") and "not aligned" in rf.notes[0]
    result = measure_erf(model, (3, SIZE, SIZE), target="layer2", **KW)
    assert np.isfinite(result.map).all() and result.map.sum() > 0
    assert _inside(_support(result), rf.interval(result.position, clipped=True))


def test_a_31_pixel_convnext_kernel_sees_farther_than_the_7_pixel_one():
    widths = {}
    for k in (7, 31):
        model = _model("convnext_atto", kernel_sizes=k)
        result = measure_erf(model, (3, 128, 128), target="stages.0.blocks.0", **KW)
        (r0, r1), _ = _support(result)
        widths[k] = r1 - r0 + 1
    assert widths[7] == 4 + 6 * 4  # stem 4x4 stride 4, then a 7x7 depthwise conv at stride 4
    assert widths[31] > 2 * widths[7]


@pytest.mark.parametrize(
    "name, target, window",
    [
        # conv1: 7x7, stride 2, padding 3; centre unit (16, 16) of 32x32 -> rows 29..35
        ("resnet18", "conv1", (16 * 2 - 3, 16 * 2 + 3)),
        # stem.0: 4x4, stride 4, no padding; centre unit (8, 8) of 16x16 -> rows 32..35
        ("convnext_atto", "stem.0", (8 * 4, 8 * 4 + 3)),
    ],
)
def test_the_centre_stem_unit_sees_exactly_its_kernel_window(name, target, window):
    model = _model(name)
    result = measure_erf(model, (3, SIZE, SIZE), target=target, **KW)
    assert _support(result) == (window, window)
    trf = theoretical_rf(model, input_shape=(3, SIZE, SIZE), target=target)
    assert trf.interval(result.position, clipped=True) == (window, window)
