"""The trained-vs-untrained study (erf.studies.trained_vs_untrained) from plain job folders:
per-seed shift and growth in summary.csv, the over-seeds table with t-intervals
(shift_growth.csv/.json) and the figures.
The maps are Gaussians with a known offset and width, so the numbers have exact oracles."""

import csv
import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from erf.app import callbacks, report, trainjob
from erf.io.store import save_result, write_json
from erf.result import ERFResult
from erf.studies import get_study, write_study
from erf.studies.trained_vs_untrained import (
    collect_jobs,
    format_summary,
    setting_names,
    write_study_summary,
)

N = 61
UNIT = (30, 30)


def _gaussian_result(sigma: float, d_col: float) -> ERFResult:
    r, c = np.indices((N, N), dtype=np.float64)
    m = np.exp(-((r - UNIT[0]) ** 2 + (c - UNIT[1] - d_col) ** 2) / (2 * sigma**2))
    return ERFResult(
        total=m, total_sq=m**2, n_samples=1, input_shape=(1, N, N), target="body",
        target_shape=(1, N, N), position=UNIT, channel=None, reduce="abs",
    )  # fmt: skip


def _job(sweep, name, task, seed, trained_sigma, trained_shift, init="kaiming", scale=1.0):
    folder = sweep / name
    folder.mkdir(parents=True)
    save_result(_gaussian_result(2.0, 0.0), folder / "erf_init.npz")
    trained = _gaussian_result(trained_sigma, trained_shift)
    trained = replace(trained, total=scale * trained.total, total_sq=scale**2 * trained.total_sq)
    save_result(trained, folder / "erf_trained.npz")
    erf = {"center_row": UNIT[0], "center_col": UNIT[1], "unit_in_input": list(UNIT)}
    write_json(
        {
            "task": task, "seed": seed, "init": init, "dataset": f"generated_{task}",
            "dataset_generated": True, "dataset_description": "GENERATED test data",
            "erf_size_init": 9.0, "erf_size_trained": 10.0, "trf_size": 21.0,
            "val_accuracy": 0.5, "erf_init": erf, "erf_trained": erf,
        },
        folder / "metrics.json",
    )  # fmt: skip


@pytest.fixture
def sweep(tmp_path):
    # segmentation: the map moves right by 4, 8, 12 px and keeps its width (pure shift);
    # classification: the map widens from sigma 2 to 3, 4, 5 and stays put (pure growth)
    for i, (seed, shift) in enumerate(zip((0, 1, 2), (4.0, 8.0, 12.0))):
        _job(tmp_path, f"{i}_seg_seed{seed}", "segmentation", seed, 2.0, shift)
    for i, (seed, sigma) in enumerate(zip((0, 1, 2), (3.0, 4.0, 5.0))):
        _job(tmp_path, f"{i + 3}_cls_seed{seed}", "classification", seed, sigma, 0.0)
    return tmp_path


def _t_half(values):
    return stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))


def test_the_summary_separates_shift_from_growth_per_seed_and_over_seeds(sweep):
    rows = write_study_summary(sweep, collect_jobs(sweep))
    assert [r["seed"] for r in rows] == [0, 1, 2, 0, 1, 2]
    with open(sweep / "summary.csv") as f:
        table = list(csv.DictReader(f))
    seg = [r for r in table if r["task"] == "segmentation"]
    assert [float(r["shift_col_trained"]) for r in seg] == pytest.approx([4, 8, 12], abs=1e-6)
    assert [float(r["moment_sigma_own_trained"]) for r in seg] == pytest.approx([2, 2, 2], rel=1e-6)

    with open(sweep / "shift_growth.csv") as f:
        long = {(r["setting"], r["quantity"], r["phase"]): r for r in csv.DictReader(f)}
    shift = long["segmentation", "shift_norm", "change"]
    assert int(shift["n"]) == 3 and float(shift["mean"]) == pytest.approx(8.0, abs=1e-6)
    half = _t_half([4.0, 8.0, 12.0])
    assert float(shift["low"]) == pytest.approx(8.0 - half, abs=1e-5)
    assert [float(shift[f"seed_{s}"]) for s in (0, 1, 2)] == pytest.approx([4, 8, 12], abs=1e-6)
    assert float(long["segmentation", "moment_sigma_own", "change"]["high"]) == pytest.approx(
        0.0, abs=1e-6
    )  # no growth about its own centre, at every seed
    # about the unit it grows: parallel axes, sqrt(sigma_row * sqrt(sigma² + shift²)) - sigma
    about_unit = [math.sqrt(2.0 * math.hypot(2.0, d)) - 2.0 for d in (4, 8, 12)]
    unit = long["segmentation", "moment_sigma_unit", "change"]
    assert float(unit["mean"]) == pytest.approx(np.mean(about_unit), rel=1e-5)
    grow = long["classification", "moment_sigma_own", "change"]
    assert float(grow["mean"]) == pytest.approx(2.0, rel=1e-6)
    assert float(grow["high"]) - float(grow["mean"]) == pytest.approx(_t_half([1, 2, 3]), rel=1e-6)
    assert float(long["classification", "shift_norm", "change"]["mean"]) == pytest.approx(
        0.0, abs=1e-6
    )

    saved = json.loads((sweep / "shift_growth.json").read_text())
    assert saved["level"] == 0.95 and [s["setting"] for s in saved["settings"]] == [
        "classification",
        "segmentation",
    ]
    for name in ("before_after.png", "shift_growth.png"):
        assert (sweep / name).stat().st_size > 10_000
    text = format_summary(rows)
    assert "segmentation (seeds 0, 1, 2)" in text and "shift_norm" in text


