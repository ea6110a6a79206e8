"""torchrun glue: every rank of a multi-process job composes the same config and writes into
rank 0's output folder (the probe's sharding itself is ``erf.probe.distributed``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from erf.app.config import CONFIG_DIR
from erf.probe.distributed import init_from_env, wait_for_ranks


def hydra_overrides(overrides: Sequence[str], config_dir: str = str(CONFIG_DIR)) -> list[str]:
    """Extra command-line overrides that make every rank of a torchrun job use one output
    folder: rank 0 resolves ``hydra.run.dir`` and ``hydra.sweep.dir`` (their ``${now:...}``
    timestamps could differ between ranks) and broadcasts them. Ranks > 0 also write no
    ``.hydra`` folder, no logs and run no callbacks (the sweep summary is rank 0's).

    A bad ``ERF_DIST_TIMEOUT_S``, or ranks that do not all join within it, exit with one line
    (``error: ...``, exit status 1)."""
    try:
        init_from_env()
        wait_for_ranks("the start of the run")
        resolved: list[Any] = [None]
        if dist.get_rank() == 0:
            resolved = [_resolved_hydra(overrides, config_dir)]
        dist.broadcast_object_list(resolved, src=0, device=torch.device("cpu"))
    except (ValueError, RuntimeError) as exc:  # the timeout, a rank that went away
        raise SystemExit(f"error: {' '.join(str(exc).split())}") from None
    run_dir, sweep_dir, callbacks = resolved[0]
    extra = [f"hydra.run.dir={_quoted(run_dir)}", f"hydra.sweep.dir={_quoted(sweep_dir)}"]
    if dist.get_rank() > 0:
        extra += [
            "hydra.output_subdir=null",
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
            *(f"~hydra.callbacks.{name}" for name in callbacks),
        ]
    return extra


def _resolved_hydra(overrides: Sequence[str], config_dir: str) -> tuple[str, str, list[str]]:
    """hydra.run.dir and hydra.sweep.dir resolved now, and the names of hydra.callbacks."""
    first = []  # a sweep's folders do not depend on the swept values: take the first of each
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if o.is_sweep_override():
            prefix = "+" if o.is_add() else "++" if o.is_force_add() else ""
            first.append(f"{prefix}{o.key_or_group}={next(o.sweep_string_iterator())}")
        else:
            first.append(o.input_line)
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = compose("config", overrides=first, return_hydra_config=True)
    callbacks = list(cfg.hydra.callbacks or {})
    return str(cfg.hydra.run.dir), str(cfg.hydra.sweep.dir), callbacks


def _quoted(path: str) -> str:
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
