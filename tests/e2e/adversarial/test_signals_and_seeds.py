"""Adversarial: stop requests at awkward moments, a stopped torchrun rank, and seeds.

A stop (SIGTERM, Ctrl-C) is never lost: one that arrives after the probe's last batch (while
the job's files are written) or in training's last batch lets that job finish its files, then
the sweep stops before the next job with the resume hint and exit 130; resuming gives bitwise
the maps of an uninterrupted sweep. A second Ctrl-C exits at once in one line, leaving only
whole files. The moments are hit with the test-only ``ERF_TEST_PAUSE_AFTER_POLL`` (a pause
after every stop poll that found nothing, logged to the job's run.log; ``erf.app.signals``).

A rank that stops (SIGSTOP, the test-only ``ERF_TEST_SIGSTOP_RANK``) makes rank 0 fail
within ``ERF_DIST_TIMEOUT_S`` in one line naming it, instead of hanging.

The same ``seed`` gives bitwise the same map for torchvision, timm and user models and for a
training job, through the CLI, and metrics.json records it as ``model_seed``.
"""

import json
import os
import signal
import socket
import time

import numpy as np
import pytest
from helpers.cli import WAIT_LIMIT_S, last_line, run_module, start_module, wait_for
from helpers.inprocess import run_module_here
from helpers.paths import REPO

from erf.io.store import load_result

# Every case this file tries: (case, what is done, expected). "stop" cases count as kills
# survived bitwise when their resume test compares maps with an uninterrupted run.
CASES = [
    ("sigterm_after_last_probe_batch", "SIGTERM while job 0 of 3 writes", "130, job 0 whole"),
    ("sigint_after_last_probe_batch", "Ctrl-C while job 0 of 3 writes", "130, job 0 whole"),
    ("sigterm_in_last_training_batch", "SIGTERM in training's last batch", "130, job 0 whole"),
    ("double_ctrl_c", "two Ctrl-C while job 0 of 3 writes", "130 at once, one line"),
    ("resume_after_stop_between_jobs", "resume=true after the stop", "bitwise the same maps"),
    ("rank_1_sigstop", "torchrun-style 2 ranks, rank 1 stops", "exit 1, names rank 1"),
    ("bad_dist_timeout", "ERF_DIST_TIMEOUT_S=abc|0|-1|inf", "exit 1, one line"),
    ("seed_torchvision_resnet18", "seed 0 twice, seed 1", "equal, equal, differs"),
    ("seed_timm_resnet10t", "seed 0 twice, seed 1", "equal, equal, differs"),
    ("seed_custom_tinynet", "seed 0 twice, seed 1", "equal, equal, differs"),
    ("seed_training_job", "seed 0 twice, seed 1", "equal, equal, differs"),
]

SWEEP = ["-m", "model.depth=1,2,3", "model.channels=1", "inputs.size=[16,16]",
         "probe.n_samples=1", "probe.batch_size=1"]  # fmt: skip
TRAIN = ["setting=classification", "model.blocks=1", "model.channels=2", "data.train_size=8",
         "data.val_size=4", "train.epochs=1", "train.batch_size=8", "probe.n_samples=1",
         "probe.batch_size=1", "train.threads=1"]  # fmt: skip
PAUSE = "ERF_TEST_PAUSE_AFTER_POLL"


def _env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _wait_for_log(path, text, proc):
    wait_for(lambda: path.exists() and text in path.read_text(), proc, f"{text!r} in {path}")


def _maps(sweep_dir):
    return {
        f"{p.parent.name}/{p.name}": load_result(p).total
        for p in sorted(sweep_dir.glob("*/erf*.npz"))
    }


def _assert_only_whole_files(folder):
    assert not list(folder.rglob("*.tmp")), list(folder.rglob("*.tmp"))
    for path in folder.rglob("*.npz"):
        load_result(path)
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())


