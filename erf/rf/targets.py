"""Which layers to probe by default: the last local feature map (``probe.target=auto``) and
one layer per resolution stage (layer profiles), chosen from ``erf.rf.graph.layer_table`` rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def _depth(name: str) -> int:
    return name.count(".")


def _probeable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a local TRF, adaptive pools excluded (they only resample for the head)."""
    return [
        r
        for r in rows
        if r["is_global"] is False and r["trf_size"] is not None and "Adaptive" not in r["type"]
    ]


def _shallowest_latest(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row with the fewest dots in its name; the last such row in table order."""
    shallowest = min(_depth(r["name"]) for r in group)
    return [r for r in group if _depth(r["name"]) == shallowest][-1]


def auto_target(rows: Sequence[dict[str, Any]]) -> str:
    """The shallowest (then latest) module producing the last local feature map.

    For torchvision ResNets this is "layer4", for VGG / MobileNet / ConvNeXt "features".
    Adaptive pools are passed over: they only resample the final map for the head (VGG's
    7×7 ``avgpool``).
    """
    local = _probeable(rows)
    if not local:
        raise ValueError("the model has no layer with a local (non-global) feature map to probe")
    # The deepest map has the largest TRF area (volume; rows come in named_modules order, not
    # forward order).
    deepest = max(local, key=lambda r: math.prod(r["trf_size"]))
    key = (tuple(deepest["out_shape"][1:]), tuple(deepest["trf_size"]))
    same = [r for r in local if (tuple(r["out_shape"][1:]), tuple(r["trf_size"])) == key]
    return _shallowest_latest(same)["name"]


def stage_layers(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One layer per output resolution, ordered by TRF size: the shallowest, then latest,
    module with that resolution — e.g. relu, layer1, ..., layer4 for a ResNet.

    Rows come in ``named_modules`` order (a container before its children), so a block's
    first convs, which still run at the previous resolution, do not split a stage."""
    local = _probeable(rows)
    by_resolution: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for r in local:
        by_resolution.setdefault(tuple(r["out_shape"][1:]), []).append(r)
    stages = []
    for group in by_resolution.values():
        stages.append(_shallowest_latest(group))
    stages.sort(key=lambda r: math.prod(r["trf_size"]))  # input side first
    return [r["name"] for r in stages]
