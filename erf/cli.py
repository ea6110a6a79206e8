"""The ``erf`` command: ``erf <command> [arguments]`` (``python -m erf`` does the same).

A thin entry point: each command hands its arguments to ``erf.app`` unchanged, so
``erf run ...`` is ``python -m erf.run ...``, ``erf layers ...`` is ``python -m erf.layers ...``,
``erf report ...`` is ``python -m erf.report ...`` and ``erf train-summary ...`` is
``python -m erf.trainjob ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import erf

USAGE = """\
usage: erf <command> [arguments]

Measure effective receptive fields (ERFs) of PyTorch vision models.

commands:
  run [experiment=NAME] [key=value ...]  one measurement, or a sweep (Hydra: --cfg job, -m, ...)
  layers [key=value ...]                 list a model's probeable layers with their TRF
  report DIR [--x KEY] [--study NAME]    rebuild a sweep's summary.csv, slopes.json and figures
  train-summary DIR [--scale log]        rebuild a trained_vs_untrained sweep's summary
  experiments                            list the experiment configs, one line each

options:
  -h, --help  show this text; `erf <command> --help` shows a command's own help
  --version   show the version

examples:
  erf experiments
  erf run experiment=depth_sweep scale=tiny
  erf layers model=torchvision model.name=resnet18 inputs.size=[224,224]
  erf report outputs/depth_sweep/<date>_<time>
"""


def _run(args: list[str]) -> int:
    """``python -m erf.run``: Hydra reads ``sys.argv``, so the arguments go there."""
    from erf.app.run import cli

    sys.argv = [sys.argv[0], *args]
    cli()
    return 0


# Each command imports its app module when it runs, so `erf --help` and `erf experiments` do
# not load torch, torchvision and Hydra (seconds on a cold start).


def _layers(args: list[str]) -> int:
    from erf.app.layers import main

    return main(args)


def _report(args: list[str]) -> int:
    from erf.app.report import main

    return main(args, prog="erf report")


def _train_summary(args: list[str]) -> int:
    from erf.app.trainjob import main

    return main(args, prog="erf train-summary")


def _experiments(args: list[str]) -> int:
    from erf.app.experiments import experiments, format_listing

    if args in (["-h"], ["--help"]):
        print("usage: erf experiments\n\nList every experiment config (erf run experiment=NAME).")
        return 0
    if args:
        raise _UsageError(f"erf experiments takes no arguments, got {' '.join(args)}")
    print(format_listing(experiments()))
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": _run,
    "layers": _layers,
    "report": _report,
    "train-summary": _train_summary,
    "experiments": _experiments,
}


class _UsageError(Exception):
    """A wrong command line: one line on stderr, exit status 2."""


@contextlib.contextmanager
def _one_line_parse_errors(command: str) -> Iterator[None]:
    """Argument errors of the commands' own parsers as one line (argparse prints its usage
    first, on several lines)."""

    def error(parser: argparse.ArgumentParser, message: str) -> None:
        raise _UsageError(f"{message} (see: erf {command} --help)")

    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``erf <command> [arguments]``; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``erf experiments | head -3``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", flush=True)
        return 0
    if args[0] == "--version":
        print(f"erf {erf.__version__} (distribution erf-lab)", flush=True)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        raise _UsageError(f"unknown command {command!r}; choose from: {', '.join(COMMANDS)}")
    with _one_line_parse_errors(command):
        return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
