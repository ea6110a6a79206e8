"""Training-job settings fail before any work, in one line naming the key, value and rule."""

import pytest

from erf.app.validate import ConfigError, preflight


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data=cifar10"], "data is set but train is not: a training job needs both"),
        (["train=default"], "train is set but data is not"),
        (["inputs=dataset"], "inputs.source=dataset probes on the training data's val images"),
        (["setting=segmentation", "train.optimizer=lbfgs"], "train.optimizer=lbfgs is not allowed"),
        (["setting=segmentation", "train.schedule=poly"], "train.schedule=poly is not allowed"),
        (
            ["setting=classification", "train.lr=0"],
            "train.lr=0 is not allowed: expected a finite number > 0",
        ),
        (["setting=classification", "train.milestones=[0]"], "train.milestones=[0] is not allowed"),
        (["setting=classification", "train.threads=0"], "train.threads=0 is not allowed"),
        (["setting=classification", "data.radii=[3]"], "data.radii=[3] is not allowed"),
        (["setting=segmentation", "data.keys=[2]"], "data.keys=[2] is not allowed"),
        (["setting=segmentation", "data.classes=9"], "data.classes=9 is not allowed"),
        (["setting=classification", "data=cifar10", "data.download=yes"], "data.download=yes"),
        (["setting=segmentation", "data=camvid", "data.eval_split=train"], "data.eval_split=train"),
        (["setting=segmentation", "model.branch_scale=0"], "model.branch_scale=0 is not allowed"),
        (["setting=segmentation", "model.subsample_at=[-1]"], "model.subsample_at=[-1]"),
        (["setting=regression"], "setting=regression is not a known setting"),
        (["data=mnist", "train=default"], "data=mnist is not a known data"),
    ],
)
def test_bad_training_settings_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as info:
        preflight(overrides)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_good_training_settings_pass():
    preflight(["experiment=trained_vs_untrained"])
    preflight(["setting=classification", "data=cifar10", "data.root=/x", "data.verify=false"])
    preflight(["setting=segmentation", "data=camvid", "data.crop=[64,64]", "inputs=dataset",
               "inputs.size=null"])  # fmt: skip
    preflight(["setting=classification", "model.init=kaiming,rim_heavy", "train.schedule=step",
               "train.milestones=[2,3]"])  # fmt: skip
