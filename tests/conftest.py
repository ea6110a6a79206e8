"""Shared test helpers: exact oracles computed with numpy, independent of the code under test."""

import numpy as np
import pytest
import torch


def box_convolution_1d(depth: int, kernel: int) -> np.ndarray:
    """The depth-fold convolution of a length-``kernel`` box (unnormalised, exact integers)."""
    out = np.array([1.0])
    for _ in range(depth):
        out = np.convolve(out, np.ones(kernel))
    return out


def box_convolution_2d(depth: int, kernel: int, size: int) -> np.ndarray:
    """Outer product of the 1-D box convolution, centred at (size//2, size//2) of a size² map."""
    v = box_convolution_1d(depth, kernel)
    half = len(v) // 2
    c = size // 2
    out = np.zeros((size, size))
    out[c - half : c + half + 1, c - half : c + half + 1] = np.outer(v, v)
    return out


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    torch.manual_seed(1234)
    yield


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_erf_expecting_error(run_dir, *overrides) -> str:
    """Run ``python -m erf.run`` in a subprocess that must fail cleanly: non-zero exit, no
    traceback, no ``metrics.json`` in ``run_dir``. Returns the last stderr line (after any
    progress bar's carriage returns)."""
    import subprocess
    import sys

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
