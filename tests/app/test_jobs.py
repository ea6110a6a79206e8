"""The job dispatcher picks the job kind explicitly, and every job refuses (in one line
naming the key) the probe settings it cannot honour instead of ignoring them."""

import pytest
import torch
from hydra import compose, initialize_config_dir

import erf
from erf.app.build import build_model, input_shape_for
from erf.app.config import CONFIG_DIR
from erf.app.job_kinds import selected_kind
from erf.app.jobs import JOB_KINDS, run_job
from erf.app.jobs import measure as measure_job
from erf.app.rules import ConfigError

TINY = ["model.depth=2", "model.channels=1", "probe.n_samples=2", "probe.batch_size=2"]
TRAIN = ["setting=classification", "data.train_size=8", "data.val_size=8", "model.blocks=1"]


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    "overrides, kind",
    [
        ([], "measure"),
        (["probe.draws=3"], "measure"),
        (["job=profile", "profile.layers=stages"], "profile"),
        (["experiment=layer_profile"], "profile"),
        (["job=benchmark"], "benchmark"),
        (["experiment=benchmark"], "benchmark"),
        (["experiment=calibration"], "calibration"),
        (["experiment=atlas"], "atlas"),
        (["setting=classification"], "training"),
        (["experiment=paper_figures"], "suite"),
    ],
)
def test_the_job_key_names_the_job_a_config_asks_for(overrides, kind):
    assert selected_kind(_cfg(*overrides)).name == kind
    assert kind in JOB_KINDS


def test_every_job_module_registers_a_kind_and_the_kinds_are_the_documented_seven():
    assert JOB_KINDS == (
        "atlas", "benchmark", "calibration", "measure", "profile", "suite", "training",
    )  # fmt: skip


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([*TINY, "job=train"], "job=train is not allowed: expected one of atlas, benchmark"),
        ([*TINY, "profile.layers=stages"], "profile.layers is set: it belongs to job=profile"),
        (
            ["data=generated_classification", "train=default", "model=residual_classifier"],
            "train is set: it belongs to job=training (this run has job=measure)",
        ),
        ([*TINY, "job=profile"], "job=profile needs profile.layers"),
    ],
)
def test_a_job_is_never_guessed_from_other_keys(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as info:
        run_job(_cfg(*overrides), tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


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
            ["job=benchmark", "probe.channel=0"],
            "probe.channel=0 does not combine with experiment=benchmark (its methods time those)",
        ),
        (
            ["job=benchmark", "probe.position=[1,1]"],
            "probe.position=[1,1] does not combine with experiment=benchmark",
        ),
        (
            ["job=benchmark", "probe.draws=2"],
            "probe.draws=2 does not combine with experiment=benchmark",
        ),
        (
            ["job=benchmark", "probe.batch_size=auto"],
            "the benchmark needs a fixed probe.batch_size (an integer)",
        ),
        (
            ["job=profile", "profile.layers=[1]", "probe.target='0'"],
            "probe.target=0 does not combine with profile.layers (it names the probed layers)",
        ),
        (
            ["job=profile", "profile.layers=[1]", "probe.draws=2"],
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


class _Sqrt(torch.nn.Module):
    def forward(self, x):
        return x.sqrt()


def test_the_metrics_of_a_job_say_how_many_samples_gave_nan_gradients_and_were_skipped():
    """A 3x3 mean then a square root: the gradient at a negative mean is NaN, so the two
    images of -1 are skipped and the two of +1 measured."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1, bias=False), _Sqrt())
    torch.nn.init.constant_(model[0].weight, 1 / 9)
    x = torch.ones(4, 1, 8, 8)
    x[1::2] = -1
    result = erf.measure_erf(model, (1, 8, 8), inputs=[x], n_samples=4, bootstrap_groups=0)
    trf = erf.theoretical_rf(model, input_shape=(1, 8, 8))
    metrics = measure_job.job_metrics(_cfg("fit.bootstrap=0"), result, trf)
    assert (result.n_samples, result.n_nonfinite) == (2, 2)
    assert "2 sample(s) with NaN/Inf gradients were skipped" in metrics["warnings"]
    assert "model_seed" not in metrics  # no model given: nothing about how it was made


def test_the_metrics_of_a_job_whose_map_is_all_zero_warn_that_nothing_is_reported():
    model = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    torch.nn.init.zeros_(model.weight)  # the gradient is 0 everywhere
    result = erf.measure_erf(model, (1, 8, 8), n_samples=2, bootstrap_groups=0)
    trf = erf.theoretical_rf(model, input_shape=(1, 8, 8))
    metrics = measure_job.job_metrics(_cfg("fit.bootstrap=0"), result, trf)
    assert metrics["degenerate"] == "all zero"
    assert "degenerate ERF map: all zero; no size or fit reported" in metrics["warnings"]
