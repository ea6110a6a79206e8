"""torchvision models whose outputs are dicts: segmentation ({"out", "aux"}, dense logits at
input resolution) and a detection backbone (an ordered dict of FPN levels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models import detection, segmentation

import erf


@pytest.fixture(scope="module")
def deeplab():
    torch.manual_seed(0)
    return segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, aux_loss=True
    )


def test_a_segmentation_output_is_refused_naming_out_and_aux(deeplab):
    with pytest.raises(
        ValueError, match=r"OrderedDict \(out: \[B, 21, 64, 64\], aux: .*probe\.output"
    ):
        erf.measure_erf(deeplab, (3, 64, 64), n_samples=1, batch_size=1)


def test_the_segmentation_logits_are_a_dense_map_probed_at_their_centre_pixel(deeplab):
    result = erf.measure_erf(deeplab, (3, 64, 64), output="out", n_samples=1)
    assert result.target_shape == (21, 64, 64) and result.position == (32, 32)
    assert result.meta["layout"] == "NCHW" and result.meta["unit_in_input"] == [32.0, 32.0]
    assert np.isfinite(result.map).all() and result.map.max() > 0


def test_a_detection_backbone_level_is_chosen_by_its_key():
    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    levels = erf.measure_erfs(
        model.backbone, (3, 64, 64), [None], n_samples=1, output="0", progress=False
    )
    assert levels[0].meta["layout"] == "NCHW" and levels[0].map.max() > 0
    with pytest.raises(ValueError, match=r"no 'p9'.*choices: 0: \[B, 256"):
        erf.measure_erf(model.backbone, (3, 64, 64), output="p9", n_samples=1)
