"""Hydra entry point: ``python -m erf.run [experiment=NAME] [overrides]``.

``cli`` checks the command-line overrides (one-line errors, exit 2), joins torchrun's ranks
into one output folder, then runs the Hydra ``main``: one job (``erf.app.jobs.run_job``) in
Hydra's output folder. Errors are one line on the console (``error: ...``, exit 1) with the
traceback in the job's log (``run.log``); an interrupted job prints how to resume (exit 130).
Sweeps (``experiment=...``) are Hydra multiruns; their summary is ``erf.report``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from erf.app import callbacks, torchrun
from erf.app.config import CONFIG_DIR
from erf.app.errors import JobInterrupted, log_traceback, one_line
from erf.app.jobs import run_job
from erf.app.signals import stop_requests, watching_signals
from erf.app.validate import ConfigError, preflight
from erf.probe import distributed
from erf.probe.measure import ProbeInterrupted

__all__ = ["cli", "command_line_overrides", "main", "run_job"]


def _resume_hint(saved: str, out_dir: Path) -> str:
    """``saved`` (what was saved where) and the command-line addition that continues."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    where, folder = (
        ("hydra.sweep.dir", hydra_cfg.sweep.dir) if multirun else ("hydra.run.dir", out_dir)
    )
    return f"{saved}. Continue with the same command plus: resume=true {where}={folder}"


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """One job in Hydra's output folder (module docstring)."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        with stop_requests() as should_stop:
            run_job(cfg, out_dir, should_stop)
    except (ProbeInterrupted, JobInterrupted) as stop:
        saved = (
            f"interrupted after {stop.partial.meta['samples_seen']} samples; checkpoint saved in "
            f"{out_dir}"
            if isinstance(stop, ProbeInterrupted)
            else str(stop)
        )
        print(_resume_hint(saved, out_dir), file=sys.stderr, flush=True)
        sys.exit(130)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, InstantiationException) as exc:
        log_traceback(exc)  # the whole traceback in the job's log file, not on the console
        raise SystemExit(f"error: {one_line(exc)}") from None
    if hydra_cfg.mode != RunMode.MULTIRUN and distributed.is_main_process():
        print(f"results: {out_dir}", file=sys.stdout, flush=True)


# Hydra's flags that take the next argument as their value (``--cfg job``, ``-cn NAME``).
_FLAGS_WITH_VALUE = {
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def command_line_overrides(args: list[str]) -> list[str]:
    """The ``key=value`` overrides among ``erf.run``'s arguments: flags and their values
    (``--cfg job``, ``--info defaults``) are not overrides."""
    overrides, previous = [], ""
    for arg in args:
        is_value = previous in _FLAGS_WITH_VALUE or (
            previous in ("--info", "-i") and arg in _INFO_TOPICS
        )
        if not arg.startswith("-") and not is_value:
            overrides.append(arg)
        previous = "" if is_value else arg
    return overrides


def cli() -> None:
    """``python -m erf.run``: check the overrides (one-line errors, exit 2), then run Hydra."""
    overrides = command_line_overrides(sys.argv[1:])
    try:
        preflight(overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    with watching_signals():  # a stop request between two jobs of a sweep is kept
        if distributed.launched():  # torchrun: one output folder for all ranks
            sys.argv += torchrun.hydra_overrides(overrides)
        main()
    if callbacks.FAILURES:  # Hydra only warns when a sweep-end callback raises
        print(f"error: {callbacks.FAILURES[0]}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    cli()