def test_settings_that_differ_beyond_the_seed_are_summarised_apart(tmp_path):
    for i, init in enumerate(("kaiming", "rim_heavy")):
        _job(tmp_path, f"{i}_cls_{init}", "classification", 0, 3.0, 0.0, init=init)
    rows = write_study_summary(tmp_path, collect_jobs(tmp_path))
    assert setting_names(rows) == ["classification, init=kaiming", "classification, init=rim_heavy"]
    with open(tmp_path / "shift_growth.csv") as f:
        assert {r["setting"] for r in csv.DictReader(f)} == set(setting_names(rows))


def test_a_seed_whose_trained_map_vanished_is_left_out_of_the_intervals_and_named(tmp_path):
    for i, (seed, shift) in enumerate(zip((0, 1, 2), (4.0, 8.0, 12.0))):
        _job(tmp_path, f"{i}_seg_seed{seed}", "segmentation", seed, 2.0, shift)
    _job(tmp_path, "3_seg_seed3", "segmentation", 3, 2.0, 30.0, scale=1e-8)  # a dead unit
    rows = write_study_summary(tmp_path, collect_jobs(tmp_path))
    assert "dead" in rows[3]["shift_growth_excluded"] and rows[0]["shift_growth_excluded"] is None
    with open(tmp_path / "shift_growth.csv") as f:
        long = {(r["quantity"], r["phase"]): r for r in csv.DictReader(f)}
    assert long["shift_norm", "before"]["n"] == "4"  # the map at init is fine
    change = long["shift_norm", "change"]
    assert change["n"] == "3" and float(change["mean"]) == pytest.approx(8.0, abs=1e-6)
    assert "seed 3 left out after training" in format_summary(rows)


def test_the_registered_study_writes_its_files_without_the_plain_sweep_summary(sweep):
    study = get_study("trained_vs_untrained")
    assert not study.sweep_summary  # it writes its own summary.csv
    text = write_study(sweep, "trained_vs_untrained")
    assert text == format_summary(write_study_summary(sweep, collect_jobs(sweep)))
    assert set(study.files) <= {p.name for p in sweep.iterdir()}
    assert not (sweep / "erf_grid.png").exists()


def test_a_folder_without_finished_training_jobs_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished training jobs"):
        write_study(tmp_path, "trained_vs_untrained")


def test_train_summary_is_an_alias_of_report_with_the_study(sweep, tmp_path, capsys):
    other = tmp_path / "copy"
    shutil.copytree(sweep, other)
    assert trainjob.main([str(sweep), "--scale", "log"]) == 0
    alias = capsys.readouterr()
    args = [str(other), "--study", "trained_vs_untrained", "--scale", "log"]
    assert report.main(args) == 0
    full = capsys.readouterr()
    assert alias.err == full.err == ""
    assert alias.out.replace(str(sweep), "DIR") == full.out.replace(str(other), "DIR")
    for name in ("summary.csv", "shift_growth.csv", "shift_growth.json", "summary.md"):
        assert (sweep / name).read_bytes() == (other / name).read_bytes()
    assert trainjob.main([str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: no finished training jobs")


def test_the_sweep_callback_serves_the_study(sweep, capsys, monkeypatch):
    monkeypatch.setattr(callbacks, "FAILURES", [])
    summary = callbacks.SweepSummary(study="trained_vs_untrained")
    summary.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert callbacks.FAILURES == []
    out = capsys.readouterr().out
    rows = collect_jobs(sweep)
    assert out == f"{format_summary(write_study_summary(sweep, rows))}\nresults: {sweep}\n"
    assert (sweep / "report.html").is_file() and not (sweep / "erf_grid.png").exists()
