"""``experiment=calibration``: the exact cases and the configured network against a reference
run, through the job's own metrics, into one coverage table; bad settings refused first."""

import csv

import pytest
from hydra import compose, initialize_config_dir

from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job

SMALL = [
    "experiment=calibration",
    "calibration.repetitions=6",
    "calibration.reference_samples=256",
    "calibration.cases=[box_depth4_n64]",
    "model.depth=2",
    "model.channels=4",
    "inputs.size=[9,9]",
    "probe.n_samples=16",
    "probe.batch_size=16",
    "fit.bootstrap=20",
]


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_the_job_writes_one_table_of_the_exact_case_and_the_network(tmp_path):
    record = run_job(_cfg(*SMALL), tmp_path)
    with open(tmp_path / "coverage.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["label"] for r in rows} == {"synthetic", "network"}
    network = [r for r in rows if r["label"] == "network"]
    assert {r["metric"] for r in network} >= {"erf_size", "fit_r2", "sigma_x"}
    assert all(int(r["n"]) == 6 for r in network)
    # the reference run holds 16x the inputs of a repetition: its intervals are far narrower
    size = next(r for r in network if r["metric"] == "erf_size")
    assert float(size["reference_width"]) < float(size["width"])
    assert record["network"]["reference_samples"] == 256
    for name in ("coverage.md", "coverage.png", "calibration.json"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("calibration.cases=[box_depth5]", "calibration.cases"),
        ("calibration.repetitions=0", "calibration.repetitions"),
        ("inputs=photos", "needs fresh random inputs per repetition"),
        ("probe.draws=2", "probe.draws"),
    ],
)
def test_bad_settings_are_refused_in_one_line_naming_the_option(tmp_path, override, message):
    with pytest.raises(ValueError, match=message) as info:
        run_job(_cfg(*SMALL, override), tmp_path / "job")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "job" / "coverage.csv").exists()


def test_inputs_that_are_not_random_are_refused_before_any_case_runs(tmp_path, monkeypatch):
    from erf.app.jobs import calibration

    def ran(*args, **kwargs):
        raise AssertionError("a case ran before the refusal")

    monkeypatch.setattr(calibration, "simulate", ran)
    with pytest.raises(ValueError, match="needs fresh random inputs per repetition"):
        run_job(_cfg(*SMALL, "inputs=photos"), tmp_path / "job")
