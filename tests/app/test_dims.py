"""Sequence and volume models from the config (model=conv_stack_1d | conv_stack_3d): the job
runs end to end, and settings that exist for images only, or an input size or position with
the wrong number of axes, fail in one line before any folder is made."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job
from erf.app.validate import ConfigError, preflight
from erf.io.store import load_result, read_json


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=conv_stack_1d", "inputs.size=[32,32]"], "model.dims=1 takes sequences (C, L)"),
        (["model=conv_stack_3d", "inputs.size=[16]"], "so give inputs.size=[D, H, W]"),
        (["model=conv_stack_1d", "probe.layout=NHWC"], "probe.layout=NHWC is for images only"),
        (["model=conv_stack_3d", "probe.fast=true"], "probe.fast=true (it turns channels_last"),
        (["model=conv_stack_1d", "probe.crop=auto"], "probe.crop=auto is for images only"),
        (["model=conv_stack_1d", "job=profile"], "job=profile is for images only"),
        (
            ["model=conv_stack_1d", "inputs=photos", "inputs.size=[32]"],
            "inputs.source=photos is for images only",
        ),
        (["model=conv_stack_3d", "probe.position=[3,3]"], "the position has 3 index(es)"),
        (["probe.layout=NCDHW"], "probe.layout=NCDHW is for volumes; the inputs are images"),
        (["inputs.size=[40]"], "this conv stack takes images, so give [H, W]"),
        (["model=conv_stack_1d", "model.dims=4"], "model.dims=4 is not allowed"),
        (["model=conv_stack_1d", "probe.grid=[2,4]"], "probe.grid=[2, 4] is for images only"),
        (["model=conv_stack_1d", "probe.position=cls"], "probe.position=cls is for images only"),
        (["model=conv_stack_3d", "probe.draws=2"], "probe.draws=2 is for images only"),
        (["model=conv_stack_1d", "probe.protocol=luo"], "probe.protocol=luo is for images only"),
        (["model=conv_stack_3d", "probe.layout=NCL"], "probe.layout=NCL is for images only"),
    ],
)
def test_bad_sequence_or_volume_settings_fail_in_one_line_before_any_folder(
    tmp_path, overrides, message
):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as info:
        preflight([*overrides, f"hydra.run.dir={run_dir}"])
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not run_dir.exists()


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_a_uniform_sequence_model_job_writes_the_box_convolution_profile(tmp_path):
    cfg = _cfg(
        "model=conv_stack_1d", "model.depth=4", "model.channels=2", "probe.n_samples=2",
        "fit.bootstrap=0",
    )  # fmt: skip
    run_job(cfg, tmp_path)
    metrics = read_json(tmp_path / "metrics.json")
    p = np.ones(1)
    for _ in range(4):
        p = np.convolve(p, np.ones(3))
    erf_map = load_result(tmp_path / "erf.npz").map
    assert erf_map.shape == (32,)  # the TRF 9 + 16, at least 32
    np.testing.assert_allclose(erf_map[12:21] / erf_map.sum(), p / p.sum(), atol=1e-7)
    assert metrics["trf_sizes"] == [9] and metrics["layout"] == "NCL"
    assert (tmp_path / "heatmap.png").exists()


def test_a_sequence_shorter_than_its_trf_and_a_poor_fit_are_warned_in_the_metrics(tmp_path):
    """Four 3-tap layers read 1 + 4 x 2 = 9 samples: a 6-sample input clips the ERF. A clipped
    box is no Gaussian to within R² 0.9999, so the fit is flagged as well."""
    cfg = _cfg(
        "model=conv_stack_1d", "model.depth=4", "model.channels=2", "inputs.size=[6]",
        "probe.n_samples=1", "fit.bootstrap=0", "fit.r2_min=0.9999",
    )  # fmt: skip
    run_job(cfg, tmp_path)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["trf_sizes"] == [9] and metrics["trf_clipped"]
    assert "input 6 is smaller than the TRF 9 around the probed unit" in metrics["warnings"][0]
    assert metrics["fit_r2"] < 0.9999 and metrics["fit_problem"] in metrics["warnings"]
