"""The job dispatcher picks the job kind explicitly, and every job refuses (in one line
naming the key) the probe settings it cannot honour instead of ignoring them."""

import pytest
from hydra import compose, initialize_config_dir

from erf.app.build import build_model, input_shape_for
from erf.app.config import CONFIG_DIR
from erf.app.jobs import JOB_KINDS, job_kind, run_job
from erf.app.jobs import measure as measure_job

TINY = ["model.depth=2", "model.channels=1", "probe.n_samples=2", "probe.batch_size=2"]
TRAIN = ["setting=classification", "data.train_size=8", "data.val_size=8", "model.blocks=1"]


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    "overrides, kind",
    [
        ([], "measure"),
        (["probe.draws=3"], "draws"),
        (["profile.layers=stages"], "profile"),
        (["experiment=layer_profile"], "profile"),
        (["benchmark.run=true"], "benchmark"),
        (["experiment=benchmark"], "benchmark"),
        (["experiment=calibration"], "calibration"),
        (["setting=classification"], "training"),
        (["experiment=paper_figures"], "suite"),
    ],
)
def test_job_kind_names_the_job_a_config_asks_for(overrides, kind):
    assert job_kind(_cfg(*overrides)) == kind
    assert kind in JOB_KINDS


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["probe.draws=2", "probe.fast=true"],
            "probe.fast, probe.channels_last does not combine with probe.draws > 1",
        ),
        (
            ["probe.draws=2", "probe.batch_size=auto"],
            "probe.batch_size=auto does not combine with probe.draws > 1",
        ),
        (
            ["probe.draws=2", "probe.crop=on"],
            "probe.crop=on does not combine with probe.draws > 1",
        ),
        (
            ["probe.draw_weight=equal"],
            "probe.draw_weight=equal does not combine with probe.draws=1 (one network",
        ),
        (
            ["benchmark.run=true", "probe.channel=0"],
            "probe.channel=0 does not combine with experiment=benchmark (its methods time those)",
        ),
        (
            ["benchmark.run=true", "probe.position=[1,1]"],
            "probe.position=[1,1] does not combine with experiment=benchmark",
        ),
        (
            ["benchmark.run=true", "probe.draws=2"],
            "probe.draws=2 does not combine with experiment=benchmark",
        ),
        (
            ["benchmark.run=true", "probe.batch_size=auto"],
            "the benchmark needs a fixed probe.batch_size (an integer)",
        ),
        (
            ["profile.layers=[1]", "probe.target='0'"],
            "probe.target=0 does not combine with profile.layers (it names the probed layers)",
        ),
        (
            ["profile.layers=[1]", "probe.draws=2"],
            "probe.draws > 1 does not combine with profile.layers",
        ),
        (
            [*TRAIN, "probe.checkpoint_every=5"],
            "probe.checkpoint_every=5 does not combine with a training job",
        ),
        (
            [*TRAIN, "probe.draws=2"],
            "probe.draws=2 does not combine with a training job (it trains one network)",
        ),
    ],
)
def test_a_job_refuses_probe_settings_it_cannot_honour(tmp_path, overrides, message):
    with pytest.raises(ValueError) as info:
        run_job(_cfg(*([] if TRAIN[0] in overrides else TINY), *overrides), tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["probe.batch_size=auto"],
            "probe.batch_size=auto does not combine with torchrun (give a number)",
        ),
        (
            ["probe.checkpoint_every=3"],
            "probe.checkpoint_every=3 does not combine with torchrun (it keeps no checkpoints)",
        ),
    ],
)
def test_torchrun_refuses_what_the_sharded_probe_cannot_honour(
    tmp_path, monkeypatch, overrides, message
):
    cfg = _cfg(*TINY, *overrides)
    model = build_model(cfg.model)
    monkeypatch.setattr(measure_job.distributed, "active", lambda: True)
    with pytest.raises(ValueError, match="does not combine") as info:
        measure_job.probe_many(cfg, model, input_shape_for(cfg, model), [None], [tmp_path])
    assert str(info.value) == message
