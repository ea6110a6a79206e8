"""Which layers can be probed: ``python -m erf.layers [overrides]`` lists them with their TRF.

Takes the same overrides as ``erf.run`` (``model=torchvision model.name=resnet18
inputs.size=[224,224]``) and prints every module whose output is a [C, H, W] feature map,
its output shape and its theoretical RF. Also picks default targets for the app: the last
spatial layer (``probe.target=auto``) and one layer per resolution stage (layer profiles).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from erf.app.build import graph_stops_at_tokens, input_shape_for, last_block, seeded_model
from erf.app.config import CONFIG_DIR
from erf.app.errors import one_line
from erf.probe.support import readable_layers
from erf.rf.graph import layer_table
from erf.rf.targets import auto_target, stage_layers

_TRF_KEYS = ("trf_size", "trf_stride", "trf_padding")


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width text table of ``erf.rf.graph.layer_table`` rows."""
    head = (
        f"{'module':<34} {'type':<18} {'output C×H×W':<16} {'TRF':>11} {'stride':>8} {'padding':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "×".join(str(v) for v in r["out_shape"])
        if r["trf_size"] is None:  # no TRF (see note)
            trf = stride = pad = "n/a"
        elif r.get("varies_by_unit"):  # one triple does not describe every unit: the size range
            trf = "×".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in r["trf_size_range"])
            stride = pad = "varies"
        elif r["is_global"]:
            trf, stride, pad = "global", "-", "-"
        else:
            trf, stride, pad = ("×".join(str(v) for v in r[k]) for k in _TRF_KEYS)
        lines.append(f"{r['name']:<34} {r['type']:<18} {shape:<16} {trf:>11} {stride:>8} {pad:>9}")
    return "\n".join(lines)


def format_probe_table(rows: Sequence[dict[str, Any]], after: set[str]) -> str:
    """Fixed-width table of ``erf.probe.support.readable_layers`` rows not in ``after`` (the
    modules the graph table already lists)."""
    head = f"{'module':<40} {'type':<24} {'layout':<7} {'grid C×h×w':<14} {'prefix':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["name"] in after or r["layout"] is None:
            continue
        shape = "×".join(str(v) for v in r["out_shape"])
        prefix = str(r["prefix_tokens"]) if r["layout"] == "tokens" else "-"
        lines.append(f"{r['name']:<40} {r['type']:<24} {r['layout']:<7} {shape:<14} {prefix:>6}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in overrides):
        print(__doc__)
        return 0
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        model = seeded_model(cfg.model, cfg.seed)
        input_shape = input_shape_for(cfg, model)
        rows = layer_table(model, input_shape)
        tokens = graph_stops_at_tokens(model, input_shape)
        probe_rows = readable_layers(model, input_shape) if tokens else []
    except (ValueError, TypeError, FileNotFoundError, HydraException) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if tokens:
        print(
            f"\nThe map becomes a token sequence at {tokens}. Layers the probe can read after "
            "it (TRF: the graph's where it follows the tokens, else the measured support; "
            "reported by erf.run):\n"
        )
        print(format_probe_table(probe_rows, {r["name"] for r in rows}))
        print(f"\ninput {input_shape}; name the target, e.g. probe.target={last_block(model)}")
        return 0
    print(
        f"\ninput {input_shape}; probe.target=auto picks {auto_target(rows)!r}; "
        f"stages: {', '.join(stage_layers(rows))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
