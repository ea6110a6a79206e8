"""Bad settings fail before any work, in one line naming the key, the value and what is allowed."""

import pytest

from erf.app.validate import ConfigError, preflight


@pytest.mark.parametrize(
    "override, message",
    [
        ("probe.n_sampels=3", "unknown key probe.n_sampels (did you mean probe.n_samples?)"),
        ("model.activatoin=relu", "unknown key model.activatoin (did you mean model.activation?)"),
        ("probe.n_samples=0", "probe.n_samples=0 is not allowed: expected an integer >= 1"),
        ("probe.n_samples=abc", "probe.n_samples=abc is not allowed: expected an integer >= 1"),
        ("probe.batch_size=1.5", "probe.batch_size=1.5 is not allowed"),
        ("model.depth=0", "model.depth=0 is not allowed: expected an integer >= 1"),
        ("model.kernel_size=4", "model.kernel_size=4 is not allowed: expected an odd integer"),
        ("model.dilation=0", "model.dilation=0 is not allowed"),
        ("model.activation=swish", "model.activation=swish is not allowed: expected one of none"),
        ("model.init=xavier", "model.init=xavier is not allowed: expected one of uniform"),
        ("probe.reduce=mean", "probe.reduce=mean is not allowed: expected one of abs, relu"),
        ("probe.position=[1]", "probe.position=[1] is not allowed"),
        ("probe.channel=-1", "probe.channel=-1 is not allowed"),
        ("inputs.size=[10]", "inputs.size=[10] is not allowed"),
        ("device=gpu", "device=gpu is not allowed: expected cpu, cuda, cuda:N or auto"),
        (
            "model=resnet",
            "model=resnet is not a known model; available: conv_stack, conv_stack_1d, "
            "conv_stack_3d, custom",
        ),
        (
            "experiment=nope",
            "experiment=nope is not a known experiment; available: activation_saturation, "
            "activation_settings, activation_sweep, atlas, benchmark",
        ),
        (
            "probe.batch_size=big",
            "probe.batch_size=big is not allowed: expected an integer >= 1 or",
        ),
        ("probe.crop=maybe", "probe.crop=maybe is not allowed: expected off, auto or on"),
        ("probe.fast=yes", "probe.fast=yes is not allowed: expected true or false"),
        ("benchmark.methods=[probe,warp]", "benchmark.methods=[probe,warp] is not allowed"),
        ("benchmark.multi_targets=all", "benchmark.multi_targets=all is not allowed: expected"),
        (
            "model.depth=三",
            "model.depth=三 is not allowed: expected an integer >= 1 (at most 10000)",
        ),
        ("probe.n_samples=[1,", "cannot parse the override 'probe.n_samples=[1,'"),
        ("+probe.n_sampels=4", "unknown key probe.n_sampels (did you mean probe.n_samples?)"),
        ("+model.activatoin=relu", "unknown key model.activatoin (did you mean model.activation"),
        ("++plot.scal=log", "unknown key plot.scal (did you mean plot.scale?)"),
        ("model.weight_std=nan", "model.weight_std=nan is not allowed: expected a finite number"),
        ("fit.r2_min=inf", "fit.r2_min=inf is not allowed: expected a finite number"),
        ("probe.n_samples=1000000000000", "probe.n_samples=1000000000000 is not allowed"),
        ("probe.batch_size=10000000", "probe.batch_size=10000000 is not allowed"),
        ("inputs.size=[100000,100000]", "inputs.size=[100000,100000] is not allowed"),
        ("model.channels=60000", "model.channels=60000 with model.kernel_size=3 makes about"),
        ("probe.target=nope", "probe.target=nope: model has no module named 'nope'"),
        ("model=custom", "model._target_ is required"),
        ("inputs=imagefolder", "inputs.root is required"),
        ("~model", "no model: the model config is required (~model removed it)"),
        ("atlas.units=[[0,-1]]", "atlas.units=[[0,-1]] is not allowed: expected null, border"),
        ("atlas.units=[[0]]", "atlas.units=[[0]] is not allowed: expected null, border"),
        ("++probe.n_samples=0", "probe.n_samples=0 is not allowed"),  # ++ on a key: checked
        ("++inputs.channels=0", "inputs.channels=0 is not allowed"),  # ++ on a null key too
    ],
)
def test_bad_override_is_one_line_naming_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        preflight([override])
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_atlas_units_may_list_row_col_pairs():
    preflight(["experiment=atlas", "atlas.units=[[0,1],[2,3]]"])
    with pytest.raises(ConfigError, match=r"atlas.units=\[\[0,1\],\[2\]\] is not allowed"):
        preflight(["experiment=atlas", "atlas.units=[[0,1],[2]]"])


def test_a_plus_on_an_existing_key_says_to_drop_the_plus_whatever_comes_before_it():
    with pytest.raises(ConfigError) as e:
        preflight(["model.depth=2", "+probe.n_samples=3"])
    message = str(e.value)
    assert message.startswith("Could not append to config. An item is already at 'probe.n_sa")
    assert "Either remove + prefix: 'probe.n_samples=3'" in message and "\n" not in message


