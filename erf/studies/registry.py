"""The study registry: one entry per study, registered by its module with ``@register_study``
(the pattern of timm's ``register_model``), read by the ``SweepSummary`` Hydra callback and
``erf report DIR --study NAME``.

A study is a function ``write(sweep_dir, rows, x, group_by, scale) -> str`` that writes the
study's files from the sweep's job rows and returns the text summary to print, plus what the
callers need to know about it: a one-line ``help``, the ``files`` it writes, whether the plain
sweep summary (``summary.csv``, ``erf_grid.png``, ``slopes.json``; ``erf.io.sweep``) comes
first, whether its text holds its own slope table, and how its rows are collected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erf.io.sweep import collect_or_fail

Rows = list[dict[str, Any]]
Writer = Callable[[Path, Rows, str, Sequence[str], str], str]


@dataclass(frozen=True)
class Study:
    """One registered study.

    ``name``: the ``study=`` / ``--study`` value; ``help``: one line for ``--help``;
    ``files``: the files it writes into the sweep folder (``<job>`` stands for a job folder's
    name); ``write(sweep_dir, rows, x, group_by, scale)``: writes them and returns the text to
    print; ``sweep_summary``: the plain sweep summary is written before it (False for a study
    that writes its own ``summary.csv``); ``prints_slopes``: its text holds its own slope
    table, so the Hydra callback does not print the plain one; ``collect(sweep_dir)``: the
    job rows it reads (FileNotFoundError when there are none)."""

    name: str
    help: str
    files: tuple[str, ...]
    write: Writer
    sweep_summary: bool = True
    prints_slopes: bool = False
    collect: Callable[[Path], Rows] = collect_or_fail


_REGISTRY: dict[str, Study] = {}


def register_study(
    name: str,
    *,
    help: str,
    files: Sequence[str],
    sweep_summary: bool = True,
    prints_slopes: bool = False,
    collect: Callable[[Path], Rows] = collect_or_fail,
) -> Callable[[Writer], Writer]:
    """Register the decorated ``write`` function as study ``name`` (a name taken twice is a
    ValueError); the function is returned unchanged."""

    def register(write: Writer) -> Writer:
        if name in _REGISTRY:
            raise ValueError(f"study {name!r} is already registered")
        _REGISTRY[name] = Study(
            name, help, tuple(files), write, sweep_summary, prints_slopes, collect
        )
        return write

    return register


def study_names() -> tuple[str, ...]:
    """The registered studies, in registration order."""
    return tuple(_REGISTRY)


def get_study(name: str) -> Study:
    """The study ``name``; a one-line ValueError naming the registered ones when there is
    none."""
    found = _REGISTRY.get(name)
    if found is None:
        raise ValueError(f"unknown study {name!r}; allowed: {list(_REGISTRY)}")
    return found


def write_study(
    sweep_dir: str | Path,
    name: str,
    x: str = "depth",
    group_by: Sequence[str] = ("init", "activation"),
    scale: str = "linear",
) -> str:
    """Write study ``name``'s files into ``sweep_dir`` from its job rows (the study's
    ``collect``) and return its text summary."""
    study = get_study(name)
    sweep_dir = Path(sweep_dir)
    return study.write(sweep_dir, study.collect(sweep_dir), x, group_by, scale)
