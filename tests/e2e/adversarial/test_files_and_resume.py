"""Adversarial: files that are never partial, a summary failure that fails the command, job
folders that are complete only while whole, resumes that never mix settings, and two runs
that never share one folder.

``CASES`` lists what this file tries (for the closing note's counts): each a case, what is
done, and what must happen (``refused``: exit status and one ``error:`` line, no traceback;
``rerun``: the job runs again and says so; ``kept``: the old file or none, never a part;
``bitwise``: killed, resumed, the same map).
"""

import errno
import json
import os
import shutil
import signal

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers.cli import WAIT_LIMIT_S, last_line, start_module, wait_for
from helpers.inprocess import run_module_here
from helpers.paths import REPO
from hydra import compose, initialize_config_dir
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from erf.app import callbacks
from erf.app.jobs import run_job
from erf.io import plots, store
from erf.io.store import load_result
from erf.probe.measure import ProbeInterrupted

CASES = [
    # (case, what is done, expected)
    ("figure write fails midway", "save_figure over an old heatmap.png, ENOSPC", "kept"),
    ("figure write fails, no old file", "save_figure to a new path, ENOSPC", "kept"),
    ("csv/json write fails midway", "write_text / write_json, ENOSPC", "kept"),
    ("npz write fails midway", "save_result, ENOSPC", "kept"),
    ("a writer bypasses atomic_write", "grep erf/ for savefig/savez/open(w)/...", "none"),
    ("sweep summary cannot write", "erf_grid.png is a folder", "refused 1"),
    ("sweep summary disk full", "save_figure raises ENOSPC in the callback", "refused 1"),
    ("corrupt erf.npz, intact metrics.json", "resume=true", "rerun"),
    ("corrupt erf.npz in a sweep", "python -m erf.report", "refused 1"),
    ("finished job, other model", "resume=true model.depth=3 on a depth-2 job", "refused 2"),
    ("checkpoint, other model", "resume=true model.depth=5 on a depth-4 checkpoint", "refused 2"),
    ("finished job, only device named", "resume=true device=cpu", "skipped"),
    ("sweep folder, other experiment", "resume=true experiment=init_sweep", "refused 2"),
    ("sweep folder, other overrides", "resume=true model.channels=3", "refused 2"),
    ("two runs in one job folder", "a second run while the first holds the lock", "refused 1"),
    ("stale temp files", "one of a dead writer, one of a live one", "dead one removed"),
    ("killed and resumed", "SIGKILL mid-probe, resume=true", "bitwise"),
]

TINY = [
    "model.depth=2",
    "model.channels=1",
    "inputs.size=[16,16]",
    "probe.n_samples=2",
    "probe.batch_size=2",
]
SWEEP = [
    "experiment=depth_sweep",
    "scale=tiny",
    "model.depth=2",
    "model.init=uniform",
    "model.activation=relu",
]
SLOW = [
    "model.depth=4",
    "model.channels=4",
    "inputs.size=[32,32]",
    "probe.n_samples=20000",  # long enough that a test stops it, even on a quiet machine
    "probe.batch_size=2",
    "probe.checkpoint_every=1",
]


def _run(*args, **kwargs):
    return run_module_here("erf.run", *args, check=False, **kwargs)


