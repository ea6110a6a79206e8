"""The config groups that mirror a settings object, each key declared once (``erf.settings``).

- ``probe``: ``ProbeOptions``' config keys plus the keys a job reads itself (which unit, how
  many weight draws, which protocol: ``ProbeJobSettings``);
- ``train``: ``TrainSettings``' config keys plus the training job's own (``TrainJobSettings``).

For each group ``GROUPS[name]`` gives its classes; the shipped ``<group>/default.yaml`` is
``group_yaml(name)`` (a test keeps them equal), the rules ``erf.app.validate`` applies are
``group_rules(name)``, and the configuration reference is ``group_reference(name)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from erf import reductions
from erf.analysis.draw_stats import DRAW_WEIGHTS
from erf.checks import (
    MAX_DRAWS,
    Rule,
    boolean,
    choice,
    int_at_least,
    int_between,
    optional,
)
from erf.probe.layout import prefix_index
from erf.probe.options import ProbeOptions
from erf.probe.units import POSITION_NAMES
from erf.settings import IGNORED, config_rules, default_of, reference_markdown, setting, yaml_text
from erf.training.loop import TrainSettings

PROTOCOLS = ("ours", "luo")


def _is_position(v: Any) -> bool:
    if isinstance(v, str):
        try:
            return v in POSITION_NAMES or prefix_index(v) >= 0
        except ValueError:
            return False
    return isinstance(v, list) and 1 <= len(v) <= 3 and all(map(int_at_least(0)[0], v))


@dataclass(frozen=True)
class ProbeJobSettings:
    """The ``probe.*`` keys that are not ``ProbeOptions``: read by the jobs (``erf.app``)."""

    target: str | None = setting(
        None,
        (lambda v: v is None or isinstance(v, str), "null, auto or a module name"),
        "module name (see model.named_modules()), auto (the model's last spatial layer), "
        "null = model output",
    )
    position: str | list[int] = setting(
        "center",
        (
            _is_position,
            f"{', '.join(POSITION_NAMES)}, [row, col] with integers >= 0 ([t] or [d, h, w] "
            "for sequences and volumes), cls or prefix:K",
        ),
        "center = (h//2, w//2) of the target grid; [row, col]; or cls / prefix:K (a ViT's "
        "class/prefix token)",
    )
    draws: int = setting(
        1,
        int_between(1, MAX_DRAWS),
        "random weight draws measured in one pass (seeds seed .. seed+draws-1)",
    )
    draw_weight: str = setting(
        "gain",
        choice(DRAW_WEIGHTS),
        "pooling draws > 1: gain (plain mean: each draw counts by its gradient gain) or equal "
        "(each draw's map scaled to sum 1 first)",
    )
    protocol: str = setting(
        "ours",
        ((lambda v: v in PROTOCOLS), "ours or luo"),
        "ours: draws x n_samples as set; luo: R runs, each a fresh draw with ONE input",
    )
    runs: int | None = setting(
        None,
        optional(int_at_least(1)),
        "luo: R (null = draws x n_samples, the same draw x input budget as ours)",
    )


@dataclass(frozen=True)
class TrainJobSettings:
    """The ``train.*`` keys that are not ``TrainSettings``: read by the training job."""

    threads: int | None = setting(
        None,
        optional(int_at_least(1)),
        "torch CPU threads; null = torch's default (1 is fastest on a busy CPU)",
        fingerprint=IGNORED,
    )
    erf_every_epoch: bool = setting(
        False, boolean(), "also measure the ERF after every epoch (erf_epochs.png)"
    )


@dataclass(frozen=True)
class Group:
    """A config group declared by settings classes: its name, classes and YAML header."""

    name: str
    classes: tuple[type, ...]
    header: str

    @property
    def prefix(self) -> str:
        """The group's dotted key prefix (``probe.``)."""
        return self.name + "."


GROUPS = {
    "probe": Group(
        "probe",
        (ProbeOptions, ProbeJobSettings),
        "erf.measure_erf options (ProbeOptions), then the probed unit, draws and protocol.",
    ),
    "train": Group(
        "train",
        (TrainSettings, TrainJobSettings),
        "erf.training.loop.fit options (TrainSettings), then the training job's own keys.",
    ),
}
GENERATED = (
    "Generated from the settings classes (erf.app.groups.group_yaml): edit those, not this file."
)


def group_rules(name: str) -> dict[str, Rule]:
    """``{<group>.<key>: rule}`` for every key of config group ``name``."""
    group = GROUPS[name]
    return {k: v for cls in group.classes for k, v in config_rules(cls, group.prefix).items()}


def group_yaml(name: str) -> str:
    """The text of the shipped ``<name>/default.yaml``."""
    group = GROUPS[name]
    return yaml_text(f"{group.header}\n# {GENERATED}", *group.classes)


def group_reference(name: str) -> str:
    """The configuration reference of config group ``name`` (a Markdown table)."""
    group = GROUPS[name]
    return reference_markdown(group.prefix, *group.classes)


def configuration_reference() -> str:
    """The text of ``docs/configuration.md``: every declared config group's reference."""
    parts = [
        "# Configuration reference\n",
        "Generated from the settings classes by `erf.app.groups.configuration_reference()` "
        "(a test keeps this page equal to it): edit the classes, not this page. Set any key on "
        "the command line, e.g. `erf run probe.n_samples=256 probe.reduce=relu`.\n",
    ]
    for name, group in GROUPS.items():
        classes = ", ".join(f"`{c.__module__}.{c.__name__}`" for c in group.classes)
        parts.append(f"## `{name}`\n\n{group.header} Declared in {classes}.\n")
        parts.append(group_reference(name))
    parts.append(
        "## Reductions (`probe.reduce`)\n\nHow each image's input gradient g = ∂y/∂x "
        "[C_in, H, W] becomes that image's map, before the mean over images (registered in "
        "`erf.reductions`; a signed one's mean is clamped at 0 after averaging).\n"
    )
    rows = ["| `probe.reduce` | per image | figure label | signed |", "|---|---|---|---|"]
    for r in map(reductions.get, reductions.names()):
        cells = (f"`{r.name}`", r.help, r.label, "yes" if r.signed else "no")
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


PLAIN_PROBE = {
    name: default_of(ProbeJobSettings, name)
    for name in ("target", "position", "draws", "draw_weight")
}

__all__ = [
    "GROUPS",
    "Group",
    "PLAIN_PROBE",
    "PROTOCOLS",
    "ProbeJobSettings",
    "TrainJobSettings",
    "configuration_reference",
    "group_reference",
    "group_rules",
    "group_yaml",
]
