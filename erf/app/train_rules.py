"""Config rules for training jobs, used by ``erf.app.validate.validate``: the trained networks
(``model=residual_classifier|residual_segmenter``), the ``data/`` group (keyed by
``data.name``) and the ``train/`` group. Every problem is one line (``ConfigError``)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from erf.app.groups import group_rules
from erf.app.rules import BLOCK_INDICES, DROPOUT, ODD_KERNEL, ConfigError, is_number
from erf.checks import Rule, choice, int_at_least, optional, pair_of
from erf.nets.luo import ACTIVATIONS, INITS

_NUMBER: Rule = (is_number, "a finite number")
_POSITIVE: Rule = (lambda v: is_number(v) and v > 0, "a finite number > 0")
_NON_NEGATIVE: Rule = (lambda v: is_number(v) and v >= 0, "a finite number >= 0")
_FRACTION: Rule = (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)")
_GAMMA: Rule = (lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]")
_BOOL: Rule = (lambda v: isinstance(v, bool), "true or false")
_PATH: Rule = (lambda v: isinstance(v, str) and v != "", "a folder path")

TRAINED_NET_RULES: dict[str, Rule] = {
    "model.classes": optional(int_at_least(2)),
    "model.blocks": int_at_least(1),
    "model.channels": int_at_least(1),
    "model.in_channels": int_at_least(1),
    "model.kernel_size": ODD_KERNEL,
    "model.activation": choice(tuple(ACTIVATIONS)),
    "model.init": choice(INITS),
    "model.weight_std": optional(_POSITIVE),
    "model.branch_scale": _POSITIVE,
    "model.dropout": DROPOUT,
}
MODEL_RULES: dict[str, dict[str, Rule]] = {
    "erf.nets.luo.ResidualClassifier": TRAINED_NET_RULES,
    "erf.nets.luo.ResidualSegmenter": {
        **TRAINED_NET_RULES,
        "model.subsample_at": BLOCK_INDICES,
    },
}

_SIZES: dict[str, Rule] = {"data.train_size": int_at_least(1), "data.val_size": int_at_least(1)}
_SUBSETS: dict[str, Rule] = {k: optional(v) for k, v in _SIZES.items()}

DATA_RULES: dict[str, dict[str, Rule]] = {
    "generated_classification": {
        **_SIZES,
        "data.size": int_at_least(8),
        "data.radii": (
            lambda v: (
                isinstance(v, list) and len(v) >= 2 and all(is_number(r) and r > 0 for r in v)
            ),
            "a list of at least two radii > 0 (pixels)",
        ),
        "data.blobs": pair_of(int_at_least(1)),
        "data.jitter": _FRACTION,
        "data.noise": _NON_NEGATIVE,
        "data.amplitude": _NUMBER,
    },
    "generated_segmentation": {
        **_SIZES,
        "data.size": int_at_least(8),
        "data.classes": choice(tuple(range(2, 8))),
        "data.keys": pair_of(int_at_least(1)),
        "data.marker": int_at_least(1),
        "data.min_separation": int_at_least(1),
        "data.noise": _NON_NEGATIVE,
        "data.amplitude": _NUMBER,
        "data.void_margin": _NON_NEGATIVE,
        "data.ignore_index": int_at_least(0),
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
        "data.ignore_index": int_at_least(0),
        "data.size": optional(pair_of(int_at_least(1))),
        "data.crop": optional(pair_of(int_at_least(1))),
        "data.flip": _BOOL,
        "data.eval_split": choice(("val", "test")),
    },
}

TRAIN_RULES: dict[str, Rule] = {
    "data.name": choice(tuple(DATA_RULES)),
    **group_rules("train"),  # declared once (erf.app.groups)
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
