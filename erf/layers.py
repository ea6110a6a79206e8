"""Which layers can be probed: ``python -m erf.layers [overrides]`` lists them with their TRF.

Takes the same overrides as ``erf.run`` (``model=torchvision model.name=resnet18
inputs.size=[224,224]``) and prints every module whose output is a [C, H, W] feature map,
its output shape and its theoretical RF. Also picks default targets for the app: the last
spatial layer (``probe.target=auto``) and one layer per resolution stage (layer profiles).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


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
    # The deepest map has the largest TRF (rows come in named_modules order, not forward order).
    deepest = max(local, key=lambda r: r["trf_size"][0] * r["trf_size"][1])
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
    stages.sort(key=lambda r: r["trf_size"][0] * r["trf_size"][1])  # input side first
    return [r["name"] for r in stages]


_TRF_KEYS = ("trf_size", "trf_stride", "trf_padding")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width text table of ``erf.graph.layer_table`` rows."""
    head = (
        f"{'module':<34} {'type':<18} {'output C×H×W':<16} {'TRF':>11} {'stride':>8} {'padding':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "×".join(str(v) for v in r["out_shape"])
        if r["trf_size"] is None:  # misaligned branches: no shift-invariant TRF (see note)
            trf = stride = pad = "n/a"
        elif r["is_global"]:
            trf, stride, pad = "global", "-", "-"
        else:
            trf, stride, pad = ("×".join(str(v) for v in r[k]) for k in _TRF_KEYS)
        lines.append(f"{r['name']:<34} {r['type']:<18} {shape:<16} {trf:>11} {stride:>8} {pad:>9}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from erf.graph import layer_table
    from erf.run import build_model, input_shape_for, one_line

    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in overrides):
        print(__doc__)
        return 0
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        model = build_model(cfg.model)
        input_shape = input_shape_for(cfg, model)
        rows = layer_table(model, input_shape)
    except (ValueError, TypeError, FileNotFoundError, HydraException) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(
        f"\ninput {input_shape}; probe.target=auto picks {auto_target(rows)!r}; "
        f"stages: {', '.join(stage_layers(rows))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
