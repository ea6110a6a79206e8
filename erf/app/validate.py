"""Config validation before any work: unknown keys, wrong types, out-of-range values.

Every problem is one line naming the key, the value and what is allowed. ``preflight`` checks
the command-line overrides of ``erf.run`` before Hydra creates any folder: the override syntax,
group choices, unknown keys (``+``-added ones too, with a "did you mean"), every value of a
sweep, the probe target of our own (cheap to build) networks, and the output folder;
``validate`` checks a composed config (also run at the start of every job): required values
(``???``), finite numbers, types, bounds (``erf.checks``: the same ones the Python API
applies).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from erf.analysis.bootstrap import MAX_REPLICATES as MAX_BOOTSTRAP
from erf.analysis.calibration import CASES as CALIBRATION_CASES
from erf.analysis.calibration import MAX_REPETITIONS
from erf.app.build import INPUT_SOURCES
from erf.app.config import CONFIG_DIR
from erf.app.dims import check_input_axes
from erf.app.groups import group_rules
from erf.app.job_kinds import check_job
from erf.app.launchers import launcher_problem
from erf.app.protocol import check_protocol
from erf.app.rules import BLOCK_INDICES, DROPOUT, ODD_KERNEL, ConfigError, is_number
from erf.app.train_rules import training_rules  # trained networks, data/ and train/ groups
from erf.checks import (
    MAX_CHANNELS,
    MAX_KERNEL,
    MAX_LAYERS,
    MAX_SAMPLES,
    MAX_SIDE,
    MAX_WEIGHTS,
    Rule,
    boolean,
    choice,
    conv_stack_weights,
    int_at_least,
    int_between,
    int_or_list,
    optional,
    positive,
)
from erf.io.figure_style import FORMATS, MAX_DPI
from erf.nets.luo import ACTIVATIONS, DIMS, DROPOUT_MODES, INITS, PADDING_MODES, POOLS
from erf.probe.atlas import BACKWARDS, SHARE_MODES
from erf.probe.bench import METHODS as BENCH_METHODS
from erf.probe.forward import unknown_module
from erf.probe.options import (
    seeding_problem,
)

GROUPS = (
    "model",
    "inputs",
    "probe",
    "scale",
    "variant",
    "arch",
    "data",
    "train",
    "setting",
    "experiment",
)


def _names_or(word: str) -> Rule:
    return (
        lambda v: v == word or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    ), f"{word} or a list of module names"


def _plot_formats(v: Any) -> bool:
    values = [v] if isinstance(v, str) else v if isinstance(v, list) else None
    return bool(values) and all(isinstance(f, str) and f in FORMATS for f in values)


def _atlas_units(v: Any) -> bool:
    """A unit set the atlas knows, or a list of [row, col] pairs of integers >= 0 (checked
    against the target map when the job runs)."""
    if isinstance(v, str):
        return v in ("border", "row", "all") or (
            v.startswith("grid:") and v[5:].isdigit() and int(v[5:]) >= 1
        )
    return (
        isinstance(v, list)
        and bool(v)
        and all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in p)
            for p in v
        )
    )


def _device(v: Any) -> bool:
    return isinstance(v, str) and (v in ("cpu", "cuda", "auto") or v.startswith("cuda:"))


RULES: dict[str, Rule] = {
    "seed": int_at_least(0),
    "device": (_device, "cpu, cuda, cuda:N or auto"),
    "resume": boolean(),
    "label": (lambda v: v is None or isinstance(v, str), "null or a text"),
    "plot.scale": choice(("linear", "log")),
    "plot.format": (_plot_formats, "png, pdf, svg or a list of them, e.g. [png,pdf]"),
    "plot.dpi": int_between(10, MAX_DPI),
    "fit.r2_min": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
        "a number in [0, 1]",
    ),
    "fit.bootstrap": int_between(0, MAX_BOOTSTRAP),
    "fit.ci_level": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1,
        "a number in (0, 1)",
    ),
    "profile.shared_forward": optional(boolean()),
    "benchmark.methods": (
        lambda v: isinstance(v, list) and bool(v) and all(m in BENCH_METHODS for m in v),
        f"a non-empty list of {', '.join(BENCH_METHODS)}",
    ),
    "benchmark.multi_targets": _names_or("stages"),
    "benchmark.warmup": int_at_least(0),
    "benchmark.repeats": int_at_least(1),
    "benchmark.threads": optional(int_at_least(1)),
    "calibration.repetitions": int_between(1, MAX_REPETITIONS),
    "calibration.seed": int_at_least(0),
    "calibration.cases": (
        lambda v: isinstance(v, list) and all(c in CALIBRATION_CASES for c in v),
        f"a list of {', '.join(CALIBRATION_CASES)}",
    ),
    "calibration.network": boolean(),
    "calibration.reference_samples": int_between(1, MAX_SAMPLES),
    "atlas.units": (
        lambda v: v is None or _atlas_units(v),
        "null, border, row, all, grid:N or a list of [row, col]",
    ),
    "atlas.share": choice(SHARE_MODES),
    "atlas.backward": choice(BACKWARDS),
    "inputs.source": choice((*INPUT_SOURCES, "dataset")),
    "inputs.size": optional(
        (
            lambda v: (
                isinstance(v, list)
                and 1 <= len(v) <= 3
                and all(map(int_between(1, MAX_SIDE)[0], v))
            ),
            f"[H, W] ([L] for sequences, [D, H, W] for volumes), each an integer in "
            f"[1, {MAX_SIDE}]",
        )
    ),
    "inputs.channels": optional(int_between(1, MAX_CHANNELS)),
    **group_rules("probe"),  # the probe group, declared once (erf.app.groups)
}

_CHANNELS = int_between(1, MAX_CHANNELS)
_KERNEL: Rule = (
    lambda v: ODD_KERNEL[0](v) and v <= MAX_KERNEL,
    f"an odd integer in [1, {MAX_KERNEL}]",
)

CONV_STACK_RULES: dict[str, Rule] = {
    "model.depth": int_between(1, MAX_LAYERS),
    "model.kernel_size": _KERNEL,
    "model.channels": _CHANNELS,
    "model.in_channels": optional(_CHANNELS),
    "model.activation": choice(tuple(ACTIVATIONS)),
    "model.init": choice(INITS),
    "model.weight_std": optional(positive()),
    "model.weight_scale": optional(positive()),
    "model.dilation": int_or_list(1),
    "model.stride": int_or_list(1),
    "model.pool": choice(tuple(POOLS)),
    "model.pool_size": int_at_least(1),
    "model.dropout": DROPOUT,
    "model.dropout_mode": choice(DROPOUT_MODES),
    "model.padding_mode": choice(PADDING_MODES),
    "model.dims": optional(choice(DIMS)),
}

RESIDUAL_STACK_RULES: dict[str, Rule] = {
    "model.blocks": int_between(1, MAX_LAYERS),
    "model.kernel_size": _KERNEL,
    "model.channels": _CHANNELS,
    "model.in_channels": optional(_CHANNELS),
    "model.weight_std": optional(positive()),
    "model.activation": choice(tuple(ACTIVATIONS)),
    "model.init": choice(INITS),
    "model.skip": boolean(),
    "model.branch_scale": optional(
        (lambda v: is_number(v) and v >= 0, "a finite number >= 0 (0: identity only)")
    ),
    "model.batch_norm": optional(boolean()),
    "model.subsample_at": BLOCK_INDICES,
    "model.dropout": DROPOUT,
    "model.dropout_mode": choice(DROPOUT_MODES),
}

MODEL_RULES = {
    "erf.nets.luo.ConvStack": CONV_STACK_RULES,
    "erf.nets.luo.ResidualStack": RESIDUAL_STACK_RULES,
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for a missing model, a required value left at ``???``, a
    NaN/Inf anywhere, or the first value a rule rejects."""
    if OmegaConf.select(cfg, "model", default=None) is None:
        raise ConfigError(
            f"no model: the model config is required (~model removed it); "
            f"choose one of model={', '.join(_available('model'))}"
        )
    missing = sorted(
        m
        for k in cfg
        if k != "hydra"
        for m in (OmegaConf.missing_keys(cfg[k]) if OmegaConf.is_config(cfg[k]) else [])
    )
    missing += sorted(k for k in cfg if k != "hydra" and OmegaConf.is_missing(cfg, k))
    if missing:
        key = missing[0]
        raise ConfigError(f"{key} is required{_REQUIRED_HINTS.get(key, '')}: set {key}=...")
    plain = {}
    for k in cfg:
        if k != "hydra":  # Hydra's node interpolates job values only known when a job runs
            node = cfg[k]
            plain[k] = (
                OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            )
    for key, value in _leaves(plain):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={_show(value)} is not allowed: expected a finite number")
    probe = plain.get("probe") if isinstance(plain.get("probe"), dict) else {}
    problem = seeding_problem(
        probe.get("reduce"), probe.get("seeding"), probe.get("channel"), prefix="probe."
    )
    if problem:
        raise ConfigError(problem)
    rules = dict(RULES)
    rules.update(MODEL_RULES.get(OmegaConf.select(cfg, "model._target_"), {}))
    rules.update(training_rules(cfg))
    for key, (test, allowed) in rules.items():
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        value = (
            OmegaConf.to_container(node, resolve=True)
            if isinstance(node, (ListConfig, DictConfig))
            else node
        )
        if not test(value):
            raise ConfigError(f"{key}={_show(value)} is not allowed: expected {allowed}")
    check_input_axes(cfg)  # sequences and volumes (erf.app.dims)
    check_protocol(cfg)  # probe.protocol / probe.runs (erf.app.protocol)
    check_job(cfg)  # job: a registered kind, and no key another kind owns (erf.app.job_kinds)


