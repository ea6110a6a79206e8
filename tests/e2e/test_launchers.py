"""Hydra launchers: our launcher configs compose, sweeps run under them, preflight explains."""

import csv

import pytest
from helpers.cli import last_line, run_module
from hydra import compose, initialize_config_dir

import erf.app.launchers
from erf.app.launchers import available_launchers, launcher_problem
from erf.app.validate import CONFIG_DIR

TINY_SWEEP = [
    "experiment=depth_sweep",
    "model.depth=2,3",
    "model.init=uniform",
    "model.activation=none",
    "model.channels=2",
    "inputs.size=[16,16]",
    "probe.n_samples=4",
    "probe.batch_size=2",
]


def _sweep(sweep_dir, launcher):
    return run_module(
        "erf.run",
        *TINY_SWEEP,
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep_dir}",
        timeout=300,
    )


def _summary_depths(sweep_dir):
    with open(sweep_dir / "summary.csv") as f:
        return sorted(int(row["depth"]) for row in csv.DictReader(f))


@pytest.mark.slow
def test_a_two_job_sweep_runs_in_parallel_processes_and_is_summarised(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = _sweep(tmp_path / "sweep", "parallel")
    assert _summary_depths(tmp_path / "sweep") == [2, 3]
    assert last_line(proc.stdout) == f"results: {tmp_path / 'sweep'}"


@pytest.mark.slow
def test_a_two_job_sweep_runs_under_submitit_and_is_summarised(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    _sweep(tmp_path / "sweep", "submitit_local")
    assert _summary_depths(tmp_path / "sweep") == [2, 3]
    assert (tmp_path / "sweep" / ".submitit").is_dir()


def test_the_slurm_config_composes_into_submitits_slurm_launcher():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 60)
    assert launcher.array_parallelism == 64


def test_unknown_launchers_are_named_with_the_available_ones():
    assert launcher_problem("nope") == (
        "hydra/launcher=nope is not a known launcher; available: "
        "basic, parallel, slurm, joblib, submitit_local, submitit_slurm"
    )
    assert launcher_problem("basic") is None
    assert {"parallel", "slurm"} <= set(available_launchers())


def test_a_missing_plugin_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(erf.app.launchers.importlib.util, "find_spec", lambda name: None)
    assert launcher_problem("slurm") == (
        "hydra/launcher=slurm needs the hydra-submitit-launcher plugin: pip install 'erf[slurm]'"
    )
