"""The job kinds of ``python -m erf.run``: a registry keyed by the config's ``job`` key.

``job: measure`` (the default) measures one ERF (or ``probe.draws`` weight draws of it);
``profile``, ``training``, ``benchmark``, ``calibration``, ``atlas`` and ``suite`` are set by their
experiment or setting configs. The kind is what ``job`` says, never guessed from other keys.

Each job module registers its kind with ``@job_kind(name, help=..., owns=...)`` on a function
``run(cfg, out_dir, should_stop) -> metrics``. ``owns`` names the config keys only that kind
reads (``profile.layers``, ``train``, ``suite``): a run that sets one under another ``job`` is
refused in one line naming the ``job=`` it needs, instead of being guessed from the keys.
``locked=False`` runs outside the job-folder lock (a suite locks each experiment itself).

Adding a kind is one module in ``erf/app/jobs/`` that registers it (``erf.app.jobs`` imports
every module of that package, so the registry is complete wherever jobs can run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erf.app.rules import ConfigError

StopFn = Callable[[], bool] | None
Run = Callable[[DictConfig, Path, StopFn], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    """One registered job kind: its ``name`` (the ``job`` value), one-line ``help``, the
    config keys it ``owns``, whether it runs ``locked`` in its job folder, and ``run``."""

    name: str
    help: str
    owns: tuple[str, ...]
    locked: bool
    run: Run


_KINDS: dict[str, JobKind] = {}


def job_kind(
    name: str, *, help: str, owns: tuple[str, ...] = (), locked: bool = True
) -> Callable[[Run], Run]:
    """Register the decorated ``run(cfg, out_dir, should_stop)`` as job kind ``name``."""

    def register(run: Run) -> Run:
        if name in _KINDS:
            raise ValueError(f"job kind {name!r} is already registered")
        _KINDS[name] = JobKind(name, help, tuple(owns), locked, run)
        return run

    return register


def kind_names() -> tuple[str, ...]:
    """The registered job kinds, by name."""
    return tuple(sorted(_KINDS))


def kinds() -> tuple[JobKind, ...]:
    """Every registered job kind."""
    return tuple(_KINDS.values())


def _is_set(cfg: DictConfig, key: str) -> bool:
    value = OmegaConf.select(cfg, key, default=None)
    return value is not None and value is not False and value != [] and value != ""


def check_job(cfg: DictConfig) -> None:
    """``selected_kind``'s checks, for ``erf.app.validate``; nothing while no kind is
    registered (``erf.app.jobs`` not imported: only the config checks' own tests), since
    ``run_job`` checks again when it picks the kind."""
    if _KINDS:
        selected_kind(cfg)


def selected_kind(cfg: DictConfig) -> JobKind:
    """The kind ``cfg.job`` names; a one-line ConfigError for an unknown one, or for a key
    another kind owns (``profile.layers`` under ``job=measure``: "needs job=profile")."""
    name = cfg.get("job", "measure")
    if name not in _KINDS:
        raise ConfigError(f"job={name} is not allowed: expected one of {', '.join(kind_names())}")
    for other in _KINDS.values():
        if other.name == name:
            continue
        for key in other.owns:
            if _is_set(cfg, key):
                raise ConfigError(
                    f"{key} is set: it belongs to job={other.name} (this run has job={name}); "
                    f"add job={other.name} or remove {key}"
                )
    return _KINDS[name]


__all__ = ["JobKind", "check_job", "job_kind", "kind_names", "kinds", "selected_kind"]
