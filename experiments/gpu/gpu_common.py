"""What ``run_all``, ``gpu_steps`` and ``gpu_report`` share: the step record, the one-line
failure, the stop flag the signal handler sets, running one step's process under a timeout,
and atomic file writes. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STOP: list[int] = []  # signals received (SIGINT/SIGTERM): stop after the current step


class Failure(Exception):
    """A one-line error that ends the run (after run.json and the archive are written)."""


@dataclass
class Step:
    name: str
    status: str = "not run"  # ok | failed | timed out | interrupted | skipped | not run
    reason: str = ""
    command: list[str] = field(default_factory=list)
    wall_time_s: float | None = None
    timeout_s: float | None = None
    returncode: int | None = None
    log: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    earlier: bool = False  # a step of an earlier run into the same folder (not in --steps)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Step:
        """A step as an earlier run.json recorded it (its command kept as one string)."""
        step = cls(record["name"], status=record["status"], reason=record.get("reason", ""))
        for key in ("wall_time_s", "timeout_s", "returncode", "log"):
            setattr(step, key, record.get(key))
        step.result, step.earlier = record.get("result", {}), True
        step.command = shlex.split(record.get("command", ""))
        return step

    def record(self) -> dict[str, Any]:
        out = {"name": self.name, "status": self.status}
        if self.earlier:
            out["earlier_run"] = True
        if self.reason:
            out["reason"] = self.reason
        if self.command:
            out["command"] = " ".join(shlex.quote(c) for c in self.command)
        for key in ("wall_time_s", "timeout_s", "returncode", "log"):
            value = getattr(self, key)
            if value is not None:
                out[key] = round(value, 1) if isinstance(value, float) else value
        if self.result:
            out["result"] = self.result
        return out


def run_process(
    command: list[str], log: Path, timeout: float | None, env: dict[str, str], grace: float
) -> tuple[str, int | None, float]:
    """Run ``command`` in its own process group, output to ``log``; past ``timeout`` (or on a
    stop request) SIGTERM the group (erf jobs save a checkpoint), SIGKILL it ``grace`` s
    later. Returns (status, returncode, wall seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        status = None
        while proc.poll() is None:
            elapsed = time.perf_counter() - t0
            if STOP or (timeout is not None and elapsed > timeout):
                status = "interrupted" if STOP else "timed out"
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
    code = proc.returncode
    return status or ("ok" if code == 0 else "failed"), code, time.perf_counter() - t0


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def last_line(log: Path) -> str:
    """The last non-empty line of a step's log (after any progress bar's carriage returns)."""
    try:
        lines = [ln.split("\r")[-1].strip() for ln in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def write_json(record: dict[str, Any], path: Path) -> None:
    write_text(json.dumps(record, indent=2, default=str) + "\n", path)


def write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