_REQUIRED_HINTS = {
    "model._target_": " (model=custom builds your own nn.Module, e.g. model._target_=my_pkg.MyNet)",
    "inputs.root": " (inputs=imagefolder reads root/<class>/<image>.jpg, e.g. "
    "inputs.root=/data/imagenet/val)",
}


def _leaves(node: Any, prefix: str = ""):
    """(dotted key, value) of every leaf of a plain config container."""
    if isinstance(node, dict):
        for k, v in node.items():
            if prefix or k != "hydra":
                yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), node


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(_show, value)) + "]"
    return "null" if value is None else str(value).replace(" ", "")


def _available(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def parse_overrides(argv: Sequence[str]) -> list:
    """Hydra's parse of ``argv``; a syntax error is one ConfigError line naming the override."""
    parser = OverridesParser.create()
    parsed = []
    for arg in argv:
        try:
            parsed.extend(parser.parse_overrides([arg]))
        except OverrideParseException as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            why = next((ln for ln in lines[1:] if not ln.startswith("See ")), "")
            raise ConfigError(
                f"cannot parse the override {arg!r}: {why or lines[0]} "
                "(values with spaces or special characters need quotes: key='...')"
            ) from None
    return parsed


def quote_non_ascii(args: Sequence[str]) -> list[str]:
    """``key=value`` arguments whose plain value holds non-ASCII letters (``label=日本語``),
    which Hydra's grammar accepts only in quotes, with the value quoted; others unchanged.
    A non-ASCII value is then a text: accepted where a text is (a label), refused in one line
    by the rules where a number is expected (``model.depth=三``)."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        plain = not any(c in value for c in "'\"[]{}(),\\") and not value.startswith(("$", " "))
        if eq and not arg.startswith("-") and value and not value.isascii() and plain:
            arg = f"{key}='{value}'"
        out.append(arg)
    return out


def preflight(argv: Sequence[str], multirun: bool = False) -> None:
    """Check ``erf.run`` command-line overrides against the config; raise ConfigError.

    Every override must parse; group choices must name an existing config; other keys must
    exist, ``+``-added ones too (except constructor arguments of a model whose signature we
    do not know: ``model=custom|timm|torchvision``); every value of a sweep (``a,b,c``) is
    validated with the others at their first value; our own networks are built (they are
    cheap) to check ``probe.target``; the output folder (``hydra.run.dir``, or
    ``hydra.sweep.dir`` for a multirun) must be creatable. Nothing is written.
    """
    argv = quote_non_ascii(argv)
    parsed = parse_overrides(argv)
    options: list[list[str]] = []
    for o in parsed:
        key = o.key_or_group
        if key == "hydra/launcher" and not o.is_delete():
            for v in o.sweep_string_iterator() if o.is_sweep_override() else [o.value()]:
                if problem := launcher_problem(str(v)):
                    raise ConfigError(problem)
        if key.startswith("hydra"):
            continue
        if o.is_delete():  # ~model: composed, so that validate says what it removed
            options.append([o.input_line or f"~{key}"])
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
        if key in GROUPS:
            for v in values:
                if v is not None and str(v) not in _available(key):
                    raise ConfigError(
                        f"{key}={v} is not a known {key}; available: {', '.join(_available(key))}"
                    )
        prefix = "+" if o.is_add() else "++" if o.is_force_add() else ""
        options.append([f"{prefix}{key}={_override_text(o, v)}" for v in values])
    first = [opts[0] for opts in options]
    hydra_args = [a for a in argv if a.startswith("hydra.") or a.startswith("hydra/")]
    # each distinct combination once: without a sweep, every override's "combination" is
    # ``first`` itself (composing is most of a small job's start-up time)
    combinations = dict.fromkeys(
        (*first[:i], choice, *first[i + 1 :]) for i, opts in enumerate(options) for choice in opts
    )
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            composed: dict[tuple[str, ...], DictConfig] = {}

            def config_of(overrides: tuple[str, ...]) -> DictConfig:
                if overrides not in composed:
                    composed[overrides] = _compose(compose, list(overrides))
                return composed[overrides]

            base = config_of(tuple(o for o in first if not o.startswith("+")))
            for o in parsed:
                if (o.is_add() or o.is_force_add()) and not o.key_or_group.startswith("hydra"):
                    _check_added_key(o.key_or_group, base, config_of(tuple(first)))
            for overrides in combinations or [()]:
                cfg = config_of(overrides)
                validate(cfg)
                check_cheap_target(cfg)
            setup = compose("config", overrides=[*first, *hydra_args], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_explain(exc, parsed)) from None
    check_output_folder(setup, multirun)


def _check_added_key(key: str, cfg: DictConfig, full: DictConfig) -> None:
    """A ``+key`` that is not in the config ``cfg`` (composed without the added keys): refused
    with the keys that exist (and a "did you mean") when its parent is a fixed part of the
    config; a model's constructor argument is refused only for our own networks, whose
    signatures are known. A new section (``+sizes.width=3``) is allowed, as it may feed
    interpolations, unless its name is close to an existing section's and nothing in ``full``
    (the config with every override) interpolates it: ``+prob.n_samples=3`` is a typo."""
    parent, _, leaf = key.rpartition(".")
    if OmegaConf.select(cfg, key, default=None, throw_on_missing=False) is not None:
        return
    node = cfg if not parent else OmegaConf.select(cfg, parent, default=None)
    theirs = OmegaConf.select(cfg, "model._target_") not in _OUR_MODELS
    if key.startswith("model.") and theirs and (parent == "model" or node is None):
        return  # a constructor argument of model=custom|timm|torchvision
    if not isinstance(node, DictConfig):
        _check_new_section(key, cfg, full)
        return
    known = [str(k) for k in node if not str(k).startswith("_")]
    if leaf in known:
        return
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    raise ConfigError(
        f"unknown key {key}{hint}; {parent or 'the config'} has: {', '.join(known)} "
        f"(a + adds a key, it does not make an unknown one work)"
    )


def _check_new_section(key: str, cfg: DictConfig, full: DictConfig) -> None:
    """``key`` starts a section the config lacks: refused when that section's name is close to
    a sibling that exists and no interpolation in ``full`` reads it."""
    parts = key.split(".")
    depth = 0
    node: Any = cfg
    while isinstance(node, DictConfig) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    if not isinstance(node, DictConfig) or depth >= len(parts) - 1:
        return  # a key under a value that is not a section: OmegaConf says so when composing
    section = ".".join(parts[: depth + 1])
    siblings = [str(k) for k in node if not str(k).startswith("_")]
    close = difflib.get_close_matches(parts[depth], siblings, n=1, cutoff=0.75)
    if not close or _interpolated(section, full):
        return
    where = ".".join(parts[:depth])
    raise ConfigError(
        f"unknown section {section} (did you mean {where + '.' if where else ''}{close[0]}?); "
        f"a new section is read only through an interpolation such as ${{{section}.{parts[-1]}}}"
    )


def _interpolated(section: str, cfg: DictConfig) -> bool:
    """Whether an interpolation in ``cfg`` (unresolved) names ``section`` or a key in it."""
    pattern = re.compile(r"\$\{[^{}]*?(?<![\w.])" + re.escape(section) + r"(?![\w])")
    plain = OmegaConf.to_container(cfg, resolve=False)
    return any(isinstance(v, str) and pattern.search(v) for _, v in _leaves(plain))


_OUR_MODELS = (
    "erf.nets.luo.ConvStack",
    "erf.nets.luo.ResidualStack",
    "erf.nets.luo.ResidualClassifier",
    "erf.nets.luo.ResidualSegmenter",
)
_CHEAP_WEIGHTS = 20_000_000  # our networks up to this many weights are built by the preflight


def _luo_weights(cfg: DictConfig) -> int:
    """Roughly how many conv weights our conv/residual stacks have (``conv_stack_weights``)."""
    m = cfg.model
    layers = int(m.get("depth", None) or 2 * int(m.get("blocks", 1) or 1))
    channels, k = int(m.get("channels", 1) or 1), int(m.get("kernel_size", 3) or 3)
    return conv_stack_weights(layers, channels, k, int(m.get("in_channels", None) or 1))


def check_cheap_target(cfg: DictConfig) -> None:
    """For our own networks (``model=conv_stack|residual_stack``): refuse a model too large to
    build (more than 2^31 weights, 8 GiB) and a ``probe.target`` it has no module for, with
    the nearest module names; other models are checked when the job builds them."""
    if OmegaConf.select(cfg, "model._target_") not in MODEL_RULES:
        return
    weights = _luo_weights(cfg)
    if weights > MAX_WEIGHTS:
        raise ConfigError(
            f"model.channels={cfg.model.channels} with model.kernel_size="
            f"{cfg.model.kernel_size} makes about {weights:.2e} weights (more than 2^31): "
            "lower model.channels or the depth"
        )
    target = OmegaConf.select(cfg, "probe.target")
    if target in (None, "auto") or weights > _CHEAP_WEIGHTS or cfg.get("train") is not None:
        return
    from erf.app.build import build_model

    try:
        names = [n for n, _ in build_model(cfg.model).named_modules() if n]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model: {' '.join(str(exc).split())}") from None
    if str(target) not in names:
        raise ConfigError(f"probe.target={target}: {unknown_module(str(target), names)}")


def check_output_folder(setup: DictConfig, multirun: bool) -> None:
    """The output folder Hydra will create (``hydra.run.dir``, or ``hydra.sweep.dir`` when
    ``multirun`` or the config's ``hydra.mode`` says so) must be creatable: no file in its
    way, a writable place. Checked with a temporary folder that is removed at once."""
    hydra_cfg = setup.hydra
    mode = OmegaConf.select(hydra_cfg, "mode", default=None)  # a RunMode, or its name
    multi = multirun or getattr(mode, "name", mode) == "MULTIRUN"
    key = "hydra.sweep.dir" if multi else "hydra.run.dir"
    try:
        folder = Path(str(OmegaConf.select(hydra_cfg, key[6:]))).expanduser()
    except (OmegaConfBaseException, ValueError):
        return  # interpolates something only known when the job runs
    path = folder if folder.is_absolute() else Path.cwd() / folder
    too_long = _too_long_name(path)
    if too_long:
        raise ConfigError(f"{key}={folder}: the name {too_long[:40]}... is too long for a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise ConfigError(f"{key}={folder}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}={folder}: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".erf-write-test-", dir=existing))
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"{key}={folder}: cannot create a folder in {existing} ({why})") from None


def _too_long_name(path: Path) -> str | None:
    """A component of ``path`` longer than the file system allows (``Path.exists`` would
    raise on it), or None."""
    try:
        limit = os.pathconf("/", "PC_NAME_MAX")
    except (OSError, ValueError):  # no pathconf (Windows): the usual limit
        limit = 255
    return next((p for p in path.parts if len(os.fsencode(p)) > limit), None)


def _override_text(o, value: Any) -> str:
    if o.is_sweep_override():
        return str(value)
    return o.get_value_element_as_str()


def _compose(compose, overrides: list[str]) -> DictConfig:
    return compose("config", overrides=overrides)


def _explain(exc: Exception, parsed) -> str:
    """One line for a Hydra/OmegaConf composition error, with the keys that do exist."""
    text = " ".join(str(exc).split())
    for o in parsed:
        key = o.key_or_group
        if f"'{key}'" in text or key in text:
            parent, _, leaf = key.rpartition(".")
            known = _known_keys(parent)
            if known and leaf not in known:
                close = difflib.get_close_matches(leaf, known, n=1)
                hint = (
                    f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
                )
                return f"unknown key {key}{hint}; {parent or 'the config'} has: {', '.join(known)}"
    return text


def _known_keys(parent: str) -> list[str]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config")
    node = cfg if not parent else OmegaConf.select(cfg, parent, default=None)
    return list(node.keys()) if isinstance(node, DictConfig) else []
