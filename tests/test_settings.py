"""A setting is declared once (``erf.settings.setting``) and its check, config rule, YAML line,
fingerprint entry and reference row all follow from that declaration."""

from __future__ import annotations

import dataclasses

import pytest

from erf.checks import choice, int_between
from erf.probe.options import ProbeOptions
from erf.settings import (
    COMPARED,
    IGNORED,
    RECORDED,
    compared,
    config_default,
    config_rules,
    fingerprint,
    from_config,
    is_unset,
    reference_markdown,
    setting,
    settings_of,
    unfingerprinted,
    yaml_text,
)


def _with_new_field(**declaration):
    """ProbeOptions plus one field ``window`` declared with ``declaration`` (as a contributor
    would add it), built the way ``dataclass`` builds the real class."""
    field = setting(3, int_between(1, 9), "the new knob's help", **declaration)
    return dataclasses.make_dataclass(
        "ProbeOptionsPlus", [("window", int, field)], bases=(ProbeOptions,), frozen=True
    )


def test_a_new_field_reaches_the_config_rules_yaml_fingerprint_and_reference():
    plus = _with_new_field()
    test, allowed = config_rules(plus, "probe.")["probe.window"]
    assert test(5) and not test(10) and allowed == "an integer >= 1 (at most 9)"
    assert "window: 3  # the new knob's help" in yaml_text("header", plus).splitlines()
    assert fingerprint(plus(window=4))["window"] == 4
    assert "window" in compared(plus)
    assert "| `probe.window` | `3` | an integer >= 1 (at most 9) | the new knob's help |" in (
        reference_markdown("probe.", plus)
    )


def test_a_new_fields_rule_is_the_constructors_check_in_the_same_words():
    plus = _with_new_field()
    with pytest.raises(ValueError) as err:
        plus(window=10)
    assert str(err.value) == "window=10 is not allowed: expected an integer >= 1 (at most 9)"


def test_a_field_declared_ignored_leaves_the_fingerprint_and_is_listed_as_unfingerprinted():
    plus = _with_new_field(fingerprint=IGNORED)
    assert "window" not in fingerprint(plus())
    assert unfingerprinted(plus, "probe.")[-1] == "probe.window"


def test_a_recorded_field_is_in_the_fingerprint_but_not_compared():
    plus = _with_new_field(fingerprint=RECORDED)
    assert "window" in fingerprint(plus()) and "window" not in compared(plus)


def test_a_config_default_that_differs_from_the_python_one_is_what_yaml_and_from_config_use():
    plus = _with_new_field(config_default=7)
    assert plus().window == 3
    assert config_default(plus, "window") == 7
    assert "window: 7  # the new knob's help" in yaml_text("h", plus)
    assert from_config(plus, {}).window == 7
    assert from_config(plus, {"window": 2}).window == 2


def test_a_field_that_is_not_a_config_key_has_no_rule_yaml_line_or_reference_row():
    plus = _with_new_field(config=False)
    assert "probe.window" not in config_rules(plus, "probe.")
    assert "window:" not in yaml_text("h", plus)
    assert "probe.window" not in reference_markdown("probe.", plus)
    assert fingerprint(plus())["window"] == 3  # still compared: it is a probe setting


def test_unset_values_decide_whether_an_engine_must_refuse_a_setting():
    plus = _with_new_field(unset=(3, 4))
    assert is_unset(plus(window=4), "window") and not is_unset(plus(window=5), "window")
    assert is_unset(ProbeOptions(batch_size=8), "batch_size")
    assert not is_unset(ProbeOptions(batch_size="auto"), "batch_size")


def test_setting_refuses_an_unknown_fingerprint_kind_and_a_missing_rule():
    with pytest.raises(ValueError, match="fingerprint must be one of"):
        setting(1, choice(("a",)), "h", fingerprint="sometimes")
    with pytest.raises(TypeError, match="needs a rule"):
        setting(1, None, "h")


def test_every_probe_option_is_declared_with_help():
    declared = settings_of(ProbeOptions)
    assert set(declared) == {f.name for f in dataclasses.fields(ProbeOptions)}
    assert all(meta.help for meta in declared.values())
    assert declared["n_samples"].fingerprint == COMPARED
