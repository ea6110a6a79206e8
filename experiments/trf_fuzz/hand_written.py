"""The modules the TRF issue listed, one line each, through the fuzzer's checker.

    python experiments/trf_fuzz/hand_written.py OUT.json

prints exact / refused / wrong per module (every probed unit's box against the gradient
support of a positive float64 copy, whole-map scalars held constant; tests/rf/trf_fuzz.py),
and what the layer's TRF record claims (one size/stride/padding, or "varies by unit"). Run
from the repository root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from rf.trf_fuzz import (  # noqa: E402
    Adaptive,
    AxisReduce,
    Conv,
    ConvT,
    Gate,
    Merge,
    Norm,
    Pad,
    Resize,
    RollFlip,
    Tokens,
    chain,
    check_net,
    dag,
)

from erf.rf.graph import graph_rf  # noqa: E402

CASES = {
    "x + x.mean(dim=2, keepdim=True)": chain(
        (2, 12, 12), Conv(2, 2, 3, padding=1), AxisReduce("mean", 2, "add")
    ),
    "x * sigmoid(x.mean(3, keepdim=True))": chain(
        (2, 12, 12), Conv(2, 2, 3, padding=1), AxisReduce("mean", 3, "mul")
    ),
    "torch.cat along rows, then a conv": dag(
        (1, 10, 10),
        (Conv(1, 1, 3, padding=1), 0),
        (Merge("cat", 2), 0, 1),
        (Conv(1, 1, 3, stride=2, padding=1), 2),
    ),
    "AdaptiveAvgPool2d(7) from 20x20": chain(
        (1, 20, 20), Conv(1, 1, 3, padding=1), Adaptive("avg", (7, 7))
    ),
    "AdaptiveAvgPool2d(9) from 6x6": chain(
        (1, 6, 6), Conv(1, 1, 3, padding=1), Adaptive("avg", (9, 9))
    ),
    "Upsample(scale_factor=1.5, nearest)": chain(
        (1, 10, 10),
        Conv(1, 1, 3, padding=1),
        Resize("nearest", scale=1.5, module=True),
        Conv(1, 1, 3, padding=1),
    ),  # fmt: skip
    "Upsample(scale_factor=1.5, bilinear)": chain(
        (1, 10, 10),
        Conv(1, 1, 3, padding=1),
        Resize("bilinear", scale=1.5, module=True),
        Conv(1, 1, 3, padding=1),
    ),  # fmt: skip
    "ReflectionPad2d(2) + conv": chain((1, 12, 12), Pad((2, 2, 2, 2), "reflect"), Conv(1, 1, 5)),
    "F.pad circular + conv": chain((1, 12, 12), Pad((2, 2, 2, 2), "circular"), Conv(1, 1, 5)),
    "Conv2d(padding_mode=reflect)": chain(
        (1, 12, 12), Conv(1, 1, 3, padding=3, padding_mode="reflect")
    ),
    "ConvTranspose2d(stride 2, dilation 2)": chain(
        (1, 6, 6), ConvT(1, 1, 3, stride=2, dilation=2), Conv(1, 1, 3, padding=1)
    ),
    "conv -> GroupNorm(1, 8) -> conv": chain(
        (1, 12, 12), Conv(1, 8, 3, padding=1), Norm("group", 8, 1), Conv(8, 1, 3, padding=1)
    ),
    "conv -> InstanceNorm2d -> conv": chain(
        (1, 12, 12), Conv(1, 8, 3, padding=1), Norm("instance", 8), Conv(8, 1, 3, padding=1)
    ),
    "ASPP rates 6/12/18 at the border": dag(
        (2, 20, 20),
        (Conv(2, 2, 3, padding=6, dilation=6), 0),
        (Conv(2, 2, 3, padding=12, dilation=12), 0),
        (Conv(2, 2, 3, padding=18, dilation=18), 0),
        (Merge("add"), 1, 2),
        (Merge("add"), 4, 3),
    ),
    "squeeze-excitation gate": chain((2, 9, 9), Conv(2, 2, 3, padding=1), Gate("se", 2, 9, 9)),
    "ASPP pooling branch (cat)": chain((2, 9, 9), Conv(2, 2, 3, padding=1), Gate("aspp", 2, 9, 9)),
    "torch.roll (Swin's cyclic shift)": chain(
        (1, 10, 10), Conv(1, 1, 3, padding=1), RollFlip("roll", (2, 3), 3)
    ),
    "torch.flip": chain((1, 10, 10), Conv(1, 1, 3, padding=1), RollFlip("flip", (3,))),
    "tokens and back (flatten, transpose, Linear)": chain(
        (2, 6, 6), Conv(2, 2, 3, padding=1), Tokens(2, 6, 6, "linear")
    ),
}


def _record(net) -> str:
    """What the layer's TRF record says of itself: "varies by unit", the local-box convention,
    or the one triple it claims (an older engine has neither field)."""
    try:
        rf = graph_rf(net, net.input_shape).for_target(None)
    except (TypeError, ValueError) as e:
        return f"refused: {str(e)[:60]}"
    if getattr(rf, "varies_by_unit", False):
        ranges = "x".join(f"{lo}-{hi}" if lo != hi else f"{lo}" for lo, hi in rf.size_range)
        return f"varies by unit ({ranges})"
    if getattr(rf, "convention", ""):
        return f"{rf.size[0]}x{rf.size[1]}, local-box convention"
    return f"{rf.size[0]}x{rf.size[1]} / {rf.stride[0]} / {rf.padding[0]}"


def main(out: Path) -> None:
    results = {}
    for name, net in CASES.items():
        verdict = check_net(net)
        record = _record(net)
        results[name] = {"status": verdict.status, "record": record, "detail": verdict.detail}
        print(f"{verdict.status:8s} {name:46s} {record}", flush=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