def _refused(proc, code=1):
    """The one ``error:`` line of a run that must fail cleanly with ``code``."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith("error: "), proc.stderr
    return line


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "erf" / "configs"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _enospc_after_half(real):
    """A ``Figure.savefig`` that writes half of what ``real`` would, then fails as a full
    disk does."""

    def savefig(fig, target, *args, **kwargs):
        import io

        buf = io.BytesIO()
        real(fig, buf, *args, **kwargs)
        target.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    return savefig


def _no_temps(folder):
    return not list(folder.glob(".*.tmp"))


# --------------------------------------------------------------------------- 1: atomic files


@pytest.mark.parametrize("old", [True, False], ids=["over-old-file", "new-file"])
def test_a_figure_write_that_fails_midway_leaves_the_old_file_or_none(tmp_path, monkeypatch, old):
    path = tmp_path / "heatmap.png"
    if old:
        plots.save_figure(plt.figure(), path)
    before = path.read_bytes() if old else None
    monkeypatch.setattr(Figure, "savefig", _enospc_after_half(Figure.savefig))
    with pytest.raises(OSError, match="No space"):
        plots.save_figure(plt.figure(), path)
    assert (path.read_bytes() if path.exists() else None) == before
    assert _no_temps(tmp_path)


def test_a_text_json_or_npz_write_that_fails_midway_keeps_the_old_file(tmp_path, monkeypatch):
    store.write_text("a,b\n1,2\n", tmp_path / "summary.csv")
    store.write_json({"x": 1}, tmp_path / "metrics.json")
    result = _tiny_result()
    store.save_result(result, tmp_path / "erf.npz")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def half_then_fail(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    real = store.atomic_write
    monkeypatch.setattr(store, "atomic_write", lambda path, write: real(path, half_then_fail))
    for write in (
        lambda: store.write_text("new", tmp_path / "summary.csv"),
        lambda: store.write_json({"x": 2}, tmp_path / "metrics.json"),
        lambda: store.save_result(result, tmp_path / "erf.npz"),
    ):
        with pytest.raises(OSError):
            write()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert _no_temps(tmp_path)


def _tiny_result():
    from erf.result import ERFResult

    total = np.ones((4, 4))
    return ERFResult(
        total=total, total_sq=total, n_samples=1, input_shape=(1, 4, 4), target=None,
        target_shape=(1, 4, 4), position="center", channel=None, reduce="abs", n_nonfinite=0,
        meta={"samples_seen": 1},
    )  # fmt: skip


def test_every_file_the_lab_writes_goes_through_atomic_write():
    """The mechanism, not each case: a line of erf/ that writes a file (savefig, savez,
    torch.save, open for writing, Path.write_*, copies) must be an ``atomic_write`` call."""
    import re

    writes = re.compile(
        r"\.savefig\(|np\.savez|torch\.save\(|\.write_text\(|\.write_bytes\(|"
        r"\bopen\([^)]*['\"][wax]b?\+?['\"]|shutil\.copy|\.to_csv\(|json\.dump\("
    )
    bare = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in sorted((REPO / "erf").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if writes.search(line) and "atomic_write(" not in line
    ]
    assert not bare, "\n".join(bare)


# --------------------------------------------------------------------------- 2: sweep summary


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A one-job depth sweep (tiny), finished."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "s"
    run_module_here("erf.run", *SWEEP, f"hydra.sweep.dir={sweep_dir}")
    return sweep_dir


def _copy(sweep_dir, tmp_path):
    target = tmp_path / "s"
    shutil.copytree(sweep_dir, target)
    return target


def test_a_sweep_summary_that_cannot_write_fails_the_command_in_one_line(tmp_path):
    sweep_dir = tmp_path / "s"
    (sweep_dir / "erf_grid.png").mkdir(parents=True)  # the summary cannot put its grid there
    proc = _run(*SWEEP, f"hydra.sweep.dir={sweep_dir}")
    line = _refused(proc, 1)
    assert line.startswith("error: sweep summary failed:") and "erf_grid.png" in line
    assert not [p for p in sweep_dir.rglob("*") if p.is_file() and p.stat().st_size == 0]
    assert _no_temps(sweep_dir)


def test_a_full_disk_in_the_sweep_summary_is_recorded_not_swallowed(sweep, tmp_path, monkeypatch):
    sweep_dir = _copy(sweep, tmp_path)
    (sweep_dir / "erf_grid.png").unlink()
    monkeypatch.setattr(callbacks, "FAILURES", [])
    monkeypatch.setattr(Figure, "savefig", _enospc_after_half(Figure.savefig))
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    callbacks.SweepSummary().on_multirun_end(cfg)  # Hydra would only warn if it raised
    assert len(callbacks.FAILURES) == 1
    assert callbacks.FAILURES[0].startswith("sweep summary failed: [Errno 28] No space")
    assert not (sweep_dir / "erf_grid.png").exists()
    assert _no_temps(sweep_dir)


# --------------------------------------------------------------------------- 3: whole files


@pytest.mark.slow
def test_a_corrupt_erf_npz_beside_its_metrics_is_rerun_on_resume(tmp_path):
    job = [*TINY, f"hydra.run.dir={tmp_path}"]
    run_module_here("erf.run", *job)
    good = load_result(tmp_path / "erf.npz")
    data = (tmp_path / "erf.npz").read_bytes()
    (tmp_path / "erf.npz").write_bytes(data[: len(data) // 2])
    proc = run_module_here("erf.run", *job, "resume=true")
    log = proc.stdout + proc.stderr
    assert "is not complete" in log and "erf.npz" in log and "rerunning" in log
    assert "skipped" not in log
    assert np.array_equal(load_result(tmp_path / "erf.npz").total, good.total)
    files = json.loads((tmp_path / "metrics.json").read_text())["files"]
    assert set(files) == {"erf.npz", "heatmap.png"}
    assert store.check_files(tmp_path, files) is None


def test_the_report_names_a_corrupt_file_in_one_line(sweep, tmp_path):
    sweep_dir = _copy(sweep, tmp_path)
    (job,) = [p for p in sweep_dir.iterdir() if (p / "metrics.json").exists()]
    (job / "erf.npz").write_bytes(b"not a zip")
    proc = run_module_here("erf.report", str(sweep_dir), check=False)
    line = _refused(proc, 1)
    assert str(job / "erf.npz") in line and "metrics.json" in line


# --------------------------------------------------------------------------- 4: no mixing


@pytest.mark.slow
def test_a_finished_job_is_not_reused_for_another_model(tmp_path):
    run_module_here("erf.run", *TINY, f"hydra.run.dir={tmp_path}")
    before = (tmp_path / "metrics.json").read_bytes()
    proc = _run(*TINY, "model.depth=3", f"hydra.run.dir={tmp_path}", "resume=true")
    line = _refused(proc, 2)  # refused before any work: a config problem
    assert line == (
        f"error: resume=true: {tmp_path} was made with model.depth=2, this run has "
        "model.depth=3; use another hydra.run.dir or delete it"
    )
    assert (tmp_path / "metrics.json").read_bytes() == before
    # what cannot change the map is not part of the settings: naming the device still skips
    proc = run_module_here(
        "erf.run", *TINY, "device=cpu", f"hydra.run.dir={tmp_path}", "resume=true"
    )
    assert "skipped" in proc.stdout + proc.stderr


def test_a_checkpoint_is_not_resumed_with_another_model(tmp_path):
    job = [o for o in SLOW[1:] if not o.startswith("probe.n_samples")] + ["probe.n_samples=8"]
    with pytest.raises(ProbeInterrupted):
        run_job(_cfg("model.depth=4", *job), tmp_path, should_stop=_stop_after(1))
    checkpoint = (tmp_path / "checkpoint.npz").read_bytes()
    proc = _run("model.depth=5", *job, f"hydra.run.dir={tmp_path}", "resume=true")
    line = _refused(proc, 2)  # refused before any work
    assert "checkpoint.npz was made with model.depth=4, this run has model.depth=5" in line
    assert (tmp_path / "checkpoint.npz").read_bytes() == checkpoint
    assert not (tmp_path / "metrics.json").exists()


def _stop_after(batches):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > batches

    return should_stop


@pytest.mark.parametrize(
    "other, key",
    [
        (
            ["experiment=init_sweep", "scale=tiny"],
            "experiment=depth_sweep, this run has experiment=init_sweep",
        ),
        ([*SWEEP, "model.channels=3"], "model.channels=(unset), this run has model.channels=3"),
    ],
    ids=["other-experiment", "other-overrides"],
)  # fmt: skip
def test_a_sweep_folder_refuses_another_sweep(sweep, tmp_path, other, key):
    sweep_dir = _copy(sweep, tmp_path)
    summary = (sweep_dir / "summary.csv").read_bytes()
    proc = _run(*other, f"hydra.sweep.dir={sweep_dir}", "resume=true")
    line = _refused(proc, 2)  # refused before any work
    assert line == (
        f"error: resume=true: {sweep_dir} holds a sweep made with {key}; use another "
        "hydra.sweep.dir or delete it"
    )
    assert (sweep_dir / "summary.csv").read_bytes() == summary
    assert len([p for p in sweep_dir.iterdir() if p.is_dir()]) == 1  # no job of the other


def test_a_sweep_folder_whose_record_was_deleted_refuses_another_sweep(sweep, tmp_path):
    sweep_dir = _copy(sweep, tmp_path)
    (sweep_dir / "sweep.json").unlink()
    summary = (sweep_dir / "summary.csv").read_bytes()
    proc = _run("experiment=init_sweep", "scale=tiny", f"hydra.sweep.dir={sweep_dir}")
    line = _refused(proc, 2)
    assert line.startswith(f"error: {sweep_dir} holds jobs (0_") and "no sweep.json" in line
    assert (sweep_dir / "summary.csv").read_bytes() == summary
    assert len([p for p in sweep_dir.iterdir() if p.is_dir()]) == 1


# --------------------------------------------------------------------------- 5: one run a folder


def _start_slow(run_dir, *extra):
    proc = start_module("erf.run", *SLOW, f"hydra.run.dir={run_dir}", *extra)
    wait_for((run_dir / "checkpoint.npz").exists, proc, "a checkpoint appeared")
    return proc


@pytest.mark.slow
def test_a_second_run_in_a_busy_job_folder_fails_and_leaves_the_first_alone(tmp_path):
    first = _start_slow(tmp_path)
    try:
        proc = _run(*SLOW, f"hydra.run.dir={tmp_path}", "resume=true")
        line = _refused(proc, 1)
        assert line == f"error: {tmp_path} is in use by another erf run (pid {first.pid})"
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGTERM)
        _, stderr = first.communicate(timeout=WAIT_LIMIT_S)
    assert first.returncode == 130, stderr
    assert load_result(tmp_path / "checkpoint.npz").meta["samples_seen"] > 0
    assert not (tmp_path / ".lock").exists()


def test_stale_temp_files_of_dead_writers_go_and_live_ones_stay(tmp_path):
    dead = start_module("erf", "--help")
    dead.communicate()
    live = tmp_path / f".checkpoint.npz.{os.getpid()}.abcd1234.tmp"
    stale = tmp_path / f".checkpoint.npz.{dead.pid}.abcd1234.tmp"
    old_style = tmp_path / ".heatmap.png.abcd1234.tmp"
    for p in (live, stale, old_style):
        p.write_bytes(b"x")
    removed = store.clean_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale.name, old_style.name])
    assert live.exists()


def test_a_job_folder_is_locked_while_a_job_runs(tmp_path):
    busy = pytest.raises(store.FolderBusy, match=f"in use by another erf run .pid {os.getpid()}")
    with store.folder_lock(tmp_path), busy, store.folder_lock(tmp_path):
        pass
    assert not (tmp_path / ".lock").exists()
    with store.folder_lock(tmp_path):  # free again
        pass


@pytest.mark.slow
def test_a_killed_run_resumes_bitwise_with_its_lock_and_settings(tmp_path):
    whole = tmp_path / "whole"
    run_module_here("erf.run", *SLOW, "probe.n_samples=40", f"hydra.run.dir={whole}")
    cut = tmp_path / "cut"
    proc = _start_slow(cut, "probe.n_samples=40")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_result(cut / "checkpoint.npz").meta["settings"]["model.depth"] == 4
    run_module_here("erf.run", *SLOW, "probe.n_samples=40", f"hydra.run.dir={cut}", "resume=true")
    assert np.array_equal(load_result(cut / "erf.npz").total, load_result(whole / "erf.npz").total)
    assert not (cut / ".lock").exists() and _no_temps(cut)


FULL_DISK_JOB = """
import errno, sys
import erf.app.run as run
def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
run.run_job = full_disk
sys.argv = ["erf.run", *sys.argv[1:]]
run.cli()
"""


def test_a_single_job_on_a_full_disk_fails_in_one_line_without_a_traceback(tmp_path):
    import sys

    from helpers.cli import run_command

    proc = run_command(
        [sys.executable, "-c", FULL_DISK_JOB, *TINY, f"hydra.run.dir={tmp_path / 'run'}"],
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == "error: [Errno 28] No space left on device"
