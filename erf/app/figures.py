"""The figure output settings (``plot.format``, ``plot.dpi``) from the config or from
``key=value`` arguments (``python -m erf.report DIR plot.format=[png,pdf] plot.dpi=300``),
as an ``erf.io.figure_style.FigureOutput`` for ``figure_output``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from erf.io.figure_style import DEFAULT_DPI, FigureOutput, parse_formats

PLOT_KEYS = ("plot.format", "plot.dpi", "plot.scale")


def output_of(plot: Mapping[str, Any] | None) -> FigureOutput:
    """The ``FigureOutput`` of a ``plot:`` config section (format: a name or a list; dpi)."""
    plot = plot or {}
    formats = plot.get("format", "png")
    formats = parse_formats(formats if isinstance(formats, str) else [str(f) for f in formats])
    dpi = plot.get("dpi", DEFAULT_DPI)
    if isinstance(dpi, str) and dpi.strip().isdigit():
        dpi = int(dpi)
    return FigureOutput(formats=formats, dpi=dpi)


def parse_overrides(args: Sequence[str]) -> dict[str, str]:
    """``plot.format=pdf``-style arguments -> {"format": "pdf", ...}; an unknown key or an
    argument without ``=`` is a ``ValueError`` naming the allowed keys."""
    out: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.strip().lstrip("+")
        if not sep or key not in PLOT_KEYS:
            raise ValueError(
                f"unknown argument {arg!r}; allowed: {', '.join(PLOT_KEYS)} (key=value)"
            )
        out[key.removeprefix("plot.")] = value.strip()
    return out
