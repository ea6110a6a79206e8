"""Settings schemas: a settings dataclass declares each of its fields once, and everything else
is derived from that declaration.

A field made with ``setting(default, rule, help, ...)`` carries its default, the rule its value
must pass (``erf.checks.Rule``: a test and the allowed values in words), its help text, how it
enters a resume fingerprint, whether it is a config key, the config default when that differs
from the Python one, and how its value is written to and read from a config (``dtype``:
``torch.float32`` <-> ``"float32"``). From that one declaration come

- the checks of the dataclass's constructor (``check_fields``) and of the config values
  (``config_rules``: ``erf.app.validate`` applies them), with the same rule and the same words;
- the config group's YAML (``yaml_text``; a test keeps the shipped file equal to it);
- the resume fingerprint (``fingerprint``) and the config keys that cannot change a result
  (``unfingerprinted``);
- the configuration reference (``reference_rows`` / ``reference_markdown``).

Pure Python (layer 0): no torch, no config library.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from erf.checks import Rule

# How a field enters fingerprints (``fingerprint``, ``unfingerprinted``):
COMPARED = "compared"  # decides every sample's result: a checkpoint made otherwise is refused
RECORDED = "recorded"  # written into a checkpoint's fingerprint but not compared (a rescaling)
JOB = "job"  # part of a job's recorded settings, not of a checkpoint's fingerprint
IGNORED = "ignored"  # cannot change a result (how often to save, where to print)
FINGERPRINT_KINDS = (COMPARED, RECORDED, JOB, IGNORED)

_SAME = object()  # config_default: the Python default


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Setting:
    """What one settings field is (``setting`` builds it; see the module docstring)."""

    rule: Rule
    help: str
    fingerprint: str = COMPARED
    config: bool = True
    config_default: Any = _SAME
    to_config: Callable[[Any], Any] = _identity
    from_config: Callable[[Any], Any] = _identity
    unset: tuple[Any, ...] | Callable[[Any], bool] | None = None
    record: Callable[[Any], Any] | None = None


def setting(
    default: Any = dataclasses.MISSING,
    rule: Rule | None = None,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    fingerprint: str = COMPARED,
    config: bool = True,
    config_default: Any = _SAME,
    to_config: Callable[[Any], Any] = _identity,
    from_config: Callable[[Any], Any] = _identity,
    unset: tuple[Any, ...] | Callable[[Any], bool] | None = None,
    record: Callable[[Any], Any] | None = None,
) -> Any:
    """A dataclass field that declares a setting once.

    ``rule``: the values allowed, tested on the config form of the value (``to_config``);
    ``help``: one line for the YAML comment and the reference; ``fingerprint``: one of
    ``FINGERPRINT_KINDS``; ``config``: False for a field the config sets elsewhere (a job's
    ``seed``, ``device``) or not at all; ``config_default``: the config group's default when it
    differs from the Python one; ``to_config`` / ``from_config``: the value as a config holds it
    and back; ``unset``: the values an engine reads as "not asked for" (``ProbeOptions.refuse``),
    or a test of them (None: every value but the default is asked for); ``record``: the value
    as a fingerprint records it (None: ``to_config``).
    """
    if fingerprint not in FINGERPRINT_KINDS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINT_KINDS}, got {fingerprint!r}")
    if rule is None:
        raise TypeError("setting() needs a rule: the values it allows")
    meta = Setting(
        rule=rule,
        help=help,
        fingerprint=fingerprint,
        config=config,
        config_default=config_default,
        to_config=to_config,
        from_config=from_config,
        unset=unset,
        record=record,
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"setting": meta}
    )


def settings_of(cls_or_obj: Any) -> dict[str, Setting]:
    """Every declared setting of a settings dataclass (class or instance), in field order."""
    return {
        f.name: f.metadata["setting"]
        for f in dataclasses.fields(cls_or_obj)
        if "setting" in f.metadata
    }


def default_of(cls: Any, name: str) -> Any:
    """The Python default of field ``name`` of dataclass ``cls``."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def config_default(cls: Any, name: str) -> Any:
    """The default of setting ``name`` as the config group writes it."""
    meta = settings_of(cls)[name]
    if meta.config_default is not _SAME:
        return meta.config_default
    return meta.to_config(default_of(cls, name))


