"""Hydra entry point: ``python -m erf.run [experiment=NAME] [overrides]``.

``cli`` checks the command line before Hydra creates any folder (``erf.app.validate.preflight``:
override syntax, keys, every sweep value, the output folder; one line ``error: ...``, exit 2),
joins torchrun's ranks into one output folder, then runs the Hydra ``main``: one job
(``erf.app.jobs.run_job``) in Hydra's output folder.

A job that refuses its config (``ValueError``, ``TypeError``, ``FileNotFoundError``, a
failed instantiation: what only the built model or data can tell, e.g. an unknown
``probe.target`` of a timm model) prints one line, exits 2 and removes the folder Hydra made
for it when the job wrote nothing into it. Other failures (``RuntimeError``, NaN/Inf with
``probe.on_nonfinite=raise``) print one line, exit 1 and keep the traceback in the job's log
(``run.log``). ``HYDRA_FULL_ERROR=1`` prints the traceback on the console too. An
interrupted job prints how to resume (exit 130); a second Ctrl-C stops at once, in one line.
Sweeps (``experiment=...``) are Hydra multiruns; their summary is ``erf.report``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from erf.app import callbacks, torchrun
from erf.app.config import CONFIG_DIR
from erf.app.errors import JobInterrupted, log_traceback, one_line
from erf.app.figures import output_of
from erf.app.jobs import run_job
from erf.app.signals import stop_requests, watching_signals
from erf.app.validate import ConfigError, preflight, quote_non_ascii
from erf.io.figure_style import figure_output
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
        with stop_requests() as should_stop, figure_output(output_of(cfg.get("plot"))):
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
    except REFUSALS as exc:
        _full_error(exc)
        removed = _remove_if_unwritten(out_dir, hydra_cfg.mode == RunMode.MULTIRUN)
        if not removed:
            log_traceback(exc)
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        sys.exit(2)
    except FloatingPointError as exc:  # probe.on_nonfinite=raise
        _full_error(exc)
        log_traceback(exc)
        print(f"error: probe.on_nonfinite=raise stopped the run: {one_line(exc)} (of "
              f"probe.n_samples={cfg.probe.n_samples}; probe.on_nonfinite=skip skips and "
              "counts them)", file=sys.stderr, flush=True)  # fmt: skip
        sys.exit(1)
    except (RuntimeError, OSError) as exc:  # OSError: a full or read-only disk
        _full_error(exc)
        _log_quietly(exc)  # the whole traceback in the job's log file, not on the console
        raise SystemExit(f"error: {one_line(exc)}") from None
    if hydra_cfg.mode != RunMode.MULTIRUN and distributed.is_main_process():
        if (out_dir / "metrics.json").is_file() or (out_dir / "summary.csv").is_file():
            try:
                callbacks.write_report(out_dir, OmegaConf.create({"hydra": hydra_cfg}))
            except OSError as exc:
                _log_quietly(exc)
                raise SystemExit(f"error: the report page: {one_line(exc)}") from None
        print(f"results: {out_dir}", file=sys.stdout, flush=True)


def _log_quietly(exc: BaseException) -> None:
    """``log_traceback``, without logging's own traceback on the console when the log file
    cannot be written either (the disk that failed the job is full)."""
    raise_exceptions = logging.raiseExceptions
    logging.raiseExceptions = False
    try:
        log_traceback(exc)
    finally:
        logging.raiseExceptions = raise_exceptions


# A job's refusals of its config: exit 2, and no folder left behind when nothing was written.
REFUSALS = (ValueError, TypeError, FileNotFoundError, InstantiationException)
# What Hydra itself writes into a job folder before the job runs.
_HYDRA_FILES = {".hydra", "run.log", "main.log", "multirun.yaml"}


def _full_error(exc: BaseException) -> None:
    """With ``HYDRA_FULL_ERROR=1``, the traceback on the console (above the one-line error)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(exc, file=sys.stderr)


def _remove_if_unwritten(out_dir: Path, multirun: bool) -> bool:
    """Remove the job folder when it holds only what Hydra put there (``.hydra/``, the log):
    a refused job leaves nothing behind. In a sweep, the sweep folder goes too when nothing
    but Hydra's ``multirun.yaml`` is left in it. True when the job folder was removed."""
    if not out_dir.is_dir() or not {p.name for p in out_dir.iterdir()} <= _HYDRA_FILES:
        return False
    if not distributed.is_main_process():
        return True  # rank 0 removes the shared folder
    shutil.rmtree(out_dir, ignore_errors=True)
    parent = out_dir.parent
    if multirun and parent.is_dir() and {p.name for p in parent.iterdir()} <= {"multirun.yaml"}:
        shutil.rmtree(parent, ignore_errors=True)
    return True


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
    """``python -m erf.run``: check the command line before any folder exists (one-line
    errors, exit 2), then run Hydra. Non-ASCII plain values are quoted for Hydra's grammar
    (``label=日本語``); a second Ctrl-C ends in one line (exit 130)."""
    sys.argv[1:] = quote_non_ascii(sys.argv[1:])
    overrides = command_line_overrides(sys.argv[1:])
    multirun = any(a in ("-m", "--multirun") for a in sys.argv[1:])
    try:
        preflight(overrides, multirun=multirun)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    with watching_signals():  # a stop request between two jobs of a sweep is kept
        if distributed.launched():  # torchrun: one output folder for all ranks
            sys.argv += torchrun.hydra_overrides(overrides)
        try:
            main()
        except KeyboardInterrupt:  # only if a Ctrl-C gets past the stop handlers
            print(
                "error: interrupted at once (a second Ctrl-C): this batch was not saved; the "
                "last checkpoint.npz, if any, resumes with resume=true",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(130)
    if callbacks.FAILURES:  # Hydra only warns when a sweep-end callback raises
        print(f"error: {callbacks.FAILURES[0]}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    cli()
