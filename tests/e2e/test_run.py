"""The Hydra app and the report, end to end in subprocesses at tiny sizes."""

import csv
import json
import os
import sys

import numpy as np
import pytest
from helpers.cli import last_line
from helpers.inprocess import run_erf_expecting_error, run_module_here
from helpers.oracles import box_convolution_2d
from helpers.paths import REPO

from erf.analysis.metrics import luo_size

TINY = ["model.channels=2", "inputs.size=[40,40]", "probe.n_samples=4", "probe.batch_size=2"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("sweep") / "depth_sweep"
    proc = run_module_here(
        "erf.run",
        "experiment=depth_sweep",
        "model.depth=2,4,8",
        *TINY,
        f"hydra.sweep.dir={sweep_dir}",
    )
    return sweep_dir, proc


def test_depth_sweep_prints_its_results_directory_last(tiny_sweep):
    sweep_dir, proc = tiny_sweep
    assert last_line(proc.stdout) == f"results: {sweep_dir}"


def test_depth_sweep_writes_one_job_per_grid_point_with_map_metrics_and_heatmap(tiny_sweep):
    sweep_dir, _ = tiny_sweep
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / "metrics.json").exists())
    assert len(jobs) == 3 * 2 * 2  # depth x init x activation
    for job in jobs:
        assert {"erf.npz", "metrics.json", "heatmap.png"} <= {p.name for p in job.iterdir()}
    metrics = json.loads((jobs[0] / "metrics.json").read_text())
    for key in ("erf_size", "trf_size", "erf_trf_ratio", "sigma_x", "sigma_y", "depth", "init"):
        assert key in metrics
    provenance = metrics["provenance"]
    assert provenance["torch_version"] and provenance["erf_version"]
    assert provenance["git_commit"] is None or len(provenance["git_commit"]) == 40
    assert (provenance["device"], provenance["dtype"]) == ("cpu", "float32")
    assert metrics["wall_time_s"] > 0
    assert metrics["config"]["model"]["channels"] == 2


def test_depth_sweep_summary_has_a_row_per_job_and_the_two_figures(tiny_sweep):
    sweep_dir, _ = tiny_sweep
    with open(sweep_dir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    for col in ("depth", "init", "activation", "erf_size", "trf_size", "sigma_x", "sigma_y"):
        assert col in rows[0]
    for flag in ("degenerate", "fit_problem", "trf_clipped", "n_nonfinite"):  # per-job flags
        assert flag in rows[0]
    assert {int(r["trf_size"].split(".")[0]) for r in rows} == {5, 9, 17}  # 2n + 1
    assert (sweep_dir / "erf_grid.png").stat().st_size > 10_000
    assert (sweep_dir / "trf_vs_erf.png").stat().st_size > 10_000
    slopes = json.loads((sweep_dir / "slopes.json").read_text())
    assert len(slopes["groups"]) == 4
    trf_slopes = {round(g["trf_size_slope"], 6) for g in slopes["groups"]}
    assert len(trf_slopes) == 1  # the same TRFs in every group


def test_uniform_linear_jobs_report_the_exact_box_convolution_luo_size(tiny_sweep):
    sweep_dir, _ = tiny_sweep
    with open(sweep_dir / "summary.csv") as f:
        rows = [
            r for r in csv.DictReader(f) if r["init"] == "uniform" and r["activation"] == "none"
        ]
    for r in rows:
        oracle = luo_size(box_convolution_2d(int(r["depth"]), 3, 40))
        assert float(r["erf_size"]) == pytest.approx(oracle, rel=1e-5)


def test_report_rebuilds_the_summary_from_saved_job_results(tiny_sweep):
    sweep_dir, _ = tiny_sweep
    before = (sweep_dir / "summary.csv").read_text()
    (sweep_dir / "summary.csv").unlink()
    (sweep_dir / "trf_vs_erf.png").unlink()
    proc = run_module_here("erf.report", str(sweep_dir))
    assert last_line(proc.stdout) == f"results: {sweep_dir}"
    assert (sweep_dir / "summary.csv").read_text() == before
    assert (sweep_dir / "trf_vs_erf.png").exists()


def test_report_on_a_folder_without_results_fails_with_one_line(tmp_path):
    proc = run_module_here("erf.report", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no job results" in proc.stderr


def test_uniform_linear_sweep_over_luo_depths_has_the_sqrt_n_slope(tmp_path):
    sweep_dir = tmp_path / "sqrt_n"
    run_module_here(
        "erf.run",
        "experiment=depth_sweep",
        "model.init=uniform",
        "model.activation=none",
        "model.channels=1",
        "probe.n_samples=1",
        f"hydra.sweep.dir={sweep_dir}",
    )
    group = json.loads((sweep_dir / "slopes.json").read_text())["groups"]
    assert len(group) == 1
    assert group[0]["erf_size_slope"] == pytest.approx(0.5, abs=0.05)
    assert group[0]["erf_trf_ratio_slope"] == pytest.approx(-0.5, abs=0.1)


def test_an_input_smaller_than_the_trf_is_run_but_warned_about_in_metrics(tmp_path):
    out = tmp_path / "small"
    run_module_here(
        "erf.run",
        "model.depth=20",
        "model.channels=1",
        "inputs.size=[24,24]",
        "probe.n_samples=1",
        f"hydra.run.dir={out}",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trf_clipped"] is True
    assert any("smaller than the TRF" in w for w in metrics["warnings"])


def test_a_missing_image_folder_is_one_line_and_writes_nothing(tmp_path):
    last = run_erf_expecting_error(
        tmp_path / "images",
        "inputs=imagefolder",
        f"inputs.root={tmp_path / 'no'}",
        "model.channels=3",
    )
    assert last.startswith("error: inputs.root=") and "ImageFolder layout" in last


def test_single_run_writes_results_and_prints_its_directory(tmp_path):
    out = tmp_path / "one"
    proc = run_module_here(
        "erf.run",
        "model.depth=3",
        "model.channels=1",
        "probe.n_samples=2",
        f"hydra.run.dir={out}",
    )
    assert last_line(proc.stdout) == f"results: {out}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trf_size"] == 7.0
    assert metrics["input_h"] == 32  # auto size: max(32, TRF + 16)
    with np.load(out / "erf.npz") as data:
        assert data["map"].shape == (32, 32)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.activation=swish", "error: model.activation=swish is not allowed"),
        ("probe.reduce=mean", "error: probe.reduce=mean is not allowed"),
        ("model.depth=0", "error: model.depth=0 is not allowed"),
        ("probe.position=[99,99]", "error: position (99, 99) is outside the 37x37 target"),
    ],
)
def test_bad_settings_fail_with_one_error_line_and_no_results(tmp_path, override, message):
    last = run_erf_expecting_error(tmp_path / "bad", override, "model.channels=1")
    assert last.startswith(message)


