"""Every experiment config composes at every scale and passes the config rules, every point of
its sweep included; ``erf experiments`` describes each one."""

import copy

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from erf.app.config import CONFIG_DIR, EXPERIMENT_DIR
from erf.app.experiments import MAX_DESCRIPTION, description, experiments, format_listing
from erf.app.validate import validate

EXPERIMENTS = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))
SCALES = sorted(p.stem for p in (CONFIG_DIR / "scale").glob("*.yaml"))


def _sweep(cfg) -> dict[str, list]:
    """The experiment's own sweep (``hydra.sweeper.params``): key -> its values, parsed as
    Hydra parses them (``5`` an int, ``[224,224]`` a list)."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    if not params:
        return {}
    resolved = OmegaConf.to_container(params, resolve=True)
    parser = OverridesParser.create()
    sweep = {}
    for key, value in resolved.items():
        (o,) = parser.parse_overrides([f"{key}={value}"])
        sweep[key] = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
    return sweep


def _is_group(key: str) -> bool:
    return (CONFIG_DIR / key).is_dir()


def test_the_config_folder_has_experiments_and_scales():
    assert {"depth_sweep", "paper_figures", "trained_vs_untrained"} <= set(EXPERIMENTS)
    assert {"cpu", "paper", "tiny"} <= set(SCALES)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates_at_every_scale(experiment, scale):
    chosen = [f"experiment={experiment}", f"scale={scale}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=chosen, return_hydra_config=True)
        assert cfg.scale.name == scale
        validate(cfg)
        # Each point of the sweep, one key at a time: a config group (variant=..., setting=...)
        # is composed again; a plain key (model.depth=...) is set on the composed config.
        for key, values in _sweep(cfg).items():
            for value in values:
                if _is_group(key):
                    point = compose("config", overrides=[*chosen, f"{key}={value}"])
                else:
                    point = copy.deepcopy(cfg)
                    OmegaConf.update(point, key, value, merge=False)
                validate(point)


def test_erf_experiments_lists_every_experiment_with_a_description():
    listed = dict(experiments())
    assert sorted(listed) == EXPERIMENTS
    assert all(text and not text.startswith("@") for text in listed.values()), listed
    lines = format_listing(experiments()).splitlines()
    assert [line.split()[0] for line in lines] == EXPERIMENTS
    assert listed["depth_sweep"].startswith("Luo et al. 2016, §3.1: ERF vs depth")


def test_a_description_is_the_first_sentence_of_the_header_comment(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text(
        "# @package _global_\n"
        "# Luo et al. 2016, Fig. 2: the first sentence, which\n"
        "# runs over two lines. A second sentence.\n"
        "model:\n  depth: 3  # not a header comment\n"
    )
    assert description(config) == (
        "Luo et al. 2016, Fig. 2: the first sentence, which runs over two lines."
    )


def test_a_long_first_sentence_is_cut_at_a_word_with_an_ellipsis(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("# " + " ".join(["word"] * 60) + ".\nkey: 1\n")
    text = description(config)
    assert len(text) <= MAX_DESCRIPTION and text.endswith("word…")


def test_a_config_without_a_header_comment_has_no_description(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("key: 1  # trailing\n# after the YAML\n")
    assert description(config) == ""


ARCHS = sorted(p.stem for p in (CONFIG_DIR / "arch").glob("*.yaml"))
# The Hugging Face archs (model=hf, the hf extra) are opt-in columns of experiment=cross_arch
# (scale.cross_arch.archs); tests/nets/test_hf_models.py checks them.
TIMM_ARCHS = [a for a in ARCHS if not a.startswith("hf_")]


@pytest.mark.parametrize("arch", TIMM_ARCHS)
def test_every_arch_builds_its_timm_model_with_its_target_before_any_layernorm(arch):
    """Each configs/arch file composes (alone and in experiment=cross_arch), names a timm model
    that builds with its kwargs (on the meta device: no weights, no memory), a label, and a
    target that is a module of that model and not a LayerNorm (whose outputs sum to a
    constant over channels, so an all-channel unit gradient gives a ~0 map)."""
    timm = pytest.importorskip("timm")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        alone = compose("config", overrides=[f"arch={arch}", "inputs.size=[224,224]"])
        cfg = compose("config", overrides=["experiment=cross_arch", f"arch={arch}"])
    for c in (alone, cfg):
        validate(c)
        assert c.model._target_ == "erf.nets.zoo.timm_model" and c.label
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    kwargs = {
        k: v for k, v in spec.items() if k not in ("_target_", "name", "pretrained", "checkpoint")
    }
    assert spec["pretrained"] is False
    model = timm.create_model(spec["name"], pretrained=False, device="meta", **kwargs)
    modules = dict(model.named_modules())
    assert cfg.probe.target in modules, f"{arch}: no module {cfg.probe.target}"
    assert "LayerNorm" not in type(modules[cfg.probe.target]).__name__


def test_the_cross_arch_sweep_covers_every_timm_arch_and_three_seeds_at_224_on_the_cpu():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=cross_arch"], return_hydra_config=True)
        gpu = compose(
            "config", overrides=["experiment=cross_arch", "scale=paper"], return_hydra_config=True
        )
    sweep = _sweep(cfg)
    assert sorted(sweep["arch"]) == TIMM_ARCHS
    assert len(sweep["seed"]) >= 3 and sweep["scale.cross_arch.size"] == [224]
    assert cfg.plot.scale == "log" and list(cfg.inputs.size) == [224, 224]
    assert _sweep(gpu)["scale.cross_arch.size"] == [224, 1024]
    assert gpu.probe.n_samples > cfg.probe.n_samples


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_the_trained_vs_untrained_sweep_repeats_both_settings_over_three_seeds(scale):
    overrides = ["experiment=trained_vs_untrained", f"scale={scale}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    sweep = _sweep(cfg)
    assert sorted(sweep["setting"]) == ["classification", "segmentation"]
    assert len(set(sweep["seed"])) >= 3
