"""probe.protocol=luo through python -m erf.run: every draw holds ONE input, the job measures
the ours budget (draws x n_samples) as that many fresh draws, and metrics.json says so."""

import json

import pytest
from helpers.inprocess import run_erf_expecting_error, run_module_here

NET = [
    "model.depth=3",
    "model.channels=2",
    "model.init=random",
    "model.activation=relu",
    "inputs.size=[16,16]",
    "probe.draws=2",
    "probe.n_samples=3",
    "probe.batch_size=3",
]


@pytest.mark.slow  # ~25 s on 2 shared cores
def test_luo_gives_one_input_per_draw_and_the_ours_budget(tmp_path):
    run_module_here("erf.run", *NET, "probe.protocol=luo", f"hydra.run.dir={tmp_path}")
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["protocol"] == "luo" and m["n_draws"] == 6 == 2 * 3
    assert m["draws"]["n_samples"] == [1] * 6
    assert m["draws"]["seeds"] == list(range(6))
    assert m["config"]["probe"]["n_samples"] == 1 and m["config"]["probe"]["runs"] == 6
    assert m["n_samples"] == 6  # the pooled map averages all 6 (draw, input) pairs


def test_luo_on_photos_is_refused_before_any_work(tmp_path):
    line = run_erf_expecting_error(tmp_path / "run", *NET, "probe.protocol=luo", "inputs=photos")
    assert "probe.protocol=luo does not apply to real images or datasets" in line
