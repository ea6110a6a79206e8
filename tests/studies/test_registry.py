"""The study registry (erf.studies): it lists exactly the study modules, an unknown study is a
one-line error wherever a name is given, and adding a study is one registered entry that the
callback and ``erf report --study`` then accept."""

from pathlib import Path

import pytest
from helpers.sweeps import gaussian, write_job
from omegaconf import OmegaConf

import erf.studies
from erf import cli
from erf.app import callbacks, report
from erf.studies import get_study, register_study, registry, study_names

STUDIES_DIR = Path(erf.studies.__file__).parent
ALLOWED = "['growth', 'shape', 'paths', 'cross_arch', 'skip_scale', 'trained_vs_untrained']"


def test_the_registry_lists_exactly_the_study_modules_each_registering_its_own_name():
    modules = {p.stem for p in STUDIES_DIR.glob("*.py")} - {"__init__", "registry"}
    assert set(study_names()) == modules
    for name in study_names():
        study = get_study(name)
        assert study.name == name and study.write.__module__ == f"erf.studies.{name}"
        assert study.help and "\n" not in study.help and study.files


def test_an_unknown_study_is_a_one_line_error_naming_the_registered_ones(tmp_path, capsys):
    expected = f"unknown study 'nope'; allowed: {ALLOWED}"
    with pytest.raises(ValueError) as raised:
        get_study("nope")
    assert str(raised.value) == expected
    with pytest.raises(ValueError) as raised:
        callbacks.SweepSummary(study="nope")
    assert str(raised.value) == expected
    assert cli.main(["report", str(tmp_path), "--study", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nope'" in err and "'skip_scale'" in err


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="study 'growth' is already registered"):
        register_study("growth", help="x", files=())(lambda *args: "")


@pytest.fixture
def throwaway(monkeypatch):
    """A study registered for one test only: it writes hello.txt and returns its text."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    seen = {}

    @register_study("throwaway", help="writes hello.txt", files=("hello.txt",))
    def write(sweep_dir, rows, x, group_by, scale):
        seen.update(jobs=[r["job"] for r in rows], x=x, group_by=list(group_by), scale=scale)
        (sweep_dir / "hello.txt").write_text("hello")
        return f"hello from {len(rows)} jobs"

    return seen


@pytest.fixture
def sweep(tmp_path):
    for i, depth in enumerate((2, 4)):
        write_job(tmp_path, f"{i}_depth{depth}", [gaussian(9, 1.5)], depth=depth,
                  init="random", activation="relu", erf_size=3.0 + depth, trf_size=1.0 + 2 * depth,
                  erf_trf_ratio=(3.0 + depth) / (1.0 + 2 * depth))  # fmt: skip
    return tmp_path


def test_a_registered_study_is_one_entry_that_erf_report_accepts(throwaway, sweep, capsys):
    assert study_names()[-1] == "throwaway"
    assert report.main([str(sweep), "--study", "throwaway", "--scale", "log"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["hello from 2 jobs", f"results: {sweep}"]
    assert (sweep / "hello.txt").read_text() == "hello"
    assert (sweep / "summary.csv").is_file()  # the plain sweep summary comes first
    assert throwaway == {"jobs": ["0_depth2", "1_depth4"], "x": "depth",
                         "group_by": ["init", "activation"], "scale": "log"}  # fmt: skip


def test_a_registered_study_is_one_entry_that_the_sweep_callback_accepts(
    throwaway, sweep, capsys, monkeypatch
):
    monkeypatch.setattr(callbacks, "FAILURES", [])
    summary = callbacks.SweepSummary(x="depth", group_by=["init"], study="throwaway")
    summary.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert callbacks.FAILURES == []
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["hello from 2 jobs", f"results: {sweep}"]
    assert throwaway["group_by"] == ["init"] and (sweep / "report.html").is_file()
