"""The one place tests start processes: ``python -m MODULE`` (``erf.run``, ``erf``, ``pip``,
``torch.distributed.run``, ...) or any other command, from the repository root by default."""

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from helpers.paths import REPO

# How long a test waits for a process, or for a file or log line a process makes: far above
# any test's work on a loaded machine, so that only a hung process ever reaches it. No test
# depends on a shorter wall-clock deadline.
WAIT_LIMIT_S = 1800.0


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen, what: str, poll_s: float = 0.02
) -> None:
    """Wait until ``condition()`` holds while ``proc`` runs. Fails (and kills ``proc``) when
    ``proc`` ends first, with its output, or after ``WAIT_LIMIT_S`` (a hung process)."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{what} never happened in {WAIT_LIMIT_S:.0f} s")
        time.sleep(poll_s)


def command(module: str, *args: str) -> list[str]:
    """The argument list of ``python -m MODULE ARGS`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run_command(
    argv: Sequence[str | Path],
    *,
    cwd: Path = REPO,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float | None = WAIT_LIMIT_S,
) -> subprocess.CompletedProcess:
    """Run ``argv`` from ``cwd`` and wait (text output, captured). With ``check``, a non-zero
    exit status fails the test with the command and its output."""
    argv = [str(a) for a in argv]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def run_module(
    module: str,
    *args: str,
    cwd: Path = REPO,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float | None = WAIT_LIMIT_S,
) -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` from ``cwd`` and wait, as :func:`run_command` does."""
    return run_command(command(module, *args), cwd=cwd, check=check, env=env, timeout=timeout)


def start_module(
    module: str, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``python -m MODULE ARGS`` from ``cwd`` without waiting (stdout and stderr piped,
    text): for tests that signal, kill or poll the process; read it with ``communicate``."""
    return subprocess.Popen(
        command(module, *args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_line(text: str) -> str:
    """The last line of a process's output, after any progress bar's carriage returns."""
    return text.strip().splitlines()[-1].split("\r")[-1]


def run_erf(
    *args: str,
    cwd: Path = REPO,
    check: bool = True,
    erf: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = WAIT_LIMIT_S,
) -> subprocess.CompletedProcess:
    """Run ``erf ARGS`` from ``cwd``: by default ``python -m erf`` with this interpreter, or
    the command ``erf`` names (e.g. an installed ``bin/erf`` script). With ``check``, a
    non-zero exit status fails the test with the command's output."""
    argv = [*(erf or command("erf")), *args]
    return run_command(argv, cwd=cwd, check=check, env=env, timeout=timeout)
