"""``probe.draws`` in the Hydra app: M random networks per job, per-draw sizes in metrics.json."""

import json

import numpy as np
import pytest
from helpers.cli import WAIT_LIMIT_S, start_module, wait_for
from helpers.inprocess import run_erf_expecting_error, run_module_here

from erf.analysis.metrics import luo_size
from erf.io.store import load_result

NET = [
    "model.depth=3",
    "model.channels=2",
    "model.init=random",
    "model.activation=relu",
    "inputs.size=[16,16]",
    "probe.n_samples=2",
    "probe.batch_size=2",
    "seed=5",
]


def _run(run_dir, *overrides):
    run_module_here("erf.run", *NET, *overrides, f"hydra.run.dir={run_dir}")
    return run_dir


@pytest.fixture(scope="module")
def three_draws(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("draws") / "run", "probe.draws=3")


def test_a_draws_job_saves_every_draw_map_with_its_seed(three_draws):
    with np.load(three_draws / "draws.npz") as data:
        assert data["map"].shape == (3, 16, 16)
        assert list(data["seeds"]) == [5, 6, 7]


def test_the_job_map_is_the_mean_of_the_draw_maps(three_draws):
    with np.load(three_draws / "draws.npz") as data:
        maps = data["map"]
    job = load_result(three_draws / "erf.npz")
    np.testing.assert_allclose(job.map, maps.mean(axis=0), rtol=1e-12)
    assert job.n_samples == 6


def test_metrics_list_one_size_per_draw_in_seed_order(three_draws):
    metrics = json.loads((three_draws / "metrics.json").read_text())
    draws = metrics["draws"]
    with np.load(three_draws / "draws.npz") as data:
        maps = data["map"]
    assert draws["seeds"] == [5, 6, 7]
    # the probed unit sits over the map centre (8, 8): Luo's size of each saved map
    expected = [luo_size(m, center=(8, 8)) for m in maps]
    assert draws["erf_size"] == pytest.approx(expected)
    assert draws["luo_size"] == pytest.approx(expected)
    assert draws["erf_trf_ratio"] == pytest.approx([e / 7 for e in expected])  # TRF 7
    assert len(draws["sigma"]["x"]) == len(draws["sigma"]["y"]) == 3
    assert metrics["erf_size"] == pytest.approx(luo_size(maps.mean(axis=0), center=(8, 8)))


def test_draw_zero_is_the_single_network_job_of_the_same_seed(three_draws, tmp_path):
    single = load_result(_run(tmp_path / "one", "probe.draws=1") / "erf.npz")
    with np.load(three_draws / "draws.npz") as data:
        np.testing.assert_allclose(data["map"][0], single.map, rtol=1e-5)
    assert not (tmp_path / "one" / "draws.npz").exists()


def test_zero_draws_is_a_config_error(tmp_path):
    line = run_erf_expecting_error(tmp_path / "run", "probe.draws=0")
    assert line == "error: probe.draws=0 is not allowed: expected an integer >= 1 (at most 100000)"


@pytest.mark.slow
def test_a_stopped_draws_job_resumes_to_the_uninterrupted_maps(tmp_path):
    import signal

    from erf.io.store import load_results

    slow = [
        "model.depth=8",
        "model.channels=4",
        "inputs.size=[32,32]",
        "probe.n_samples=64",
        "probe.batch_size=2",
        "probe.checkpoint_every=1",
        "probe.draws=2",
    ]
    whole = _run(tmp_path / "whole", *slow)
    proc = start_module("erf.run", *NET, *slow, f"hydra.run.dir={tmp_path / 'cut'}")
    checkpoint = tmp_path / "cut" / "checkpoint_draws.npz"
    wait_for(checkpoint.exists, proc, "the draws checkpoint appeared")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=WAIT_LIMIT_S)
    assert proc.returncode == 130 and "resume=true" in stderr
    assert not (tmp_path / "cut" / "metrics.json").exists()
    _run(tmp_path / "cut", *slow, "resume=true")
    for a, b in zip(
        load_results(tmp_path / "cut" / "draws.npz"), load_results(whole / "draws.npz")
    ):
        np.testing.assert_array_equal(a.total, b.total)  # bitwise, on CPU
        assert a.n_samples == b.n_samples == 64
    assert not checkpoint.exists()
