"""Runs under a container memory limit set by the test (a memory cgroup, v1 or v2): a batch
that would not fit is refused in one line, ``batch_size=auto`` picks one that fits; neither
is killed by the kernel. Skipped where this process may not make a cgroup (not root, no
cgroup file system); CI runs as root in a container that has one."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import command
from helpers.paths import REPO

LIMIT = 1 << 30  # 1 GiB: torch's imports take about 400 MB of it
JOB = ["model.depth=4", "model.channels=32", "inputs.size=[256,256]", "model.init=random"]


def _memory_cgroup(name: str) -> tuple[Path, str, str]:
    """A fresh memory cgroup: (folder, limit file, member file); skip when it cannot be made."""
    v2 = Path("/sys/fs/cgroup")
    if (v2 / "cgroup.controllers").exists():
        folder, limit = v2 / name, "memory.max"
    else:
        folder, limit = v2 / "memory" / name, "memory.limit_in_bytes"
    try:
        folder.mkdir()
        (folder / limit).write_text(str(LIMIT))
    except OSError as exc:
        pytest.skip(f"cannot make a memory cgroup here ({exc.strerror})")
    swap = folder / "memory.memsw.limit_in_bytes"  # no swapping past the limit (v1)
    if swap.exists():
        with contextlib.suppress(OSError):
            swap.write_text(str(LIMIT))
    return folder, limit, "cgroup.procs"


@pytest.fixture
def limited(tmp_path):
    folder, _, procs = _memory_cgroup(f"erf-test-{os.getpid()}-{tmp_path.name}")

    def run(*overrides: str) -> subprocess.CompletedProcess:
        argv = command("erf.run", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
        shell = f'echo $$ > {folder / procs} && exec "$@"'
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run(
            ["sh", "-c", shell, "sh", *argv], cwd=REPO, capture_output=True, text=True,
            env=env, timeout=600,
        )  # fmt: skip

    yield run
    with contextlib.suppress(OSError):
        folder.rmdir()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="memory cgroups are Linux's")
def test_a_batch_that_would_not_fit_the_container_is_refused_not_killed(limited):
    proc = limited(*JOB, "probe.n_samples=64", "probe.batch_size=64")
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: probe.batch_size=64 needs about") and "GiB free" in line


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="memory cgroups are Linux's")
def test_batch_size_auto_picks_a_batch_that_fits_the_container(limited):
    proc = limited(*JOB, "probe.n_samples=8", "probe.batch_size=auto")
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
