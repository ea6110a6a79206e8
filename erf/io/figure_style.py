"""The figure style of every erf figure: output formats and dpi, rcParams, human labels,
captions, colour bars, log-axis ticks and the zoom window of an ERF map.

Figures are built from saved results only; ``erf.io.plots`` draws them with these helpers
and ``save_figure`` writes them in the formats of the current ``FigureOutput`` (set with
``figure_output``; default PNG at 200 dpi). Vector formats keep text as text (SVG
``<text>`` elements, PDF TrueType text), so captions stay searchable and editable.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from erf import reductions  # noqa: E402
from erf.analysis import row  # noqa: E402

# PDF text embeds subsets of TrueType fonts; fontTools logs every table it prunes at INFO.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FORMATS = ("png", "pdf", "svg")
DEFAULT_DPI = 200
MAX_DPI = 1200

# rcParams of every erf figure: small serif-free text, text kept as text in vector output.
RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.framealpha": 0.85,
    "figure.titlesize": 9,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "image.interpolation": "nearest",
}

CAPTION_SIZE = 6.5

# Human labels of internal keys (axis labels, headers, legends).
LABELS = {
    **row.labels(),  # the columns of a job's row (erf.analysis.row)
    # the training study's scores
    "val_accuracy": "validation accuracy",
    "val_mean_iou": "validation mean IoU",
    "train_accuracy": "training accuracy",
    "train_mean_iou": "training mean IoU",
    "val_loss": "validation loss",
    "train_loss": "training loss",
    "epoch": "epoch",
}

REDUCTIONS = {  # figure labels of the registered reductions (erf.reductions), old names too
    **{name: reductions.get(name).label for name in reductions.names()},
    **{old: reductions.get(new).label for old, new in reductions.LEGACY_NAMES.items()},
}


def human(key: str) -> str:
    """The label of an internal key (``input_h`` -> "input (px)"); unknown keys with their
    underscores as spaces."""
    return LABELS.get(key, str(key).replace("_", " "))


def setting(key: str, value: Any) -> str:
    """A key and its value in words, the unit after the value: ("input_h", 224) -> "input
    224 px", ("depth", 5) -> "depth 5 layers", ("init", "random") -> "weights random"."""
    match = re.fullmatch(r"(.*) \((.*)\)", human(key))
    return f"{match.group(1)} {value} {match.group(2)}" if match else f"{human(key)} {value}"


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class FigureOutput:
    """Where ``save_figure`` writes: one file per format (``png``, ``pdf``, ``svg``), the
    raster ones at ``dpi`` dots per inch."""

    formats: tuple[str, ...] = ("png",)
    dpi: int = DEFAULT_DPI

    def __post_init__(self) -> None:
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        bad = [f for f in formats if f not in FORMATS]
        if not formats or bad:
            raise ValueError(
                f"plot.format {list(formats)!r}: choose one or more of {', '.join(FORMATS)}"
            )
        object.__setattr__(self, "formats", tuple(dict.fromkeys(formats)))
        if isinstance(self.dpi, bool) or not isinstance(self.dpi, int):
            raise ValueError(f"plot.dpi {self.dpi!r}: an integer from 10 to {MAX_DPI}")
        if not 10 <= self.dpi <= MAX_DPI:
            raise ValueError(f"plot.dpi {self.dpi}: an integer from 10 to {MAX_DPI}")


def parse_formats(value: str | Sequence[str]) -> tuple[str, ...]:
    """``png``, ``[png,pdf]``, ``png,pdf`` or a list of names -> a tuple of format names."""
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value.strip().strip("[]")) if v]
    return tuple(str(v).strip().strip("'\"").lower() for v in value)


_OUTPUT: contextvars.ContextVar[FigureOutput | None] = contextvars.ContextVar(
    "erf_figure_output", default=None
)


def current_output() -> FigureOutput:
    """The ``FigureOutput`` that ``save_figure`` uses now."""
    return _OUTPUT.get() or FigureOutput()


@contextmanager
def figure_output(output: FigureOutput) -> Iterator[FigureOutput]:
    """Within the block, ``save_figure`` writes ``output``'s formats at its dpi."""
    token = _OUTPUT.set(output)
    try:
        yield output
    finally:
        _OUTPUT.reset(token)


@contextmanager
def style() -> Iterator[None]:
    """The erf rcParams (``RC``) while a figure is built and saved."""
    with plt.rc_context(RC):
        yield


