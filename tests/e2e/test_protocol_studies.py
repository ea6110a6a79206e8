"""The protocol-aware studies run end to end at scale=tiny and write what they promise:
growth_reductions (slopes per reduction beside the null models), skip_scale (ERF size against
the branch scale, with and without batch-norm), activation_saturation and activation_settings
(fit R² with jackknife intervals over draws)."""

from pathlib import Path

import pytest
import yaml
from helpers.inprocess import run_module_here

from erf.app.config import CONFIG_DIR
from erf.io.store import read_json


def _experiment(name, out, *overrides):
    return run_module_here(
        "erf.run", "scale=tiny", f"experiment={name}", f"hydra.sweep.dir={out}", *overrides,
    )  # fmt: skip


def _jobs(out):
    return [read_json(p) for p in sorted(Path(out).glob("*/metrics.json"))]


@pytest.mark.slow
def test_growth_reductions_reports_slopes_per_reduction_and_the_null_models(tmp_path):
    _experiment("growth_reductions", tmp_path)
    growth = read_json(tmp_path / "growth.json")
    assert {g["reduce"] for g in growth["groups"]} == {"abs", "square", "relu"}
    assert {n["model"] for n in growth["null_models"]} == {"box", "sqrt_box"}
    csv = (tmp_path / "growth_slopes.csv").read_text()
    assert "null model: sqrt_box" in csv and "erf_size_slope_low" in csv.splitlines()[0]


@pytest.mark.slow
def test_skip_scale_sweeps_alpha_with_and_without_batch_norm_at_one_trf(tmp_path):
    proc = _experiment("skip_scale", tmp_path)
    jobs = _jobs(tmp_path)
    assert {(m["batch_norm"], m["branch_scale"]) for m in jobs} == {
        (bn, a) for bn in (False, True) for a in (0, 0.25, 0.5, 1, 2)
    }
    assert {m["trf_size"] for m in jobs} == {9}  # 2 blocks of two 3x3 convs, every alpha
    alpha0 = [m for m in jobs if m["branch_scale"] == 0]
    assert all(m["erf_size"] == 1 for m in alpha0)  # only the identity: one pixel
    entries = read_json(tmp_path / "skip_scale.json")["jobs"]
    assert len(entries) == 10 and all("erf_size_low" in e for e in entries)
    assert (tmp_path / "skip_scale.png").stat().st_size > 0
    assert "ERF size [95% CI]" in proc.stdout


def test_activation_saturation_sweeps_four_activations_at_four_gains():
    params = yaml.safe_load((CONFIG_DIR / "experiment/activation_saturation.yaml").read_text())
    swept = params["hydra"]["sweeper"]["params"]
    assert swept == {"model.activation": "none,relu,tanh,sigmoid", "model.weight_scale": "1,2,4,8"}


@pytest.mark.slow
def test_activation_saturation_and_settings_write_r2_with_intervals(tmp_path):
    # two of the four activations at two of the four gains (the grid is the config's, above)
    sweep = ["model.activation=none,tanh", "model.weight_scale=1,8"]
    _experiment("activation_saturation", tmp_path / "sat", *sweep)
    shape = read_json(tmp_path / "sat" / "shape.json")["jobs"]
    assert {(e["activation"], e["weight_scale"]) for e in shape} == {
        (a, g) for a in ("none", "tanh") for g in (1, 8)
    }
    assert all("fit_r2_low" in e for e in shape)
    _experiment("activation_settings", tmp_path / "set")
    shape = read_json(tmp_path / "set" / "shape.json")["jobs"]
    assert {e["protocol"] for e in shape} == {"ours", "luo"} and len(shape) == 8
    assert (tmp_path / "set" / "fit_r2.png").stat().st_size > 0