def _stop_after_first_poll(sweep_dir, args, signals, pause="2"):
    """Start the sweep with the test pause, send ``signals`` once job 0's first poll found
    nothing (0.3 s apart), and return (process, stderr, seconds from the last signal)."""
    proc = start_module(
        "erf.run", *args, f"hydra.sweep.dir={sweep_dir}", env=_env(**{PAUSE: pause})
    )
    _wait_for_log(sweep_dir / "0" / "run.log", f"{PAUSE}: poll 1 ", proc)
    for i, signum in enumerate(signals):
        if i:
            time.sleep(0.3)
        proc.send_signal(signum)
    sent = time.time()
    _, stderr = proc.communicate(timeout=WAIT_LIMIT_S)
    return proc, stderr, time.time() - sent


@pytest.fixture(scope="module")
def whole_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("whole")
    run_module_here("erf.run", *SWEEP, f"hydra.sweep.dir={sweep}", env=_env())
    return _maps(sweep)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_after_the_last_probe_batch_finishes_the_job_then_stops_the_sweep(
    tmp_path, whole_sweep, signum
):
    proc, stderr, _ = _stop_after_first_poll(tmp_path, SWEEP, [signum])
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = last_line(stderr)
    assert line.startswith(f"{signal.Signals(signum).name} arrived after this job's last batch")
    assert line.endswith(f"resume=true hydra.sweep.dir={tmp_path}")
    assert {"erf.npz", "heatmap.png", "metrics.json"} <= {
        p.name for p in (tmp_path / "0").iterdir()
    }
    assert not (tmp_path / "1" / "metrics.json").exists()  # the next job never ran
    _assert_only_whole_files(tmp_path)

    run_module_here("erf.run", *SWEEP, f"hydra.sweep.dir={tmp_path}", "resume=true", env=_env())
    resumed = _maps(tmp_path)
    assert resumed.keys() == whole_sweep.keys() == {"0/erf.npz", "1/erf.npz", "2/erf.npz"}
    for job, total in whole_sweep.items():
        assert np.array_equal(resumed[job], total), job  # bitwise, on CPU


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once_in_one_line_with_only_whole_files(tmp_path):
    proc, stderr, seconds = _stop_after_first_poll(
        tmp_path, SWEEP, [signal.SIGINT, signal.SIGINT], pause="5"
    )
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = last_line(stderr)
    assert line.startswith("error: stopped at once by a second Ctrl-C")
    assert line.endswith(f"resume=true hydra.sweep.dir={tmp_path}")
    assert seconds < 4.5  # not after the 5 s pause and the job's files
    assert not (tmp_path / "0" / "metrics.json").exists()
    assert not (tmp_path / "1").exists()
    _assert_only_whole_files(tmp_path)


@pytest.mark.slow
def test_a_stop_in_the_last_training_batch_finishes_the_job_then_stops_the_sweep(tmp_path):
    sweep = ["-m", *TRAIN, "seed=0,1"]
    whole = tmp_path / "whole"
    run_module_here("erf.run", *sweep, f"hydra.sweep.dir={whole}", env=_env())
    stopped = tmp_path / "stopped"
    # polls of job 0: after its only training batch (1: the last batch), at the epoch's end (2)
    proc, stderr, _ = _stop_after_first_poll(stopped, sweep, [signal.SIGTERM])
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert last_line(stderr).startswith("SIGTERM arrived after this job's last batch")
    names = {p.name for p in (stopped / "0").iterdir()}
    assert {"erf_init.npz", "erf_trained.npz", "model.pt", "metrics.json"} <= names
    assert "train_checkpoint.pt" not in names
    assert not (stopped / "1" / "metrics.json").exists()
    _assert_only_whole_files(stopped)

    run_module_here("erf.run", *sweep, f"hydra.sweep.dir={stopped}", "resume=true", env=_env())
    want, got = _maps(whole), _maps(stopped)
    assert (
        got.keys() == want.keys() == {f"{j}/erf_{w}.npz" for j in "01" for w in ("init", "trained")}
    )
    for job in want:
        assert np.array_equal(got[job], want[job]), job