def styled(build: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure under the erf rcParams (``figure_style.style``)."""

    @functools.wraps(build)
    def run(*args: Any, **kwargs: Any) -> Figure:
        with style():
            return build(*args, **kwargs)

    return run


# --------------------------------------------------------------------------- text


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points
    (DejaVu Sans averages about 0.6 em per character; kept as separate paragraphs)."""
    chars = max(12, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(
        textwrap.fill(p, chars, break_long_words=True) if p else "" for p in text.split("\n")
    )


def caption(
    fig: Figure,
    text: str,
    *,
    warning: str | None = None,
    handles: Sequence[Any] = (),
    ncol: int | None = None,
) -> Any:
    """The figure's caption (reduction, samples, model, layer, ...) under the plots, wrapped
    to the figure's width, with ``warning`` on its own line and the legend entries
    ``handles`` (artists with labels) beneath it: one figure legend whose title is the
    caption, placed outside the axes so constrained layout keeps room for it and it covers
    no data. Returns the legend."""
    body = text if not warning else f"{text}\nWARNING: {warning}".strip()
    handles = list(handles)
    ncol = ncol or max(1, min(len(handles), 4))
    column_in = (fig.get_figwidth() - 0.4) / ncol - 0.45  # the marker takes about 0.4 in
    labels = [wrap(h.get_label(), max(column_in, 0.8), 7) for h in handles]
    legend = fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=ncol,
        title=wrap(body, fig.get_figwidth() - 0.25, CAPTION_SIZE) if body else None,
        title_fontsize=CAPTION_SIZE,
        fontsize=7,
        frameon=False,
        alignment="left",
    )
    legend.set_gid("caption")
    return legend


def _one(values: Iterable[Any]) -> list[Any]:
    return sorted({v for v in values if v is not None and v != ""}, key=natural_key)


def caption_text(
    rows: Sequence[Mapping[str, Any]], *, model: str | None = None, layer: str | None = None
) -> str:
    """The caption of a figure of ``rows`` (metrics.json dicts): reduction, samples (and
    weight draws), model, its weights (random unless the row says otherwise: a figure of a
    random network must not read like one of a trained one), the inputs and the layer, each as
    one value or "per panel"."""
    reduces = _one(r.get("reduce") for r in rows)
    samples = _one(r.get("n_samples") for r in rows)
    draws = _one(r.get("n_draws") for r in rows)
    if model is None:
        models = _one(model_name(r) for r in rows)
        model = models[0] if len(models) == 1 else "per panel" if models else "n/a"
    if layer is None:
        layers = _one(r.get("target") or "output" for r in rows)
        layer = layers[0] if len(layers) == 1 else "per panel" if layers else "n/a"
    if len(reduces) == 1:
        reduce = f"{REDUCTIONS.get(reduces[0], reduces[0])} ({reduces[0]})"
    else:
        reduce = ", ".join(reduces) or "n/a"
    n = " / ".join(str(s) for s in samples) or "n/a"
    parts = [f"reduction: {reduce}", f"samples: {n}"]
    if draws and draws != [1]:
        parts.append(f"weight draws: {' / '.join(str(d) for d in draws)}")
    parts += [
        f"model: {model}",
        f"weights: {_per_panel(weights_text(r) for r in rows)}",
        f"inputs: {_per_panel(inputs_text(r) for r in rows)}",
        f"layer: {layer}",
    ]
    return "; ".join(parts)


def _per_panel(values: Iterable[str]) -> str:
    found = _one(values)
    return found[0] if len(found) == 1 else "per panel" if found else "n/a"


def weights_text(row: Mapping[str, Any]) -> str:
    """A row's weights in words: the pretrained weights or checkpoint it loaded, else "random"
    with the init of a Luo stack ("random (uniform init)") or of the model's own code."""
    if row.get("weights"):
        return f"pretrained {row['weights']}"
    if row.get("pretrained"):
        return "pretrained (timm)"
    if row.get("checkpoint"):
        return f"checkpoint {Path(str(row['checkpoint'])).name}"
    if row.get("init"):
        return f"random ({row['init']} init)"
    return "random (the model's own init)"


# How a row's ``inputs`` reads in a caption.
INPUT_WORDS = {
    "gaussian": "N(0, 1) noise",
    "uniform": "U[-1, 1) noise",
    "photos": "photos (scikit-image)",
    "imagefolder": "images from a folder",
    "dataset": "the dataset's validation images",
}


def inputs_text(row: Mapping[str, Any]) -> str:
    """A row's inputs in words (``INPUT_WORDS``; an unknown source by its name)."""
    source = row.get("inputs")
    return INPUT_WORDS.get(str(source), str(source)) if source else "n/a"


def model_name(row: Mapping[str, Any]) -> str:
    """A row's model in words: its label, its timm/torchvision name, or the Luo stack."""
    if row.get("label") or row.get("name"):
        return str(row.get("label") or row.get("name"))
    if row.get("blocks") is not None:
        return "residual stack"
    if row.get("depth") is not None:
        return "conv stack"
    return "model"


def natural_key(value: Any) -> tuple:
    """Sort key that orders digits as numbers: resnet18 < resnet50 < resnet101."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p.lower()) for i, p in enumerate(parts))


# --------------------------------------------------------------------------- axes helpers


def colorbar(
    fig: Figure,
    image: Any,
    ax: Any,
    scale: str,
    quantity: str = "|∂y/∂x|",
    shrink: float = 0.85,
) -> Any:
    """A colour bar for ``image`` naming the quantity and its normalisation."""
    label = f"{quantity} / peak" if scale == "linear" else f"log10({quantity} + 1) / max"
    bar = fig.colorbar(image, ax=ax, shrink=shrink, pad=0.02, fraction=0.05)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    return bar


def _plain(v: float, _pos: Any = None) -> str:
    """A tick value as a plain number (0.05, 20, 5000), powers of ten beyond as 10^k."""
    if v <= 0 or not math.isfinite(v):
        return ""
    if 1e-3 <= v < 1e5:
        return f"{v:g}"
    k = math.log10(v)
    return f"$10^{{{round(k)}}}$" if abs(k - round(k)) < 1e-9 else f"{v:.0e}"


def _log_ticks(low: float, high: float, subs: Sequence[float]) -> list[float]:
    """The values m·10^k (m in ``subs``) within [low, high]."""
    if not (low > 0 and high > low and math.isfinite(low) and math.isfinite(high)):
        return [1.0]
    k0, k1 = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in subs]
    return [t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]


def log_axis(ax: Any, which: str = "y") -> None:
    """A log axis with plain-number ticks: at 10^k when the data span more than two decades
    (more than 1.2 on x, where labels are wide), else at 1, 2, 5 × 10^k, or at every
    1..9 × 10^k, whichever is the coarsest that shows three ticks; no minor labels. Call it
    after the data are drawn (the ticks follow the axis limits then)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    low, high = ax.get_ylim() if which == "y" else ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    options: list[tuple[float, ...]] = [(1.0,), (1.0, 2.0, 5.0), tuple(range(1, 10))]
    start = 0 if decades > (2.0 if which == "y" else 1.2) else 1
    for subs in options[start:]:  # the coarsest that gives at least three ticks
        ticks = _log_ticks(low, high, subs)
        if len(ticks) >= 3:
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    axis.set_minor_formatter(NullFormatter())


def integer_ticks(ax: Any, which: str = "x") -> None:
    """Integer-only ticks (epochs, layer indices)."""
    (ax.xaxis if which == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


Window = tuple[tuple[int, int], tuple[int, int]]  # ((row0, row1), (col0, col1)), inclusive


def mass_extent(erf_map: np.ndarray, fraction: float = 0.99) -> Window | None:
    """The bounding box of the fewest pixels holding ``fraction`` of the map's mass (the
    brightest first); None for a map with no positive finite mass."""
    m = np.nan_to_num(np.asarray(erf_map, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    m = np.clip(m, 0, None)
    total = m.sum()
    if total <= 0:
        return None
    flat = np.sort(m.ravel())[::-1]
    k = int(np.searchsorted(np.cumsum(flat), fraction * total)) + 1
    rows, cols = np.nonzero(m >= flat[min(k, flat.size) - 1])
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def zoom_window(
    shape: tuple[int, int],
    extents: Sequence[Window | None],
    *,
    margin: float = 0.3,
    min_side: int = 9,
    keep_below: float = 0.6,
) -> Window | None:
    """The window to show: the union of ``extents`` (e.g. the ERF's mass-99 % box and the TRF
    box) grown by ``margin`` of its side on each edge, at least ``min_side`` pixels, inside
    the map. None when that window is larger than ``keep_below`` of the map's side (then the
    whole input is shown)."""
    h, w = shape
    boxes = [e for e in extents if e is not None]
    if not boxes:
        return None
    r0 = max(0, min(b[0][0] for b in boxes))
    r1 = min(h - 1, max(b[0][1] for b in boxes))
    c0 = max(0, min(b[1][0] for b in boxes))
    c1 = min(w - 1, max(b[1][1] for b in boxes))
    side = max(r1 - r0 + 1, c1 - c0 + 1)
    grow = max(int(math.ceil(margin * side)), (min_side - side + 1) // 2, 1)
    rc, cc = (r0 + r1) / 2, (c0 + c1) / 2
    half = (side + 2 * grow) / 2
    win_r = (max(0, int(math.floor(rc - half + 0.5))), min(h - 1, int(math.ceil(rc + half - 0.5))))
    win_c = (max(0, int(math.floor(cc - half + 0.5))), min(w - 1, int(math.ceil(cc + half - 0.5))))
    if max(win_r[1] - win_r[0] + 1, win_c[1] - win_c[0] + 1) > keep_below * max(h, w):
        return None
    return win_r, win_c
