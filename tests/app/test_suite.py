"""The paper_figures suite: what each member experiment is told, and how the suite records,
collects and reports its members' outcomes (``run_suite`` with ``subprocess.run`` replaced)."""

import json
import os
import platform
import re
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from erf.app import suite
from erf.app.suite import experiment_command, hardware, run_suite, sweeps_seed


def _cfg(seed: int = 3):
    return OmegaConf.create(
        {"scale": {"name": "cpu"}, "device": "cpu", "seed": seed, "resume": False}
    )


def test_an_experiment_that_sweeps_its_own_seeds_keeps_them():
    """trained_vs_untrained repeats each setting over scale.<study>.seeds: a suite seed=N would
    replace the sweep by one seed."""
    assert sweeps_seed("trained_vs_untrained")
    argv = experiment_command(_cfg(), "trained_vs_untrained", Path("/x"))
    assert not any(a.startswith("seed=") for a in argv)


def test_the_suite_seed_is_passed_to_experiments_without_a_seed_sweep():
    for name in ("depth_sweep", "growth", "activation_sweep"):
        assert not sweeps_seed(name)
        assert "seed=3" in experiment_command(_cfg(3), name, Path("/x"))


def _suite_cfg(experiments: list[str]):
    cfg = _cfg(3)
    cfg.suite = {"experiments": experiments}
    return cfg


class _FakeRuns:
    """Stands in for ``subprocess.run``: each experiment "exits" with its code and writes
    one figure into its folder (``hydra.sweep.dir``); no process is started."""

    def __init__(self, codes: dict[str, int]):
        self.codes, self.names = codes, []

    def __call__(self, command, check):
        name = next(a for a in command if a.startswith("experiment=")).split("=", 1)[1]
        folder = Path(next(a for a in command if a.startswith("hydra.sweep.dir=")).split("=", 1)[1])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "erf_grid.png").write_bytes(name.encode())
        self.names.append(name)
        return subprocess.CompletedProcess(command, self.codes[name])


def test_an_unknown_experiment_is_refused_before_anything_runs(tmp_path, monkeypatch):
    runs = _FakeRuns({})
    monkeypatch.setattr(subprocess, "run", runs)
    with pytest.raises(ValueError, match=r"suite.experiments: unknown \['no_such'\]; available: "):
        run_suite(_suite_cfg(["depth_sweep", "no_such"]), tmp_path / "out")
    assert runs.names == [] and not (tmp_path / "out").exists()


def test_a_failed_experiment_is_recorded_the_next_still_runs_and_the_suite_fails_naming_it(
    tmp_path, monkeypatch
):
    runs = _FakeRuns({"depth_sweep": 1, "growth": 0})
    monkeypatch.setattr(subprocess, "run", runs)
    with pytest.raises(
        RuntimeError,
        match=rf"^experiments failed: depth_sweep; see {re.escape(str(tmp_path))}/suite.json$",
    ):
        run_suite(_suite_cfg(["depth_sweep", "growth"]), tmp_path)
    assert runs.names == ["depth_sweep", "growth"]
    record = json.loads((tmp_path / "suite.json").read_text())
    assert [(e["name"], e["returncode"]) for e in record["experiments"]] == [
        ("depth_sweep", 1),
        ("growth", 0),
    ]
    assert record["figures"] == ["depth_sweep__erf_grid.png", "growth__erf_grid.png"]
    assert (tmp_path / "figures" / "growth__erf_grid.png").read_bytes() == b"growth"


def test_an_interrupted_experiment_stops_the_suite_with_the_command_that_resumes_it(
    tmp_path, monkeypatch
):
    runs = _FakeRuns({"depth_sweep": 130, "growth": 0})
    monkeypatch.setattr(subprocess, "run", runs)
    resume = f"resume=true hydra.run.dir={re.escape(str(tmp_path))}$"
    with pytest.raises(RuntimeError, match=rf"^interrupted during depth_sweep; .* plus: {resume}"):
        run_suite(_suite_cfg(["depth_sweep", "growth"]), tmp_path)
    assert runs.names == ["depth_sweep"]  # growth never started
    record = json.loads((tmp_path / "suite.json").read_text())
    assert [(e["name"], e["returncode"]) for e in record["experiments"]] == [("depth_sweep", 130)]
    assert "figures" not in record


def test_a_cpu_without_a_model_name_is_named_by_the_platform(tmp_path, monkeypatch):
    """ARM Linux's /proc/cpuinfo has no "model name" line: the platform module names it."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n")
    monkeypatch.setattr(suite, "Path", lambda _: cpuinfo)
    name = platform.processor() or platform.machine()
    assert hardware("cpu") == f"CPU {name}, {os.cpu_count()} cores"
    monkeypatch.setattr(suite, "Path", lambda _: tmp_path / "missing")  # no /proc (macOS)
    assert hardware("cpu") == f"CPU {name}, {os.cpu_count()} cores"
