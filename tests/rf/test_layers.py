"""Default targets and stage selection from a layer table (hand-made tables, and a sequence stack's
graph table)."""

import pytest

from erf.app.layers import format_table
from erf.nets.luo import ConvStack
from erf.rf.graph import layer_table
from erf.rf.targets import auto_target, stage_layers


def _row(name, hw, is_global=False, channels=8):
    return {
        "name": name,
        "type": "X",
        "out_shape": [channels, hw, hw],
        "trf_size": [64 // hw, 64 // hw],  # coarser maps see more
        "trf_stride": [1, 1],
        "trf_padding": [1, 1],
        "is_global": is_global,
    }


# named_modules order: a container before its children; a block's first conv still runs at
# the previous resolution (torchvision puts the stride in the second conv).
RESNET_LIKE = [
    _row("conv1", 16),
    _row("bn1", 16),
    _row("relu", 16),
    _row("maxpool", 8),
    _row("layer1", 8),
    _row("layer1.0", 8),
    _row("layer1.0.conv1", 8),
    _row("layer2", 4),
    _row("layer2.0", 4),
    _row("layer2.0.conv1", 8),  # still at layer1's resolution
    _row("layer2.0.conv2", 4),
    _row("avgpool", 1, is_global=True),
]


def test_auto_target_is_the_shallowest_latest_module_of_the_last_local_map():
    assert auto_target(RESNET_LIKE) == "layer2"


def test_stages_are_one_shallow_module_per_resolution_run():
    assert stage_layers(RESNET_LIKE) == ["relu", "layer1", "layer2"]


def test_a_model_without_local_maps_has_no_auto_target():
    with pytest.raises(ValueError, match="no layer"):
        auto_target([_row("fc", 1, is_global=True)])


def test_layer_table_text_marks_global_layers():
    text = format_table(RESNET_LIKE)
    assert "layer2" in text and "global" in text.splitlines()[-1]


def test_auto_target_passes_over_adaptive_pools_that_only_resample_for_the_head():
    rows = [
        _row("features", 2),
        {**_row("avgpool", 7), "type": "AdaptiveAvgPool2d", "trf_size": [99, 99]},
    ]
    assert auto_target(rows) == "features"


def test_misaligned_layers_are_listed_without_a_trf_and_never_picked():
    bad = {
        **_row("merge", 2),
        "trf_size": None,
        "trf_stride": None,
        "trf_padding": None,
        "is_global": None,
        "note": "not aligned",
    }
    rows = [*RESNET_LIKE[:-1], bad]
    assert "n/a" in format_table(rows).splitlines()[-1]
    assert auto_target(rows) == "layer2"
    assert "merge" not in stage_layers(rows)


def test_layers_that_vary_by_unit_show_their_size_range_and_no_single_stride():
    varying = {
        **_row("merge", 2),
        "trf_size": [9, 9],
        "varies_by_unit": True,
        "trf_size_range": [[7, 9], [9, 9]],
        "note": "varies by unit: ...",
    }
    last = format_table([*RESNET_LIKE[:-1], varying]).splitlines()[-1]
    assert "7-9×9" in last and last.count("varies") == 2


def test_the_auto_target_of_a_sequence_stack_is_its_last_conv():
    rows = layer_table(ConvStack(3, channels=1, dims=1), (1, 32))
    assert auto_target(rows) == "2" and stage_layers(rows) == ["2"]
