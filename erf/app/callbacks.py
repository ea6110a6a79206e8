"""The Hydra callback that summarises a sweep when its multirun ends (``hydra.callbacks`` in
``erf/configs/experiment/*.yaml``): it calls the ``erf.io`` sweep summary and the registered
study (``erf.studies``) the config names, and prints.

Hydra only warns when a callback raises, so a failed summary is recorded in ``FAILURES``
(the traceback goes to the log files) and ``erf.app.run.cli`` exits 1 with
``error: sweep summary failed: ...`` after the sweep."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from erf.app.errors import log_traceback, one_line
from erf.app.figures import output_of
from erf.app.suite import hardware
from erf.io.figure_style import figure_output
from erf.io.report_page import write_report_page
from erf.io.sweep import collect, format_slopes, write_summary
from erf.io.tables import format_rows
from erf.studies import get_study, write_study

FAILURES: list[str] = []  # one line per failed summary of this process's sweeps


def sweep_context(sweep_dir: Path, config: DictConfig | None = None) -> dict[str, Any]:
    """What the report page shows that the job folders do not record: the command line, the
    experiment and the swept values, from the multirun's ``config`` (or the ``multirun.yaml``
    Hydra wrote into ``sweep_dir``; nothing when there is none), and this machine.

    A ``multirun.yaml`` read from a folder is data: its interpolations are shown as written,
    never resolved (``${oc.env:...}`` would copy an environment variable into the page). The
    live sweep's own ``config`` resolves what it can."""
    context: dict[str, Any] = {"machine": hardware("cpu")}
    path = Path(sweep_dir) / "multirun.yaml"
    if config is None and not path.is_file():
        return context
    if config is None:
        tree = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        params = _get(tree, "hydra", "sweeper", "params")
    else:
        tree = OmegaConf.to_container(config, resolve=False)
        params = config.get("hydra", {}).get("sweeper", {}).get("params")
        if isinstance(params, DictConfig):
            try:
                params = OmegaConf.to_container(params, resolve=True)
            except Exception:  # an interpolation only the sweep could resolve: as written
                params = _get(tree, "hydra", "sweeper", "params")
    overrides = _get(tree, "hydra", "overrides") or {}
    argv = [*(overrides.get("task") or []), *(overrides.get("hydra") or [])]
    context["command"] = " ".join(["python -m erf.run", *map(str, argv)])
    context["experiment"] = _get(tree, "hydra", "runtime", "choices", "experiment")
    if isinstance(params, dict):
        context["sweeper_params"] = params
    return context


def _get(tree: Any, *keys: str) -> Any:
    """``tree[k0][k1]...`` of plain dicts, None where a key or a dict is missing."""
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def write_report(sweep_dir: Path, config: DictConfig | None = None) -> list[str]:
    """The sweep's ``report.html`` and ``report.md`` (``erf.io.report_page``)."""
    return write_report_page(sweep_dir, sweep_context(sweep_dir, config))


def recorded(on_end: Callable[..., None]) -> Callable[..., None]:
    """Run a summary; on failure, log its traceback and record it in ``FAILURES``."""

    @functools.wraps(on_end)
    def run(self: Callback, config: DictConfig, **kwargs: Any) -> None:
        try:
            with figure_output(output_of(config.get("plot"))):  # plot.format, plot.dpi
                on_end(self, config, **kwargs)
        except Exception as exc:
            log_traceback(exc)
            FAILURES.append(f"sweep summary failed: {one_line(exc)}")

    return run


class SweepSummary(Callback):
    """Summarise a sweep (``erf.io.sweep``) and, with ``study``, write that registered study
    (``erf.studies``), then print its folder. A study that writes its own summary
    (``trained_vs_untrained``) replaces the plain one; an unknown ``study`` is a one-line
    ValueError naming the registered ones."""

    def __init__(
        self,
        x: str = "depth",
        group_by: Sequence[str] = ("init", "activation"),
        scale: str = "linear",
        columns: Sequence[str] | None = None,
        study: str | None = None,
    ) -> None:
        if study is not None:
            get_study(study)
        self.x = x
        self.group_by = tuple(group_by)
        self.scale = scale
        self.columns = list(columns) if columns else None
        self.study = study

    @recorded
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        study = get_study(self.study) if self.study else None
        if study is None or study.sweep_summary:
            slopes = write_summary(sweep_dir, self.x, self.group_by, self.scale)
            if self.columns:
                print(format_rows(collect(sweep_dir), self.columns), flush=True)
            elif slopes and not (study and study.prints_slopes):
                print(format_slopes(slopes, self.group_by), flush=True)
        if study:
            text = write_study(sweep_dir, study.name, self.x, self.group_by, self.scale)
            print(text, flush=True)
        write_report(sweep_dir, config)
        print(f"results: {sweep_dir}", flush=True)