def shown(value: Any) -> str:
    """A value as a command line writes it (``null``, ``true``, ``[1,2]``, ``abs``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value)


def check_fields(obj: Any) -> None:
    """A one-line ValueError for the first field of ``obj`` whose value its rule refuses:
    ``name=value is not allowed: expected <allowed>``, the words the config check uses."""
    for name, meta in settings_of(obj).items():
        value = getattr(obj, name)
        test, allowed = meta.rule
        try:
            ok = test(meta.to_config(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name}={value!r} is not allowed: expected {allowed}")


def config_keys(cls: Any) -> list[str]:
    """The settings of ``cls`` that are config keys, in field order."""
    return [name for name, meta in settings_of(cls).items() if meta.config]


def config_rules(cls: Any, prefix: str) -> dict[str, Rule]:
    """``{prefix + name: rule}`` for every config key of ``cls`` (``erf.app.validate``)."""
    return {prefix + name: settings_of(cls)[name].rule for name in config_keys(cls)}


def from_config(cls: Any, values: dict[str, Any], **fixed: Any) -> Any:
    """An instance of ``cls`` from a config group's plain ``values`` (a missing key takes the
    config default), with ``fixed`` giving the fields the config sets elsewhere."""
    settings = settings_of(cls)
    kwargs = {}
    for name in config_keys(cls):
        raw = values.get(name, config_default(cls, name))
        kwargs[name] = settings[name].from_config(raw)
    return cls(**kwargs, **fixed)


def fingerprint(obj: Any) -> dict[str, Any]:
    """The settings of ``obj`` a checkpoint records (``COMPARED`` and ``RECORDED`` fields), in
    their config form, in field order."""
    return {
        name: (meta.record or meta.to_config)(getattr(obj, name))
        for name, meta in settings_of(obj).items()
        if meta.fingerprint in (COMPARED, RECORDED)
    }


def compared(cls: Any) -> tuple[str, ...]:
    """The settings a checkpoint must match to be resumed (``COMPARED``)."""
    return tuple(n for n, m in settings_of(cls).items() if m.fingerprint == COMPARED)


def unfingerprinted(cls: Any, prefix: str) -> tuple[str, ...]:
    """The config keys of ``cls`` that cannot change a result (``IGNORED``)."""
    return tuple(
        prefix + n for n, m in settings_of(cls).items() if m.config and m.fingerprint == IGNORED
    )


def is_unset(obj: Any, name: str) -> bool:
    """Whether setting ``name`` of ``obj`` asks for nothing beyond the plain probe: its value
    is among the declared ``unset`` values (or passes that test), or is the default."""
    meta = settings_of(obj)[name]
    value = getattr(obj, name)
    if callable(meta.unset):
        return bool(meta.unset(value))
    return value in (meta.unset if meta.unset is not None else (default_of(type(obj), name),))


@dataclass(frozen=True)
class ReferenceRow:
    """One config key of the reference: its dotted key, default, allowed values and help."""

    key: str
    default: str
    allowed: str
    help: str


def reference_rows(cls: Any, prefix: str) -> Iterator[ReferenceRow]:
    """The configuration reference of ``cls``'s config keys, in field order."""
    for name in config_keys(cls):
        meta = settings_of(cls)[name]
        yield ReferenceRow(prefix + name, shown(config_default(cls, name)), meta.rule[1], meta.help)


def reference_markdown(prefix: str, *classes: Any) -> str:
    """``reference_rows`` of ``classes`` (one config group) as a Markdown table: key,
    default, allowed values, meaning."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for row in (r for cls in classes for r in reference_rows(cls, prefix)):
        cells = (f"`{row.key}`", f"`{row.default}`", row.allowed, row.help)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def yaml_value(value: Any) -> str:
    """A default as YAML writes it (strings that YAML would read as something else quoted)."""
    if isinstance(value, str) and value.lower() in ("off", "on", "yes", "no", "true", "false"):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return shown(value)


def yaml_lines(cls: Any) -> list[str]:
    """One ``key: default  # help`` line per config key of ``cls``, in field order."""
    return [
        f"{name}: {yaml_value(config_default(cls, name))}  # {settings_of(cls)[name].help}"
        for name in config_keys(cls)
    ]


def yaml_text(header: str, *classes: Any) -> str:
    """A config group's YAML: a ``# header`` line and the config keys of ``classes``."""
    lines = [f"# {header}"]
    for cls in classes:
        lines.extend(yaml_lines(cls))
    return "\n".join(lines) + "\n"


__all__ = [
    "COMPARED",
    "FINGERPRINT_KINDS",
    "IGNORED",
    "JOB",
    "RECORDED",
    "ReferenceRow",
    "Setting",
    "check_fields",
    "compared",
    "config_default",
    "config_keys",
    "config_rules",
    "default_of",
    "fingerprint",
    "from_config",
    "is_unset",
    "reference_markdown",
    "reference_rows",
    "setting",
    "settings_of",
    "shown",
    "unfingerprinted",
    "yaml_lines",
    "yaml_text",
]
