"""Training jobs end to end (subprocesses, tiny sizes): files, metrics, the experiment's
summary, one-line errors for missing data, and a stopped or killed run resuming bitwise."""

import csv
import json
import os
import signal

import numpy as np
import pytest
import torch
from helpers.cli import WAIT_LIMIT_S, last_line, start_module, wait_for
from helpers.inprocess import run_erf_expecting_error, run_module_here

from erf.io.store import load_result

TINY = [
    "model.blocks=2",
    "model.channels=4",
    "data.train_size=24",
    "data.val_size=8",
    "train.epochs=2",
    "train.batch_size=8",
    "probe.n_samples=4",
    "probe.batch_size=4",
    "train.threads=1",
]


@pytest.fixture(scope="module")
def classification_job(tmp_path_factory):
    job = tmp_path_factory.mktemp("cls")
    run_module_here(
        "erf.run",
        "setting=classification",
        *TINY,
        "train.erf_every_epoch=true",
        f"hydra.run.dir={job}",
    )
    return job, json.loads((job / "metrics.json").read_text())


@pytest.mark.slow
def test_a_training_job_writes_erf_before_and_after_figures_weights_and_metrics(
    classification_job,
):
    job, _ = classification_job
    names = {p.name for p in job.iterdir()}
    expected = {"erf_init.npz", "erf_trained.npz", "model.pt", "metrics.json",
                "before_after.png", "training.png", "erf_epochs.png",
                "erf_epoch_001.npz", "erf_epoch_002.npz"}  # fmt: skip
    assert expected <= names
    assert "train_checkpoint.pt" not in names  # removed once the job is complete
    init, trained = load_result(job / "erf_init.npz"), load_result(job / "erf_trained.npz")
    assert init.shape == trained.shape == (32, 32) and init.target == "body"
    assert not np.array_equal(init.total, trained.total)


@pytest.mark.slow
def test_metrics_state_the_dataset_plainly_and_hold_sizes_history_and_provenance(
    classification_job,
):
    _, m = classification_job
    assert m["dataset"] == "generated_classification" and m["dataset_generated"] is True
    assert m["dataset_description"].startswith("GENERATED data")
    assert any(w.startswith("dataset: GENERATED") for w in m["warnings"])
    assert m["trf_size"] == 1 + 2 * (1 + 2 * 2)  # stem + 2 blocks of two 3x3 convs
    for key in ("erf_size", "erf_diameter", "erf_trf_ratio"):
        assert m[f"{key}_init"] > 0 and m[f"{key}_trained"] > 0
    assert m["erf_diameter_init"] == pytest.approx(2 * m["erf_size_init"] / np.sqrt(np.pi))
    assert [r["epoch"] for r in m["history"]] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(m["history"][0])
    assert [r["epoch"] for r in m["erf_per_epoch"]] == [0, 1, 2]
    assert m["wall_time_s"] > 0 and m["provenance"]["torch_version"]
    assert m["config"]["data"]["name"] == "generated_classification"


@pytest.mark.slow
def test_the_saved_weights_load_into_the_same_model(classification_job):
    from erf.nets.luo import ResidualClassifier
    from erf.nets.zoo import load_checkpoint

    job, _ = classification_job
    model = ResidualClassifier(4, blocks=2, channels=4)
    load_checkpoint(model, job / "model.pt")
    state = torch.load(job / "model.pt", weights_only=True)
    assert torch.equal(model.head.weight, state["head.weight"])


