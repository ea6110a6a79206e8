"""The probe and train config groups are derived from their settings classes: the shipped
YAML, the configuration reference page and the validation rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from erf.app.config import CONFIG_DIR
from erf.app.groups import GROUPS, configuration_reference, group_rules, group_yaml
from erf.app.resume import UNFINGERPRINTED
from erf.app.validate import RULES
from erf.settings import config_keys

REPO = Path(__file__).resolve().parents[2]
REGENERATE = (
    'python -c "from erf.app.groups import group_yaml; '
    "open('erf/configs/{0}/default.yaml', 'w').write(group_yaml('{0}'))\""
)


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_the_shipped_group_yaml_is_the_one_its_settings_classes_generate(name):
    shipped = (Path(CONFIG_DIR) / name / "default.yaml").read_text()
    assert shipped == group_yaml(name), f"regenerate it: {REGENERATE.format(name)}"


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_the_generated_yaml_reads_back_as_the_config_defaults(name):
    values = OmegaConf.to_container(OmegaConf.create(group_yaml(name)))
    expected = [k for cls in GROUPS[name].classes for k in config_keys(cls)]
    assert list(values) == expected
    assert values.get("crop", "off") == "off"  # quoted: YAML would read a bare off as false


def test_the_configuration_page_is_the_generated_reference():
    page = (REPO / "docs" / "configuration.md").read_text()
    assert page == configuration_reference(), (
        "regenerate docs/configuration.md from erf.app.groups.configuration_reference()"
    )


def test_every_probe_key_is_validated_by_its_declared_rule():
    probe = group_rules("probe")
    assert {k: RULES[k] for k in probe} == probe


def test_a_key_that_cannot_change_a_result_comes_from_its_declaration():
    assert "probe.checkpoint_every" in UNFINGERPRINTED and "train.threads" in UNFINGERPRINTED
    assert "probe.n_samples" not in UNFINGERPRINTED
