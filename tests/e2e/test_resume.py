"""Nothing lost: real runs killed or stopped in a subprocess resume to the same map."""

import json
import os
import signal

import numpy as np
import pytest
from helpers.cli import WAIT_LIMIT_S, run_module, start_module, wait_for
from helpers.inprocess import run_erf_expecting_error, run_module_here

from erf.io.store import load_result

SLOW_JOB = [
    "model.depth=12",
    "model.channels=8",
    "model.init=random",
    "model.activation=relu",
    "inputs.size=[48,48]",
    "probe.n_samples=240",
    "probe.batch_size=4",
    "probe.checkpoint_every=1",
]


def _slow(run_dir, *extra):
    """The overrides of the slow job into ``run_dir``."""
    return [*SLOW_JOB, f"hydra.run.dir={run_dir}", *extra]


def _start_and_wait_for_checkpoint(run_dir, min_samples=8):
    proc = start_module("erf.run", *_slow(run_dir))
    checkpoint = run_dir / "checkpoint.npz"

    def enough_samples() -> bool:
        try:
            return load_result(checkpoint).meta["samples_seen"] >= min_samples
        except Exception:
            return False  # not there yet, or being replaced (the rename is atomic)

    wait_for(enough_samples, proc, f"a checkpoint of {min_samples} samples appeared")
    return proc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole")
    run_module_here("erf.run", *_slow(run_dir))
    return load_result(run_dir / "erf.npz")


@pytest.mark.slow
def test_a_killed_run_leaves_no_complete_looking_results_and_resumes_to_the_same_map(
    tmp_path, uninterrupted
):
    proc = _start_and_wait_for_checkpoint(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "erf.npz").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.npz"]
    allowed = (".hydra", "run.log", ".lock")  # .lock: the dead run's (its flock died with it)
    assert all(n.endswith(".tmp") or n in allowed for n in leftovers), leftovers
    done = load_result(tmp_path / "checkpoint.npz").meta["samples_seen"]
    assert 0 < done < 240

    run_module_here("erf.run", *_slow(tmp_path, "resume=true"))
    resumed = load_result(tmp_path / "erf.npz")
    assert np.array_equal(resumed.total, uninterrupted.total)  # bitwise, on CPU
    assert np.array_equal(resumed.total_sq, uninterrupted.total_sq)
    assert not (tmp_path / "checkpoint.npz").exists()
    assert not list(tmp_path.glob(".*.tmp"))  # stale temp files of the killed run are gone


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_a_checkpoint_and_says_how_to_continue(tmp_path, uninterrupted, signum):
    proc = _start_and_wait_for_checkpoint(tmp_path)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=WAIT_LIMIT_S)
    assert proc.returncode == 130
    assert "resume=true" in stderr and str(tmp_path) in stderr
    assert not (tmp_path / "metrics.json").exists()
    run_module_here("erf.run", *_slow(tmp_path, "resume=true"))
    assert np.array_equal(load_result(tmp_path / "erf.npz").total, uninterrupted.total)


@pytest.mark.slow
def test_resume_skips_a_completed_job(tmp_path):
    job = ["model.depth=2", "model.channels=1", "probe.n_samples=2", f"hydra.run.dir={tmp_path}"]
    run_module_here("erf.run", *job)
    before = (tmp_path / "metrics.json").stat().st_mtime_ns
    proc = run_module_here("erf.run", *job, "resume=true")
    assert "skipped" in proc.stdout + proc.stderr
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == before
    assert json.loads((tmp_path / "metrics.json").read_text())["depth"] == 2


def test_a_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
    last = run_erf_expecting_error(tmp_path, "model.depth=2", "model.channels=1", "resume=true")
    assert last.startswith("error: checkpoint")


@pytest.mark.slow
def test_two_processes_with_the_same_seed_give_bitwise_the_same_map(tmp_path, uninterrupted):
    run_module("erf.run", *_slow(tmp_path))
    again = load_result(tmp_path / "erf.npz")
    assert np.array_equal(again.total, uninterrupted.total)
    assert np.array_equal(again.total_sq, uninterrupted.total_sq)
