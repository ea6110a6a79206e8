"""Start ``erf`` commands in subprocesses, the way a user would."""

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from helpers.paths import REPO


def run_erf(
    *args: str,
    cwd: Path = REPO,
    check: bool = True,
    erf: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``erf ARGS`` in a subprocess from ``cwd``: by default ``python -m erf`` with this
    interpreter, or the command ``erf`` names (e.g. an installed ``bin/erf`` script). With
    ``check``, a non-zero exit status fails the test with the command's output."""
    command = [*(erf or [sys.executable, "-m", "erf"]), *args]
    proc = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, (
            f"{command} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


def run_erf_expecting_error(run_dir, *overrides) -> str:
    """Run ``python -m erf.run`` in a subprocess that must fail cleanly: non-zero exit, no
    traceback, no ``metrics.json`` in ``run_dir``. Returns the last stderr line (after any
    progress bar's carriage returns)."""
    proc = subprocess.run(
        [sys.executable, "-m", "erf.run", *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "metrics.json").exists()
    return proc.stderr.strip().splitlines()[-1].split("\r")[-1]
