"""``probe.protocol``: how a random-network study spends its budget of (weight draw, input)
pairs.

- ``ours`` (default): ``probe.draws`` weight draws × ``probe.n_samples`` inputs per draw, as
  configured (few draws, many inputs).
- ``luo``: Luo et al. 2016's protocol, R runs each with a fresh weight draw and ONE input:
  ``probe.draws = R``, ``probe.n_samples = 1``, ``probe.batch_size = 1``. R is ``probe.runs``,
  or, when that is null, the configured ``probe.draws × probe.n_samples``: switching a study
  from ``ours`` to ``luo`` keeps its draw × input budget equal by construction.

``apply_protocol`` rewrites a composed config before validation (``erf.app.jobs.run_job``),
so every file (``metrics.json``'s config, the resume settings) records the draws and samples
actually measured. ``luo`` needs networks whose weights are drawn from the seed and inputs
drawn from it too: it is refused for pretrained or loaded weights, real images or datasets,
training jobs, layer profiles and the benchmark.
"""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf, open_dict

from erf.app.groups import ProbeJobSettings
from erf.app.rules import ConfigError
from erf.settings import settings_of

RANDOM_SOURCES = ("gaussian", "uniform")


def protocol_of(cfg: DictConfig) -> str:
    """``probe.protocol`` of ``cfg`` ("ours" when the key is absent)."""
    return str(OmegaConf.select(cfg, "probe.protocol", default="ours") or "ours")


def check_protocol(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for an unknown protocol, a ``probe.runs`` that breaks the
    budget rule, or ``protocol=luo`` where it cannot apply."""
    protocol = protocol_of(cfg)
    runs = OmegaConf.select(cfg, "probe.runs", default=None)
    for key, value in (("protocol", protocol), ("runs", runs)):
        test, allowed = settings_of(ProbeJobSettings)[key].rule
        if not test(value):
            raise ConfigError(f"probe.{key}={value} is not allowed: expected {allowed}")
    draws, n = int(cfg.probe.get("draws", 1)), int(cfg.probe.n_samples)
    if protocol == "ours":
        if runs is not None and runs != draws * n:
            raise ConfigError(
                f"probe.runs={runs} differs from probe.draws x probe.n_samples = {draws * n} "
                "under probe.protocol=ours; set probe.runs=null or probe.protocol=luo"
            )
        return
    why = _luo_refusal(cfg)
    if why:
        raise ConfigError(f"probe.protocol=luo does not apply to {why}; use probe.protocol=ours")


def _luo_refusal(cfg: DictConfig) -> str | None:
    """Why Luo's fresh-weights-per-input protocol cannot apply to ``cfg`` (None: it can)."""
    model = cfg.get("model") or {}
    if cfg.get("train") is not None:
        return "training jobs (one trained network, not fresh draws)"
    if model.get("weights") not in (None, False) or model.get("pretrained"):
        return f"pretrained weights (model.weights={model.get('weights')})"
    if model.get("checkpoint") is not None:
        return f"loaded weights (model.checkpoint={model.get('checkpoint')})"
    source = OmegaConf.select(cfg, "inputs.source", default="gaussian")
    if source not in RANDOM_SOURCES:
        return f"real images or datasets (inputs.source={source})"
    if cfg.get("job") == "profile":
        return "layer profiles (job=profile)"
    if cfg.get("job") == "benchmark":
        return "the benchmark (job=benchmark)"
    return None


def runs_of(cfg: DictConfig) -> int:
    """The (weight draw, input) budget: ``probe.runs``, else ``probe.draws × probe.n_samples``."""
    runs = OmegaConf.select(cfg, "probe.runs", default=None)
    return (
        int(runs) if runs is not None else int(cfg.probe.get("draws", 1)) * int(cfg.probe.n_samples)
    )


def apply_protocol(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``probe.protocol`` applied: unchanged for ``ours``; for ``luo`` a copy with
    ``probe.draws = runs_of(cfg)``, ``probe.n_samples = 1``, ``probe.batch_size = 1`` and
    ``probe.runs`` set to that budget. Checks first (``check_protocol``)."""
    check_protocol(cfg)
    if protocol_of(cfg) != "luo":
        return cfg
    runs = runs_of(cfg)
    out = copy.deepcopy(cfg)
    with open_dict(out):
        out.probe.draws = runs
        out.probe.n_samples = 1
        out.probe.batch_size = 1
        out.probe.runs = runs
    return out