# --------------------------------------------------------------------------- torchrun


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_env(rank, port, **extra):
    """The environment torchrun gives rank ``rank`` of 2 on one node."""
    return _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **extra)  # fmt: skip


@pytest.mark.slow
def test_a_stopped_rank_makes_rank_0_fail_in_one_line_naming_it(tmp_path):
    port = _free_port()
    job = ["model.depth=2", "model.channels=1", "inputs.size=[16,16]", "probe.n_samples=4",
           "probe.batch_size=2", f"hydra.run.dir={tmp_path}"]  # fmt: skip
    extra = {"ERF_DIST_TIMEOUT_S": "3", "ERF_TEST_SIGSTOP_RANK": "1"}
    ranks = [start_module("erf.run", *job, env=_rank_env(r, port, **extra)) for r in (0, 1)]
    try:
        _, stderr = ranks[0].communicate(timeout=WAIT_LIMIT_S)
        assert ranks[0].returncode == 1, stderr
        assert "Traceback" not in stderr
        assert last_line(stderr) == (
            "error: rank 1 did not answer within 3 s before the exchange of the probe's sums "
            "(stopped, hung or dead); ERF_DIST_TIMEOUT_S=3 sets the wait"
        )
        assert not (tmp_path / "metrics.json").exists()
    finally:
        for proc in ranks:
            proc.kill()  # rank 1 is stopped: only SIGKILL ends it
            proc.communicate()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf"])
def test_a_bad_collective_timeout_is_a_one_line_error(tmp_path, value):
    env = _rank_env(0, _free_port(), ERF_DIST_TIMEOUT_S=value)
    proc = run_module("erf.run", "model.depth=1", f"hydra.run.dir={tmp_path}", env=env,
                      check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == (
        f"error: ERF_DIST_TIMEOUT_S={value} is not allowed: expected a number of seconds > 0"
    )
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- seeds

SEEDED = {
    "torchvision resnet18": ["model=torchvision", "model.name=resnet18"],
    "timm resnet10t": ["model=timm", "model.name=resnet10t"],
    "custom TinyNet": ["model=custom", "model._target_=helpers.custom_net.TinyNet"],
}


def _seeded_map(out, overrides, seed, name="erf.npz", process=False):
    """One seeded job's map and metrics: in a fresh process, or in this (used) one."""
    run = run_module if process else run_module_here
    env = _env(PYTHONPATH=str(REPO / "tests"))
    run("erf.run", *overrides, f"seed={seed}", f"hydra.run.dir={out}", env=env)
    return load_result(out / name).total, json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("overrides", SEEDED.values(), ids=SEEDED.keys())
def test_the_same_seed_gives_bitwise_the_same_map_for_every_model_source(tmp_path, overrides):
    if "model=timm" in overrides:
        pytest.importorskip("timm")
    job = [*overrides, "inputs.size=[32,32]", "probe.n_samples=1", "probe.batch_size=1"]
    a, ma = _seeded_map(tmp_path / "a", job, 0, process=True)
    b, _ = _seeded_map(tmp_path / "b", job, 0)
    c, mc = _seeded_map(tmp_path / "c", job, 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (ma["model_seed"], mc["model_seed"]) == (0, 1)


@pytest.mark.slow
def test_the_same_seed_gives_bitwise_the_same_trained_model_map(tmp_path):
    a, ma = _seeded_map(tmp_path / "a", TRAIN, 0, "erf_trained.npz", process=True)
    b, _ = _seeded_map(tmp_path / "b", TRAIN, 0, "erf_trained.npz")
    c, mc = _seeded_map(tmp_path / "c", TRAIN, 1, "erf_trained.npz")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (ma["model_seed"], mc["model_seed"]) == (0, 1)
