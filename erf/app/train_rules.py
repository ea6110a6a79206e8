"""Config rules for training jobs, used by ``erf.app.validate.validate``: the trained networks
(``model=residual_classifier|residual_segmenter``), the ``data/`` group (keyed by
``data.name``) and the ``train/`` group. Every problem is one line (``ConfigError``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erf.app.validate import (
    _DROPOUT,
    CONV_STACK_RULES,
    RESIDUAL_STACK_RULES,
    ConfigError,
    _choice,
    _int_at_least,
    _optional,
    _pair_of,
)
from erf.nets.luo import ACTIVATIONS, INITS
from erf.training.loop import OPTIMIZERS, SCHEDULES

Rule = tuple[Callable[[Any], bool], str]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_NUMBER: Rule = (_is_number, "a number")
_POSITIVE: Rule = (lambda v: _is_number(v) and v > 0, "a number > 0")
_NON_NEGATIVE: Rule = (lambda v: _is_number(v) and v >= 0, "a number >= 0")
_FRACTION: Rule = (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
_GAMMA: Rule = (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]")
_BOOL: Rule = (lambda v: isinstance(v, bool), "true or false")
_PATH: Rule = (lambda v: isinstance(v, str) and v != "", "a folder path")

TRAINED_NET_RULES: dict[str, Rule] = {
    "model.classes": _optional(_int_at_least(2)),
    "model.blocks": _int_at_least(1),
    "model.channels": _int_at_least(1),
    "model.in_channels": _int_at_least(1),
    "model.kernel_size": CONV_STACK_RULES["model.kernel_size"],
    "model.activation": _choice(tuple(ACTIVATIONS)),
    "model.init": _choice(INITS),
    "model.weight_std": _optional(_POSITIVE),
    "model.branch_scale": _POSITIVE,
    "model.dropout": _DROPOUT,
}
MODEL_RULES: dict[str, dict[str, Rule]] = {
    "erf.nets.luo.ResidualClassifier": TRAINED_NET_RULES,
    "erf.nets.luo.ResidualSegmenter": {
        **TRAINED_NET_RULES,
        "model.subsample_at": RESIDUAL_STACK_RULES["model.subsample_at"],
    },
}

_SIZES: dict[str, Rule] = {"data.train_size": _int_at_least(1), "data.val_size": _int_at_least(1)}
_SUBSETS: dict[str, Rule] = {k: _optional(v) for k, v in _SIZES.items()}

DATA_RULES: dict[str, dict[str, Rule]] = {
    "generated_classification": {
        **_SIZES,
        "data.size": _int_at_least(8),
        "data.radii": (
            lambda v: (
                isinstance(v, list) and len(v) >= 2 and all(_is_number(r) and r > 0 for r in v)
            ),
            "a list of at least two radii > 0 (pixels)",
        ),
        "data.blobs": _pair_of(_int_at_least(1)),
        "data.jitter": _FRACTION,
        "data.noise": _NON_NEGATIVE,
        "data.amplitude": _NUMBER,
    },
    "generated_segmentation": {
        **_SIZES,
        "data.size": _int_at_least(8),
        "data.classes": _choice(tuple(range(2, 8))),
        "data.keys": _pair_of(_int_at_least(1)),
        "data.marker": _int_at_least(1),
        "data.min_separation": _int_at_least(1),
        "data.noise": _NON_NEGATIVE,
        "data.amplitude": _NUMBER,
        "data.void_margin": _NON_NEGATIVE,
        "data.ignore_index": _int_at_least(0),
    },
    "cifar10": {
        **_SUBSETS,
        "data.root": _PATH,
        "data.download": _BOOL,
        "data.verify": _BOOL,
        "data.augment": _BOOL,
    },
    "camvid": {
        **_SUBSETS,
        "data.root": _PATH,
        "data.class_names": (
            lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(n, str) for n in v),
            "a list of at least two class names",
        ),
        "data.ignore_index": _int_at_least(0),
        "data.size": _optional(_pair_of(_int_at_least(1))),
        "data.crop": _optional(_pair_of(_int_at_least(1))),
        "data.flip": _BOOL,
        "data.eval_split": _choice(("val", "test")),
    },
}

TRAIN_RULES: dict[str, Rule] = {
    "data.name": _choice(tuple(DATA_RULES)),
    "train.epochs": _int_at_least(1),
    "train.batch_size": _int_at_least(1),
    "train.eval_batch_size": _optional(_int_at_least(1)),
    "train.optimizer": _choice(OPTIMIZERS),
    "train.lr": _POSITIVE,
    "train.momentum": _FRACTION,
    "train.weight_decay": _NON_NEGATIVE,
    "train.schedule": _choice(SCHEDULES),
    "train.milestones": (
        lambda v: isinstance(v, list) and all(_int_at_least(1)[0](m) for m in v),
        "a list of epochs >= 1",
    ),
    "train.gamma": _GAMMA,
    "train.warmup_epochs": _NON_NEGATIVE,
    "train.num_workers": _int_at_least(0),
    "train.threads": _optional(_int_at_least(1)),
    "train.erf_every_epoch": _BOOL,
}


def training_rules(cfg: DictConfig) -> dict[str, Rule]:
    """The rules that apply to ``cfg`` beyond ``erf.app.validate.RULES``: the trained network's,
    and for a training job (``data`` and ``train`` both set) the data and train rules.
    Raises ConfigError when only one of ``data``/``train`` is set, or when
    ``inputs.source=dataset`` is asked for outside a training job."""
    rules = dict(MODEL_RULES.get(OmegaConf.select(cfg, "model._target_"), {}))
    has_data = OmegaConf.select(cfg, "data", default=None) is not None
    has_train = OmegaConf.select(cfg, "train", default=None) is not None
    if has_data != has_train:
        given, missing = ("data", "train=default") if has_data else ("train", "data=<dataset>")
        raise ConfigError(
            f"{given} is set but {missing.split('=')[0]} is not: a training job needs both "
            f"(add {missing}, or use setting=classification or setting=segmentation)"
        )
    if OmegaConf.select(cfg, "inputs.source") == "dataset" and not has_data:
        raise ConfigError(
            "inputs.source=dataset probes on the training data's val images: it needs a "
            "training job (data=... train=default, or setting=...)"
        )
    if has_data:
        rules.update(TRAIN_RULES)
        rules.update(DATA_RULES.get(OmegaConf.select(cfg, "data.name"), {}))
    return rules