@pytest.mark.slow
def test_the_experiment_runs_both_settings_over_seeds_and_summarises_them(tmp_path):
    sweep = tmp_path / "sweep"
    sizes = [a for a in TINY if not a.startswith("model.blocks")]  # the settings' own depths
    proc = run_module_here(
        "erf.run",
        "experiment=trained_vs_untrained",
        *sizes,
        "model.channels=2",
        "train.epochs=1",
        "data.size=32",
        "inputs.size=null",
        "seed=0,1",  # the command line replaces the sweep's seeds
        f"hydra.sweep.dir={sweep}",
    )
    assert last_line(proc.stdout) == f"results: {sweep}"
    assert "segmentation (seeds 0, 1)" in proc.stdout  # the shift-vs-growth table
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    tasks = ["classification", "classification", "segmentation", "segmentation"]
    assert [(r["task"], r["seed"]) for r in rows] == list(zip(tasks, ["0", "1", "0", "1"]))
    assert {r["dataset_generated"] for r in rows} == {"True"}
    assert [float(r["trf_size"]) for r in rows] == [71, 71, 453, 453]  # see test_trained_nets
    assert rows[2]["val_mean_iou"] and not rows[0]["val_mean_iou"]
    with open(sweep / "shift_growth.csv") as f:
        table = list(csv.DictReader(f))
    assert {r["setting"] for r in table} == {"classification", "segmentation"}
    assert {r["n"] for r in table} == {"2"}
    for name in ("before_after.png", "shift_growth.png"):
        assert (sweep / name).stat().st_size > 10_000


def test_missing_cifar10_is_one_line_saying_where_to_put_it(tmp_path):
    last = run_erf_expecting_error(
        tmp_path / "run", "setting=classification", "data=cifar10", f"data.root={tmp_path}/c"
    )
    assert last.startswith("error: CIFAR-10 not found") and "data.download=true" in last


def test_data_without_train_is_rejected_before_any_work(tmp_path):
    proc = run_module_here(
        "erf.run", "data=cifar10", f"hydra.run.dir={tmp_path / 'x'}", check=False
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: data is set but train")
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- resume

SLOW = [
    "setting=classification",
    "model.blocks=1",
    "model.channels=2",
    "model.dropout=0.2",
    "data.size=16",
    "data.radii=[2,3]",
    "data.train_size=600",
    "data.val_size=8",
    "train.epochs=3",
    "train.batch_size=2",
    "probe.n_samples=2",
    "probe.batch_size=2",
    "train.threads=1",
]


def _slow(run_dir, *extra):
    """The overrides of the slow training job into ``run_dir``."""
    return [*SLOW, f"hydra.run.dir={run_dir}", *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole")
    run_module_here("erf.run", *_slow(run_dir))
    return run_dir


def _start_and_wait_for(run_dir, name):
    proc = start_module("erf.run", *_slow(run_dir))
    wait_for((run_dir / name).exists, proc, f"{name} appeared", poll_s=0.01)
    return proc


def _assert_same_training(a, b):
    wa, wb = torch.load(a / "model.pt"), torch.load(b / "model.pt")
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert np.array_equal(load_result(a / "erf_trained.npz").total,
                          load_result(b / "erf_trained.npz").total)  # fmt: skip
    history = [json.loads((d / "metrics.json").read_text())["history"] for d in (a, b)]
    for ra, rb in zip(*history):
        assert {**ra, "time_s": 0} == {**rb, "time_s": 0}


@pytest.mark.slow
def test_a_stop_signal_mid_training_checkpoints_and_resumes_bitwise(tmp_path, uninterrupted):
    proc = _start_and_wait_for(tmp_path, "erf_init.npz")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=WAIT_LIMIT_S)
    assert proc.returncode == 130, stderr
    assert "resume=true" in stderr and str(tmp_path) in stderr
    assert (tmp_path / "train_checkpoint.pt").exists()
    assert not (tmp_path / "metrics.json").exists()
    run_module_here("erf.run", *_slow(tmp_path, "resume=true"))
    _assert_same_training(tmp_path, uninterrupted)
    assert not (tmp_path / "train_checkpoint.pt").exists()


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_epoch_checkpoint_bitwise(tmp_path, uninterrupted):
    proc = _start_and_wait_for(tmp_path, "train_checkpoint.pt")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "metrics.json").exists()
    state = torch.load(tmp_path / "train_checkpoint.pt", weights_only=True)
    assert state["epoch"] >= 1 and state["step"] == 0
    run_module_here("erf.run", *_slow(tmp_path, "resume=true"))
    _assert_same_training(tmp_path, uninterrupted)
