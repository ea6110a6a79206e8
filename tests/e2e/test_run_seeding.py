"""A job's metrics.json records the seeding, the dead channels and the clamp warning."""

import json

from helpers.inprocess import run_erf_expecting_error, run_module_here

TINY = [
    "model.depth=2",
    "model.channels=4",
    "model.init=random",
    "model.activation=relu",
    "inputs.size=[24,24]",
    "probe.n_samples=4",
    "probe.batch_size=2",
]


def test_per_channel_normalised_job_records_seeding_and_dead_channels(tmp_path):
    run_module_here(
        "erf.run", *TINY, "probe.seeding=per_channel_normalised", f"hydra.run.dir={tmp_path}"
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["seeding"] == "per_channel_normalised"
    assert isinstance(metrics["n_dead_channels"], int) and 0 <= metrics["n_dead_channels"] <= 4
    assert metrics["config"]["probe"]["seeding"] == "per_channel_normalised"


def test_clamp_after_mean_with_a_negative_centre_is_a_warning_in_metrics(tmp_path):
    # One random 3x3 conv: the mean gradient at the centre pixel is its centre weight, which
    # is negative for seed 0 (-0.36) and positive for seed 2 (+0.35).
    one_conv = ["model.depth=1", "model.channels=1", "model.init=random", "inputs.size=[16,16]"]
    flagged = {}
    for seed in (0, 2):
        run_dir = tmp_path / f"seed{seed}"
        run_module_here(
            "erf.run", *one_conv, f"seed={seed}", "probe.n_samples=2",
            "probe.reduce=clamp_after_mean", f"hydra.run.dir={run_dir}",
        )  # fmt: skip
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["reduce"] == "clamp_after_mean" and metrics["seeding"] == "all_channels"
        flagged[seed] = [w for w in metrics["warnings"] if "clamp_after_mean" in w]
    assert len(flagged[0]) == 1 and "pixel (8, 8) under the probed unit" in flagged[0][0]
    assert not any("under the probed unit" in w for w in flagged[2])


def test_signed_clamp_on_the_command_line_names_both_replacements(tmp_path):
    line = run_erf_expecting_error(tmp_path / "run", "probe.reduce=signed_clamp")
    assert "clamp_after_mean" in line and "clamp_per_image" in line