def test_a_section_added_with_plus_feeds_interpolations_and_their_values_are_checked():
    preflight(["+sizes.width=3", "model.channels=${sizes.width}"])
    with pytest.raises(ConfigError, match=r"^model.channels=0 is not allowed"):
        preflight(["+sizes.width=0", "model.channels=${sizes.width}"])


def test_every_value_of_a_sweep_is_checked():
    with pytest.raises(ConfigError, match="model.depth=0"):
        preflight(["model.depth=5,10,0"])


def test_quote_non_ascii_quotes_plain_values_only():
    from erf.app.validate import quote_non_ascii

    assert quote_non_ascii(["label=日本語", "model.depth=3", "-m", "label='é'"]) == [
        "label='日本語'",
        "model.depth=3",
        "-m",
        "label='é'",
    ]


def test_a_near_miss_target_of_our_own_net_is_suggested():
    with pytest.raises(ConfigError, match=r"did you mean 1\.conv2 or 1\.conv1"):
        preflight(["model=residual_stack", "model.blocks=2", "probe.target=1.conv"])


def test_the_output_folder_must_be_creatable(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        preflight([f"hydra.run.dir={tmp_path / 'f' / 'run'}"])
    with pytest.raises(ConfigError, match="hydra.sweep.dir="):
        preflight([f"hydra.sweep.dir={tmp_path / 'f'}"], multirun=True)
    preflight([f"hydra.run.dir={tmp_path / 'new' / 'run'}"])
    assert not (tmp_path / "new").exists()  # nothing is written


def test_a_broken_link_in_the_output_folder_is_named(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(ConfigError, match=r"link is a broken symbolic link$"):
        preflight([f"hydra.run.dir={tmp_path / 'link' / 'run'}"])
    assert not (tmp_path / "gone").exists()


def test_an_output_folder_known_only_when_the_job_runs_is_checked_then(tmp_path, monkeypatch):
    monkeypatch.delenv("ERF_TEST_RUN_DIR_7", raising=False)
    preflight(["hydra.run.dir=${oc.env:ERF_TEST_RUN_DIR_7}"])  # unset here: not checked now
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("ERF_TEST_RUN_DIR_7", str(tmp_path / "f" / "run"))
    with pytest.raises(ConfigError, match="is a file, not a folder"):  # resolvable: checked
        preflight(["hydra.run.dir=${oc.env:ERF_TEST_RUN_DIR_7}"])


def test_good_overrides_and_experiments_pass():
    preflight(["experiment=depth_sweep", "model.depth=2,4", "probe.n_samples=2"])
    preflight(["model=torchvision", "model.name=resnet18", "probe.target=layer3"])
    preflight(["model=residual_stack", "model.blocks=2", "probe.target=1.conv2"])
    preflight(["model=torchvision", "model.name=resnet18", "+model.extra=1"])
    preflight(["hydra.run.dir=/tmp/x", "probe.position=[3,4]", "label=日本語"])
    preflight(["probe.batch_size=auto", "probe.crop=off", "probe.fast=true", "probe.compile=true"])
    preflight(["experiment=benchmark", "benchmark.methods=[probe,compile]", "device=cuda"])


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--cfg", "job", "probe.n_samples=3"], ["probe.n_samples=3"]),
        (["--info", "defaults", "model.depth=2"], ["model.depth=2"]),
        (["--info", "model.depth=2"], ["model.depth=2"]),
        (["-m", "model.depth=2,3", "-cn", "config"], ["model.depth=2,3"]),
    ],
)
def test_flags_and_their_values_are_not_taken_for_overrides(argv, expected):
    from erf.app.run import command_line_overrides

    assert command_line_overrides(argv) == expected


def test_a_sweep_experiment_checks_its_sweep_folder_without_dash_m(tmp_path):
    # experiment configs set hydra.mode=MULTIRUN: the sweep folder is the one Hydra makes
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"hydra.sweep.dir=.*is a file, not a folder"):
        preflight(["experiment=depth_sweep", "scale=tiny", f"hydra.sweep.dir={blocker}"])


def test_an_output_folder_name_too_long_for_the_file_system_is_one_line(tmp_path):
    folder = tmp_path / ("x" * 300)
    with pytest.raises(ConfigError, match="is too long for a folder") as e:
        preflight(["model.depth=2", f"hydra.run.dir={folder}"])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("override", "section", "meant"),
    [
        ("+prob.n_samples=3", "prob", "probe"),
        ("+scale.depth_swep.size=9", "scale.depth_swep", "scale.depth_sweep"),
    ],
)
def test_a_new_section_named_like_an_existing_one_and_read_by_nothing_is_a_typo(
    override, section, meant
):
    with pytest.raises(ConfigError) as e:
        preflight(["model.depth=2", override])
    assert str(e.value).startswith(f"unknown section {section} (did you mean {meant}?)")
    assert "\n" not in str(e.value)


def test_a_new_section_named_like_an_existing_one_is_kept_when_an_interpolation_reads_it():
    preflight(["model.depth=2", "+prob.n=3", "probe.n_samples=${prob.n}"])
