"""Config validation before any work: unknown keys, wrong types, out-of-range values.

Every problem is one line naming the key, the value and what is allowed. ``preflight`` checks
the command-line overrides of ``erf.run`` (each value of a sweep too) before Hydra starts a
job; ``validate`` checks a composed config (also run at the start of every job).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from erf.app.config import CONFIG_DIR
from erf.app.launchers import launcher_problem
from erf.app.rules import (
    BLOCK_INDICES,
    DROPOUT,
    ODD_KERNEL,
    ConfigError,
    Rule,
    boolean,
    choice,
    int_at_least,
    int_or_list,
    optional,
    pair_of,
)
from erf.app.train_rules import training_rules  # trained networks, data/ and train/ groups
from erf.nets.luo import ACTIVATIONS, DROPOUT_MODES, INITS, POOLS
from erf.probe.bench import METHODS as BENCH_METHODS
from erf.probe.layout import LAYOUTS, prefix_index
from erf.probe.options import CROP_MODES, DTYPES
from erf.result import REDUCTIONS

GROUPS = ("model", "inputs", "probe", "scale", "variant", "data", "train", "setting", "experiment")


def _position(v: Any) -> bool:
    if isinstance(v, str):
        try:
            return v == "center" or prefix_index(v) >= 0
        except ValueError:
            return False
    return pair_of(int_at_least(0))[0](v)


def _output(v: Any) -> bool:
    return v is None or (isinstance(v, (str, int)) and not isinstance(v, bool))


def _batch_size(v: Any) -> bool:
    return v == "auto" or int_at_least(1)[0](v)


def _names_or(word: str) -> Rule:
    return (
        lambda v: v == word or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    ), f"{word} or a list of module names"


def _device(v: Any) -> bool:
    return isinstance(v, str) and (v in ("cpu", "cuda", "auto") or v.startswith("cuda:"))


RULES: dict[str, Rule] = {
    "seed": int_at_least(0),
    "device": (_device, "cpu, cuda, cuda:N or auto"),
    "resume": boolean(),
    "label": (lambda v: v is None or isinstance(v, str), "null or a text"),
    "plot.scale": choice(("linear", "log")),
    "fit.r2_min": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
        "a number in [0, 1]",
    ),
    "probe.n_samples": int_at_least(1),
    "probe.batch_size": (_batch_size, "an integer >= 1 or auto"),
    "probe.fast": boolean(),
    "probe.channels_last": optional(boolean()),
    "probe.compile": boolean(),
    "probe.crop": (lambda v: v in CROP_MODES or isinstance(v, bool), "off, auto or on"),
    "profile.shared_forward": optional(boolean()),
    "benchmark.run": boolean(),
    "benchmark.methods": (
        lambda v: isinstance(v, list) and bool(v) and all(m in BENCH_METHODS for m in v),
        f"a non-empty list of {', '.join(BENCH_METHODS)}",
    ),
    "benchmark.multi_targets": _names_or("stages"),
    "benchmark.warmup": int_at_least(0),
    "benchmark.repeats": int_at_least(1),
    "benchmark.threads": optional(int_at_least(1)),
    "probe.checkpoint_every": int_at_least(1),
    "probe.draws": int_at_least(1),
    "probe.reduce": choice(REDUCTIONS),
    "probe.dtype": choice(tuple(DTYPES)),
    "probe.on_nonfinite": choice(("skip", "raise")),
    "probe.channel": optional(int_at_least(0)),
    "probe.position": (_position, "center, [row, col] with integers >= 0, cls or prefix:K"),
    "probe.layout": choice(LAYOUTS),
    "probe.grid": optional(pair_of(int_at_least(1))),
    "probe.prefix_tokens": optional(int_at_least(0)),
    "probe.output": (_output, "null, a key or an index"),
    "probe.target": (lambda v: v is None or isinstance(v, str), "null, auto or a module name"),
    "inputs.source": choice(("gaussian", "uniform", "imagefolder", "dataset")),
    "inputs.size": optional(pair_of(int_at_least(1))),
    "inputs.channels": optional(int_at_least(1)),
}

CONV_STACK_RULES: dict[str, Rule] = {
    "model.depth": int_at_least(1),
    "model.kernel_size": ODD_KERNEL,
    "model.channels": int_at_least(1),
    "model.in_channels": optional(int_at_least(1)),
    "model.activation": choice(tuple(ACTIVATIONS)),
    "model.init": choice(INITS),
    "model.weight_std": optional(
        (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "> 0")
    ),
    "model.dilation": int_or_list(1),
    "model.stride": int_or_list(1),
    "model.pool": choice(tuple(POOLS)),
    "model.pool_size": int_at_least(1),
    "model.dropout": DROPOUT,
    "model.dropout_mode": choice(DROPOUT_MODES),
}

RESIDUAL_STACK_RULES: dict[str, Rule] = {
    "model.blocks": int_at_least(1),
    "model.kernel_size": CONV_STACK_RULES["model.kernel_size"],
    "model.channels": int_at_least(1),
    "model.in_channels": optional(int_at_least(1)),
    "model.activation": choice(tuple(ACTIVATIONS)),
    "model.init": choice(INITS),
    "model.skip": boolean(),
    "model.subsample_at": BLOCK_INDICES,
    "model.dropout": DROPOUT,
    "model.dropout_mode": choice(DROPOUT_MODES),
}

MODEL_RULES = {
    "erf.nets.luo.ConvStack": CONV_STACK_RULES,
    "erf.nets.luo.ResidualStack": RESIDUAL_STACK_RULES,
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for the first value a rule rejects."""
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


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(_show, value)) + "]"
    return "null" if value is None else str(value).replace(" ", "")


def _available(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def preflight(argv: Sequence[str]) -> None:
    """Check ``erf.run`` command-line overrides against the config; raise ConfigError.

    Group choices must name an existing config; other keys must exist (unless added with
    ``+``); every value of a sweep (``a,b,c``) is validated with the others at their first
    value. Hydra's own keys (``hydra.*``) are left to Hydra.
    """
    parsed = OverridesParser.create().parse_overrides(list(argv))
    options: list[list[str]] = []
    for o in parsed:
        key = o.key_or_group
        if key == "hydra/launcher" and not o.is_delete():
            for v in o.sweep_string_iterator() if o.is_sweep_override() else [o.value()]:
                if problem := launcher_problem(str(v)):
                    raise ConfigError(problem)
        if key.startswith("hydra") or o.is_delete():
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
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            for i, opts in enumerate(options):
                for choice in opts:
                    overrides = [*first[:i], choice, *first[i + 1 :]]
                    validate(_compose(compose, overrides))
            if not options:
                validate(_compose(compose, []))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_explain(exc, parsed)) from None


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
