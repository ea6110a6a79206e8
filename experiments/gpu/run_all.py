"""The whole GPU run in one command, within a wall-clock budget (``experiments/gpu/run.sh``).

Here: the options, the budget and the loop over the steps (a step that would not fit what is
left is not started, and the rest are recorded as "not run"). ``gpu_steps.py``: each step's
command and the reader of its results (``gpu_install.py``: the install step). ``gpu_report.py``: the
targets, the summary table (met / not met / not run), ``run.json`` and the archive, rewritten
after every step. ``gpu_common.py``: the step record, one process under a timeout.

Standard library only until the install step has run: nothing here imports hydra (or torch:
the hardware is read in a subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

# the sibling modules, also when this file is loaded by path (tests/e2e/test_gpu_script.py)
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import gpu_install as install  # noqa: E402
import gpu_report as report  # noqa: E402
import gpu_steps as steps  # noqa: E402
from gpu_common import REPO, STOP, Failure, Step, run_process  # noqa: E402

__all__ = ["Run", "main", "parse_args", "run_process"]  # run_process: the test calls it here

NEEDED = ("torch", "torchvision", "numpy", "scipy", "matplotlib", "yaml", "tqdm", "packaging")
FINISH_S = 10.0  # kept back from every step for writing run.json and packing
STEPS = steps.STEPS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage + message
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(
        prog="experiments/gpu/run.sh",
        description="Benchmarks, many-draws timing and every Luo study at paper scale on one "
        "GPU, within a wall-clock budget; results packed into <out>/" + report.ARCHIVE + ".",
    )
    # fmt: off
    p.add_argument("--out", type=Path, help="results folder (default: $OUT, else outputs/gpu)")
    p.add_argument("--work", type=Path,
                   help="where the steps write (default: --out); with a separate --work, --out "
                   "gets only the archive and the key files (the device tool returns 8 files)")
    p.add_argument("--budget", type=float, default=480.0,
                   help="wall-clock budget in seconds for the whole run (default 480)")
    p.add_argument("--cpu", action="store_true", help="device=cpu (no CUDA needed)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes everywhere (a rehearsal)")
    p.add_argument("--skip-install", action="store_true", help="the project is importable")
    p.add_argument("--dry-run-install", action="store_true",
                   help="print the install commands and exit")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl",
                   help="folder of the carried wheels (default .whl/ at the repo root)")
    p.add_argument("--steps", default=",".join(STEPS),
                   help=f"comma-separated subset of {','.join(STEPS)} (default: all)")
    p.add_argument("--min-step", type=float,
                   help="start no step with less than this many seconds left (default: per step)")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds between SIGTERM and SIGKILL for a step past its timeout")
    p.add_argument("--model", help="torchvision model of the benchmarks")
    p.add_argument("--n-small", type=int, help="samples of the 224 benchmark (default 2048)")
    p.add_argument("--batch-small", type=int, help="batch of the 224 benchmark (default 256)")
    p.add_argument("--n-large", type=int, help="samples of the 1024 benchmark (default 256)")
    p.add_argument("--batch-large", type=int, help="batch of the 1024 benchmark (default 16)")
    p.add_argument("--repeats", type=int, help="timed repeats per benchmark method (default 2)")
    p.add_argument("--draws", type=int, help="random draws of the many-draws pass (default 20)")
    p.add_argument("--suite-experiments",
                   help="comma-separated studies of the suite, or all (default: all; --tiny: "
                   "depth_sweep)")
    # fmt: on
    return _checked(p, p.parse_args(argv))


def _checked(p: _Parser, args: argparse.Namespace) -> argparse.Namespace:
    """The parsed options checked, with the sizes, device and file-name prefix they imply."""
    names = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in names if s not in STEPS]
    if unknown or not names:
        p.error(f"--steps: unknown {unknown}; choose from {','.join(STEPS)}")
    args.steps = names
    if args.budget <= 0:
        p.error("--budget must be positive")
    args.out = (args.out or Path(os.environ.get("OUT") or "outputs/gpu")).resolve()
    args.work = (args.work or args.out).resolve()
    args.sizes = steps.sizes(args)
    args.device = "cpu" if args.cpu else "cuda"
    args.prefix = "cpu" if args.cpu else "gpu"
    return args


class Run:
    """One run: the budget, the steps in order, and what ``steps`` and ``report`` read."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.sizes = args.sizes
        self.py = sys.executable
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget
        self.steps = {name: Step(name) for name in args.steps}
        kept = report.earlier_steps(args.work)  # None: no readable run.json there
        if kept is not None:  # steps outside --steps keep what an earlier run recorded
            ran = self.steps
            self.steps = {n: ran.get(n) or kept[n] for n in STEPS if n in ran or n in kept}
        self.hardware: dict[str, Any] = {}
        self.notes: list[str] = []
        self.archive: dict[str, Any] = {}

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        """An erf step's command and environment (``steps.SPECS``)."""
        build = steps.SPECS[name].command
        if build is None:
            raise AssertionError(name)
        return build(self)

    # budget
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def plan(self, name: str) -> tuple[float, float | None]:
        """The least time worth starting the step with, and the most it may take."""
        spec = steps.SPECS[name]
        least, most = steps.TINY_PLAN if self.args.tiny else (spec.least, spec.most)
        if self.args.min_step is not None:
            least = self.args.min_step
        return least, most

    def run(self) -> int:
        self.preflight()
        for name in self.args.steps:
            step = self.steps[name]
            if STOP:
                step.reason = "stopped by a signal"
                continue
            if name == "install" and self.args.skip_install:
                step.status, step.reason = "skipped", "--skip-install"
                continue
            least, most = self.plan(name)
            timeout = self.left() - FINISH_S - self.args.grace
            if most is not None:
                timeout = min(timeout, most)
            if timeout < least:
                self.stop_for_budget(name, timeout, least)
                break
            self.run_one(step, timeout)
            if name == "install" and step.status != "ok":
                self.skip_rest(name, "the install step did not succeed")
                break
        return self.finish()

    def run_one(self, step: Step, timeout: float) -> None:
        """One step under ``timeout``, a line before and after it, then run.json rewritten."""
        step.timeout_s = timeout
        print(f"[{self.elapsed():6.1f} s] {step.name}: start (timeout {timeout:.0f} s)", flush=True)
        try:
            steps.SPECS[step.name].run(self, step, timeout)
        except Failure as exc:
            step.status, step.reason = "failed", str(exc)
        line = f"[{self.elapsed():6.1f} s] {step.name}: {step.status}"
        if step.wall_time_s is not None:
            line += f" after {step.wall_time_s:.1f} s"
        print(line + (f": {step.reason}" if step.reason else ""), flush=True)
        self.write()

    def stop_for_budget(self, name: str, timeout: float, least: float) -> None:
        reason = f"budget: {max(timeout, 0):.0f} s left for it, needs >= {least:.0f} s"
        self.steps[name].reason = reason
        self.skip_rest(name, f"budget exhausted before {name}")
        print(f"[{self.elapsed():6.1f} s] stop: {name} and after not run ({reason})", flush=True)

    def skip_rest(self, after: str, reason: str) -> None:
        names = self.args.steps
        for name in names[names.index(after) + 1 :]:
            self.steps[name].reason = reason

    def preflight(self) -> None:
        """Before anything runs: the work folder, the interpreter's packages, the GPU."""
        self.args.work.mkdir(parents=True, exist_ok=True)
        self.args.out.mkdir(parents=True, exist_ok=True)
        missing = [m for m in NEEDED if find_spec(m) is None]
        if missing:
            raise Failure(f"{self.py} lacks {', '.join(missing)}; these cannot be carried")
        self.hardware = report.read_hardware(self.py, self.args.cpu, self.env)
        if not self.args.cpu and not self.hardware.get("cuda_available"):
            raise Failure(
                f"CUDA is not available to {self.py} (torch {self.hardware.get('torch')}, "
                f"CUDA build {self.hardware.get('cuda')}): rehearse with --cpu"
            )

    # results
    def write(self) -> None:
        """run.json and summary.txt in the work folder and --out, then the archive."""
        report.write(self)

    def pack(self) -> None:
        """The work folder into the archive (``report.pack``); ``archive`` says what is in it."""
        self.archive = report.pack(self.args.work, self.args.out)

    def finish(self) -> int:
        self.write()
        record = json.loads((self.args.out / "run.json").read_text())
        print(report.table(self, record["targets"]), flush=True)
        print(f"results: {self.args.out} ({report.ARCHIVE}, run.json, summary.txt)", flush=True)
        statuses = [s.status for s in self.steps.values() if not s.earlier]
        if STOP:
            return 130
        if "failed" in statuses:
            return 1
        if "not run" in statuses or "timed out" in statuses:
            return 2
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.dry_run_install:
        for command in install.install_commands(sys.executable, args.wheels):
            print(" ".join(shlex.quote(c) for c in command))
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: STOP.append(signum))
    run = Run(args)
    try:
        return run.run()
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        for step in run.steps.values():
            if not step.earlier:
                step.reason = step.reason or "not started: the run stopped before it"
        with contextlib.suppress(OSError):
            run.write()
        return 1


if __name__ == "__main__":
    sys.exit(main())