def test_cli_exits_non_zero_with_one_line_and_no_traceback_before_any_work(tmp_path):
    proc = run_module_here(
        "erf.run", "probe.n_samples=0", f"hydra.run.dir={tmp_path / 'x'}", check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: probe.n_samples=0 is not allowed: expected an integer >= 1 (at most 100000000)"
    )
    assert not (tmp_path / "x").exists()


def test_a_job_that_refuses_its_config_exits_2_and_leaves_no_folder(tmp_path):
    # the position is checked against the built model's feature map, inside the job: the
    # job removes the folder Hydra made for it (it wrote nothing); HYDRA_FULL_ERROR=1 shows
    # the traceback on the console
    import os

    run_dir = tmp_path / "bad"
    args = ["erf.run", "model.channels=1", "probe.position=[99,99]", f"hydra.run.dir={run_dir}"]
    proc = run_module_here(*args, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == (
        "error: position (99, 99) is outside the 37x37 target feature map"
    )
    assert not run_dir.exists()
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = run_module_here(*args, check=False, env=env)
    assert proc.returncode == 2 and "Traceback (most recent call last)" in proc.stderr
    assert not run_dir.exists()


def test_layer_profile_probes_every_stage_and_draws_the_profile(tmp_path):
    out = tmp_path / "profile"
    proc = run_module_here(
        "erf.run",
        "experiment=layer_profile",
        "model.name=resnet18",
        "inputs.size=[64,64]",
        "probe.n_samples=2",
        "probe.batch_size=2",
        f"hydra.run.dir={out}",
    )
    assert last_line(proc.stdout) == f"results: {out}"
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["target"] for r in rows] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    trf = [float(r["trf_size"]) for r in rows]
    assert trf == sorted(trf) and trf[0] == 7.0  # conv1: 7x7 stride 2
    assert (out / "profile.png").exists() and (out / "erf_grid.png").exists()


def test_real_models_sweep_reports_trf_erf_and_area_ratios_per_model(tmp_path):
    sweep_dir = tmp_path / "real"
    proc = run_module_here(
        "erf.run",
        "experiment=real_models",
        "model.name=resnet18,vgg11",
        "inputs.size=[64,64]",
        "probe.n_samples=2",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert last_line(proc.stdout) == f"results: {sweep_dir}"
    with open(sweep_dir / "summary.csv") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert rows["resnet18"]["target"] == "layer4" and rows["vgg11"]["target"] == "features"
    for r in rows.values():
        assert float(r["area_ratio_20"]) <= float(r["area_ratio_50"])
        assert r["trf_size"]
    assert "area_ratio_99" in proc.stdout  # the table printed at the end of the sweep


def test_custom_model_with_checkpoint_is_probed_at_a_named_layer(tmp_path):
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from helpers.custom_net import TinyNet

    torch.save(TinyNet(width=3).state_dict(), tmp_path / "tiny.pth")
    out = tmp_path / "custom"
    proc = run_module_here(
        "erf.run",
        "model=custom",
        "model._target_=helpers.custom_net.TinyNet",
        "+model.width=3",
        f"model.checkpoint={tmp_path / 'tiny.pth'}",
        "probe.target=body",
        "inputs.size=[24,24]",
        "probe.n_samples=2",
        f"hydra.run.dir={out}",
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["target"] == "body"
    assert metrics["trf_size"] == 5.0  # stem 3x3 then body 3x3


def test_layers_command_lists_targets_with_their_trf():
    proc = run_module_here(
        "erf.layers", "model=torchvision", "model.name=resnet18", "inputs.size=[64,64]"
    )
    assert "layer4" in proc.stdout and "global" in proc.stdout
    assert "probe.target=auto picks 'layer4'" in proc.stdout


def test_layers_command_lists_the_token_layers_of_a_vit_after_the_graph_stops():
    pytest.importorskip("timm")
    proc = run_module_here(
        "erf.layers", "model=timm", "model.name=vit_tiny_patch16_224", "+model.img_size=64",
        "inputs.size=[64,64]",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "The map becomes a token sequence at node" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("blocks.11 "))
    assert row.split()[2:] == ["tokens", "192×4×4", "1"]
    assert "q_norm" not in proc.stdout  # attention heads are no map of the input
    assert "probe.target=blocks.11" in proc.stdout
