"""Start ``erf`` commands in subprocesses, the way a user would."""

import subprocess
import sys

from helpers.paths import REPO


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
