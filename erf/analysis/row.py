"""The columns of a job's row: one record per column, from which ``summary.csv``'s column
order, interval partners, table headings (Markdown, LaTeX), figure labels and the paper
tables' key columns are derived.

A ``Column`` says what a key is called on a figure axis (``label``, unit in parentheses) and
in a table heading (``heading``; default the label), whether it has an interval
(``<key>_ci_low`` / ``<key>_ci_high`` follow it), and whether a paper table keeps it
(``key``). The size metrics' columns come from their registry (``erf.analysis.sizes``):
``SUMMARY`` names where each registered metric's columns go, and a metric registered later
lands after the last placed one, with the labels its registration gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from erf.analysis.sizes import interval_columns, size_metrics_registered

CI_LOW, CI_HIGH = "_ci_low", "_ci_high"


@dataclass(frozen=True)
class Column:
    """One column of a job's row: ``key``, figure ``label``, table ``heading`` (default: the
    label, else the key), ``interval`` (followed by its ``_ci_low``/``_ci_high`` partners) and
    ``key_metric`` (kept by the paper tables)."""

    key: str
    label: str = ""
    heading: str = ""
    interval: bool = False
    key_metric: bool = False

    @property
    def table_heading(self) -> str:
        """The heading of a Markdown/LaTeX table: ``heading``, else the key."""
        return self.heading or self.key

    def names(self) -> tuple[str, ...]:
        """The CSV columns this column takes: the key and, with an interval, its partners."""
        if self.interval:
            return (self.key, self.key + CI_LOW, self.key + CI_HIGH)
        return (self.key,)


@dataclass(frozen=True)
class SizeColumns:
    """A place in ``SUMMARY`` for the columns of the registered size metric ``metric``."""

    metric: str


def _c(key: str, label: str = "", **kw: object) -> Column:
    return Column(key, label, **kw)  # type: ignore[arg-type]


# summary.csv, in order. Settings first (the paper tables keep those that vary), then metrics.
SUMMARY: tuple[Column | SizeColumns, ...] = (
    _c("job"),
    _c("label", "model"),
    _c("name", "model"),
    _c("weights"),
    _c("target", "layer"),
    _c("layer_index"),
    _c("inputs", "inputs"),
    _c("input_h", "input (px)"),
    _c("input_w", "input width (px)"),
    _c("depth", "depth (layers)"),
    _c("kernel_size", "kernel size (px)"),
    _c("channels", "channels"),
    _c("init", "weights"),
    _c("activation", "activation"),
    _c("blocks", "residual blocks"),
    _c("skip"),
    _c("dropout", "dropout"),
    _c("dropout_mode"),
    _c("dilation", "dilation"),
    _c("stride", "stride"),
    _c("pool_at"),
    _c("weight_scale"),
    _c("branch_scale"),
    _c("batch_norm"),
    _c("protocol"),
    _c("channel"),
    _c("reduce"),
    _c("n_samples", "samples"),
    _c("n_draws", "weight draws"),
    SizeColumns("luo"),
    SizeColumns("robust"),
    _c("trf_size", "TRF size (px)", heading="TRF size (px)", key_metric=True),
    _c("trf_bound"),
    _c("trf_varies_by_unit"),
    _c("erf_trf_ratio", "ERF size / TRF size", heading="ERF/TRF", interval=True, key_metric=True),
    _c("sigma_x", heading="sigma_x (px)", interval=True, key_metric=True),
    _c("sigma_y", heading="sigma_y (px)", interval=True, key_metric=True),
    _c("rotation"),
    _c("fit_r2", heading="fit R2", interval=True, key_metric=True),
    _c("fit_problem"),
    SizeColumns("moment"),
    SizeColumns("mass"),
    SizeColumns("area"),
    _c("ci_level"),
    _c("ci_n"),
    _c("ci_method"),
    _c("n_nonfinite"),
    _c("n_dead"),
    _c("dead_fraction"),
    _c("n_dead_draws"),
    _c("degenerate"),
    _c("trf_clipped"),
    _c("wall_time_s"),
)
# Columns whose label or heading the size registry does not say (the established wording).
_SIZE_WORDING = {"erf_size": {"heading": "ERF size (px)", "key_metric": True}}


def _size_columns(name: str) -> Iterator[Column]:
    metric = next(m for m in size_metrics_registered() if m.name == name)
    with_interval = set(interval_columns())
    for key, label in metric.columns.items():
        extra = _SIZE_WORDING.get(key, {})
        yield Column(key, label, interval=key in with_interval, **extra)  # type: ignore[arg-type]


def summary_row() -> tuple[Column, ...]:
    """Every column of ``summary.csv`` in order (``SUMMARY`` with the size metrics' columns
    in place; a registered metric that ``SUMMARY`` does not place follows the last placed)."""
    placed = {p.metric for p in SUMMARY if isinstance(p, SizeColumns)}
    unplaced = [m.name for m in size_metrics_registered() if m.name not in placed]
    last = max(i for i, p in enumerate(SUMMARY) if isinstance(p, SizeColumns))
    out: list[Column] = []
    for i, part in enumerate(SUMMARY):
        out.extend(_size_columns(part.metric) if isinstance(part, SizeColumns) else [part])
        if i == last:
            out.extend(c for name in unplaced for c in _size_columns(name))
    return tuple(out)


def summary_columns() -> tuple[str, ...]:
    """The CSV header of ``summary.csv``: every column and its interval partners."""
    return tuple(name for column in summary_row() for name in column.names())


def labels() -> dict[str, str]:
    """Figure labels of the row's keys that have one."""
    return {c.key: c.label for c in summary_row() if c.label}


def headings() -> dict[str, str]:
    """Table headings of the row's keys that have one."""
    return {c.key: c.heading for c in summary_row() if c.heading}


def key_metrics() -> tuple[str, ...]:
    """The metrics a paper table keeps, in row order."""
    return tuple(c.key for c in summary_row() if c.key_metric)


__all__ = [
    "CI_HIGH",
    "CI_LOW",
    "Column",
    "SUMMARY",
    "SizeColumns",
    "headings",
    "key_metrics",
    "labels",
    "summary_columns",
    "summary_row",
]
