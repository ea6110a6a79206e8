"""Every Luo et al. 2016 study runs end to end at scale=tiny and writes what it promises."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.inprocess import run_module_here

from erf.app.config import CONFIG_DIR
from erf.io.store import load_result, read_json


def _experiment(name, out, *overrides):
    return run_module_here(
        "erf.run",
        "scale=tiny",
        f"experiment={name}",
        f"hydra.sweep.dir={out}",
        *overrides,
    )


def _jobs(out):
    return {p.parent.name: read_json(p) for p in sorted(Path(out).glob("*/metrics.json"))}


@pytest.mark.slow
def test_activation_sweep_reports_a_fit_r2_per_activation_and_the_shape_figure(tmp_path):
    proc = _experiment("activation_sweep", tmp_path)
    jobs = _jobs(tmp_path)
    for protocol in ("ours", "luo"):
        acts = sorted(m["activation"] for m in jobs.values() if m["protocol"] == protocol)
        assert acts == ["none", "relu", "sigmoid", "tanh"]
    # the same draws x inputs budget: tiny has 2 draws x 2 inputs; luo 4 draws x 1 input
    assert {(m["protocol"], m["n_draws"], m["n_samples"]) for m in jobs.values()} == {
        ("ours", 2, 4),
        ("luo", 4, 4),
    }
    assert all(set(m["draws"]["n_samples"]) == {1} for m in jobs.values() if m["protocol"] == "luo")
    assert all(0 < m["fit_r2"] <= 1 for m in jobs.values() if m["fit_r2"] is not None)
    shape = read_json(tmp_path / "shape.json")["jobs"]
    assert len(shape) == 8 and all("fit_r2_low" in e and "protocol" in e for e in shape)
    for name in ("shape.png", "shape_panels.png", "fit_r2.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "fit_r2" in proc.stdout


@pytest.mark.slow
def test_subsample_dilation_compares_three_15_layer_variants_with_hand_derived_trfs(tmp_path):
    _experiment("subsample_dilation", tmp_path)
    trf = {m["label"]: m["trf_size"] for m in _jobs(tmp_path).values()}
    # baseline: 1 + 2*15; stride 2 at convs 5, 10, 15: 1 + 2*(5*1 + 5*2 + 5*4);
    # dilations 2, 4, 8 at those convs: 1 + 2*12 + 2*(2 + 4 + 8).
    assert trf == {"baseline": 31, "subsample": 71, "dilation": 53}
    assert (tmp_path / "erf_grid.png").exists()


@pytest.mark.slow
def test_dropout_skip_keeps_the_map_in_eval_mode_and_plots_the_residual_path_rfs(tmp_path):
    _experiment("dropout_skip", tmp_path)
    jobs = {m["label"]: (name, m) for name, m in _jobs(tmp_path).items()}
    assert set(jobs) == {"plain", "dropout_eval", "dropout_mask", "residual"}
    assert {m["trf_size"] for _, m in jobs.values()} == {9}  # 4 convs of 3x3: 1 + 2*4
    plain = load_result(tmp_path / jobs["plain"][0] / "erf.npz").map
    eval_dropout = load_result(tmp_path / jobs["dropout_eval"][0] / "erf.npz").map
    np.testing.assert_array_equal(plain, eval_dropout)
    # 2 blocks: 4 paths, spans 1, 5, 5, 9.
    assert jobs["residual"][1]["trf_path_sizes"] == [[1, 1, 1], [5, 5, 2], [9, 9, 1]]
    assert (tmp_path / f"path_rf_{jobs['residual'][0]}.png").exists()


@pytest.mark.slow
def test_growth_reports_slopes_with_intervals_over_the_weight_draws(tmp_path):
    proc = _experiment("growth", tmp_path)
    growth = read_json(tmp_path / "growth.json")
    groups = {(g["init"], g["activation"], g["protocol"]): g for g in growth["groups"]}
    assert set(groups) == {
        (init, act, protocol)
        for init in ("uniform", "random")
        for act in ("none", "relu")
        for protocol in ("ours", "luo")
    }
    for (_, _, protocol), g in groups.items():
        assert g["xs"] == [2, 4]
        # tiny: 3 draws x 2 inputs (ours), 6 one-input draws (luo); a dead ReLU draw has no size
        assert all(1 <= n <= (3 if protocol == "ours" else 6) for n in g["n_draws"])
        assert g["erf_size_slope_low"] <= g["erf_size_slope"] or np.isnan(g["erf_size_slope_low"])
    jobs = _jobs(tmp_path).values()
    assert all(len(m["draws"]["seeds"]) == (3 if m["protocol"] == "ours" else 6) for m in jobs)
    assert {n["model"] for n in growth["null_models"]} == {"box", "sqrt_box"}
    assert (tmp_path / "growth_slopes.csv").exists()
    uniform = groups[("uniform", "none", "ours")]
    assert uniform["n_draws"] == [3, 3]
    assert uniform["erf_size_slope_low"] == pytest.approx(uniform["erf_size_slope_high"])
    assert (tmp_path / "growth.png").exists()
    assert "95% CI" in proc.stdout


@pytest.mark.slow
def test_init_sweep_measures_every_init_with_and_without_relu(tmp_path):
    _experiment("init_sweep", tmp_path)
    runs = {(m["activation"], m["init"]) for m in _jobs(tmp_path).values()}
    assert runs == {
        (a, i) for a in ("none", "relu") for i in ("uniform", "random", "kaiming", "rim_heavy")
    }


@pytest.mark.slow
def test_paper_figures_runs_each_listed_experiment_and_gathers_their_figures(tmp_path):
    run_module_here(
        "erf.run",
        "scale=tiny",
        "experiment=paper_figures",
        "suite.experiments=[init_sweep,dropout_skip]",
        f"hydra.run.dir={tmp_path}",
    )
    suite = read_json(tmp_path / "suite.json")
    assert [e["name"] for e in suite["experiments"]] == ["init_sweep", "dropout_skip"]
    assert all(e["returncode"] == 0 for e in suite["experiments"])
    assert "init_sweep__erf_grid.png" in suite["figures"]
    assert (tmp_path / "figures" / "dropout_skip__summary.csv").exists()
    assert str(tmp_path) not in (tmp_path / "suite.json").read_text()  # paths relative to it
    assert suite["experiments"][0]["command"].endswith(" hydra.sweep.dir=init_sweep")


def test_paper_figures_lists_every_luo_study():
    suite = yaml.safe_load((CONFIG_DIR / "experiment/paper_figures.yaml").read_text())
    listed = set(suite["suite"]["experiments"])
    assert {"depth_sweep", "activation_sweep", "subsample_dilation", "growth"} <= listed
    assert {"dropout_skip", "init_sweep", "trained_vs_untrained"} <= listed
    for name in listed:
        assert (CONFIG_DIR / "experiment" / f"{name}.yaml").exists()


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_every_scale_gives_every_study_the_same_keys_as_tiny(scale):
    def studies(name):
        return yaml.safe_load((CONFIG_DIR / "scale" / f"{name}.yaml").read_text())["scale"]

    tiny, other = studies("tiny"), studies(scale)
    assert set(other) == set(tiny)
    for study, keys in tiny.items():
        if isinstance(keys, dict):
            assert set(other[study]) == set(keys), study
