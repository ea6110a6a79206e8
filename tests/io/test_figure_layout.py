"""Every figure type (``erf.io``'s and the studies' of ``erf.studies``) at its extreme cases
(long warnings, one panel, twelve panels, long labels, NaN values, a tiny ERF on a big canvas):
no text leaves the canvas, no two texts overlap, the caption names reduction, samples, model
and layer, and PNG, PDF and SVG all render with the caption kept as text. Small maps, dpi 50."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from erf.io import plots  # noqa: E402
from erf.io.figure_style import FigureOutput, caption, caption_text  # noqa: E402
from erf.studies import cross_arch, growth, paths, shape, skip_scale  # noqa: E402
from erf.studies import trained_vs_untrained as trained  # noqa: E402

CASES = ("long_warnings", "one_panel", "many_panels", "long_labels", "nan", "tiny_erf")
MODEL, LAYER, SAMPLES = "ResNet-18", "layer3.1.conv2", 24
LONG = "a very long setting name that goes on and on, wider than any panel"


def _gauss(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - size // 2
    return np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))


def _map(case: str, i: int = 0) -> np.ndarray:
    if case == "tiny_erf":
        return _gauss(161, 1.0)  # a 3-px ERF on a 161-px canvas
    m = _gauss(25, 2.0 + 0.3 * i)
    if case == "nan":
        m[3:6, :] = np.nan
    return m


def _n(case: str) -> int:
    return {"one_panel": 1, "many_panels": 12}.get(case, 3)


def _label(case: str, i: int) -> str:
    return f"{LONG} {i}" if case == "long_labels" else f"resnet{18 * (i + 1)}"


def _warning(case: str) -> str | None:
    if case != "long_warnings":
        return None
    return "TRF clipped; poor fit (R² 0.41 < 0.9); " * 6 + "NaN/Inf skipped in 3 samples"


def _row(case: str, i: int) -> dict:
    size = float("nan") if case == "nan" and i == 0 else 5.0 + i
    return {
        "label": MODEL, "target": LAYER, "reduce": "abs", "n_samples": SAMPLES,
        "depth": 5 * (i + 1), "init": "random", "activation": "relu", "erf_size": size,
        "trf_size": 11.0 + 2 * i, "erf_trf_ratio": size / (11.0 + 2 * i), "input_h": 25,
        "input_w": 25, "erf_size_ci_low": size - 0.5, "erf_size_ci_high": size + 0.5,
    }  # fmt: skip


def _rows(case: str) -> list[dict]:
    return [_row(case, i) for i in range(_n(case))]


def _caption(case: str) -> str:
    return caption_text(_rows(case))


def _fit(m: np.ndarray) -> dict:
    c = m.shape[0] // 2
    return {"center_row": c, "center_col": c, "sigma_x": 2.0, "sigma_y": 2.0, "rotation": 0.0}


def _heatmap(case: str) -> Figure:
    m = _map(case)
    c = m.shape[0] // 2
    return plots.erf_figure(
        m, trf_interval=((c - 5, c + 5), (c - 5, c + 5)), fit=_fit(m), unit=(c, c),
        title=f"{_label(case, 0)}, {LAYER}", warning=_warning(case),
        caption_text=_caption(case),
    )  # fmt: skip


def _grid(case: str) -> Figure:
    panels = []
    for i in range(_n(case)):
        m = _map(case, i)
        c = m.shape[0] // 2
        panels.append({
            "map": m, "trf_interval": ((c - 4, c + 4), (c - 4, c + 4)), "fit": _fit(m),
            "warning": _warning(case), "title": _label(case, i), "note": "ERF 5.0 / TRF 9 px",
        })  # fmt: skip
    return plots.erf_grid_figure(panels, ncols=4, caption_text=_caption(case))


def _grid_matrix(case: str) -> Figure:
    n = _n(case)
    cols = [f"depth {5 * (j + 1)}" for j in range(min(n, 4))]
    rows = [_label(case, i) for i in range(max(1, n // len(cols)))]
    panels = [
        {"map": _map(case, k), "warning": _warning(case)} for k in range(len(rows) * len(cols))
    ]
    return plots.erf_grid_figure(
        panels, row_labels=rows, col_labels=cols, caption_text=_caption(case)
    )


def _trf_vs_erf(case: str) -> Figure:
    rows = []
    for g in range(min(_n(case), 4)):
        for i, depth in enumerate((5, 10, 20, 40)):
            row = _row(case, i)
            row.update(depth=depth, init=_label(case, g), erf_size=3.0 * depth**0.5 + g)
            row.update(trf_size=2.0 * depth + 1, erf_trf_ratio=row["erf_size"] / (2 * depth + 1))
            row.update(erf_size_ci_low=row["erf_size"] - 1, erf_size_ci_high=row["erf_size"] + 1)
            if case == "nan" and i == 1:
                row["erf_size"] = float("nan")
            rows.append(row)
    return plots.trf_vs_erf_figure(rows, caption_text=caption_text(rows))


def _shape(case: str) -> Figure:
    profiles = [
        (_label(case, i), _map(case, i)[_map(case, i).shape[0] // 2], 2.0 + 0.3 * i)
        for i in range(_n(case))
    ]
    return shape.shape_figure(profiles, caption_text=_caption(case))


def _profile(case: str) -> Figure:
    rows = _rows(case)
    for i, r in enumerate(rows):
        r["target"] = f"{LONG}.{i}" if case == "long_labels" else f"layer{i}.0"
        r["trf_size"] = 8.0 * (i + 1)  # the last layers' TRF exceeds the 25-px input
    return plots.profile_figure(rows, caption_text=_caption(case))


def _benchmark(case: str) -> Figure:
    names = ["probe", "per_image", "floor", "fast", "multi", "separate"]
    rows = [
        {"method": _label(case, i) if case == "long_labels" else names[i % 6],
         "images_per_s": float("nan") if case == "nan" and i == 1 else 10.0 * 3**i,
         "best_s": 1.0, "median_s": 1.2}
        for i in range(_n(case))
    ]  # fmt: skip
    return plots.benchmark_figure(rows, f"{MODEL} 224x224 -> {LAYER}", caption_text=_caption(case))


def _path_rf(case: str) -> Figure:
    spans = [(3 + 2 * k, 1 + k * (_n(case) - k)) for k in range(_n(case) + 1)]
    return paths.path_rf_figure(
        spans, erf_size=float("nan") if case == "nan" else 6.0, trf_size=3.0 + 2 * _n(case),
        title=_label(case, 0), caption_text=_caption(case),
    )  # fmt: skip


def _before_after(case: str) -> Figure:
    rows = []
    for i in range(_n(case) if case != "many_panels" else 4):
        m = _map(case, i)
        rows.append({
            "map_init": m, "map_trained": _map(case, i + 1)[: m.shape[0], : m.shape[1]],
            "title": _label(case, i), "warning": _warning(case), "fit_init": _fit(m),
        })  # fmt: skip
    return plots.before_after_figure(rows, suptitle=_label(case, 0), caption_text=_caption(case))


def _history(case: str) -> list[dict]:
    n = {"one_panel": 1, "many_panels": 12}.get(case, 4)
    return [
        {"epoch": e, "erf_size": float("nan") if case == "nan" and e == 1 else 10.0 + 0.5 * e,
         "val_accuracy": 0.5 + 0.03 * e, "train_loss": 2.0 - 0.1 * e, "val_loss": 2.1 - 0.1 * e,
         "train_accuracy": 0.5 + 0.04 * e}
        for e in range(n)
    ]  # fmt: skip


def _epochs(case: str) -> Figure:
    return plots.erf_epochs_figure(
        _history(case), title=_label(case, 0), caption_text=_caption(case)
    )


def _training(case: str) -> Figure:
    return plots.training_curves_figure(
        _history(case), title=_label(case, 0), caption_text=_caption(case)
    )


def _cross_arch(case: str) -> Figure:
    n = _n(case)
    ncols = min(n, 6)
    nrows = max(1, n // ncols)
    panels = [
        [{"map": _map(case, i * ncols + j), "trf_note": "TRF global" if j == 1 else None,
          "caption": "ERF 5.0 px (n=3)"} for j in range(ncols)]
        for i in range(nrows)
    ]  # fmt: skip
    return cross_arch.cross_arch_figure(
        panels, [_label(case, i) for i in range(nrows)], [_label(case, j) for j in range(ncols)],
        caption_text=_caption(case),
    )  # fmt: skip


def _growth(case: str) -> Figure:
    xs = [5, 10, 20, 40]
    groups = []
    for g in range(min(_n(case), 3)):
        mean = [3.0 * x**0.5 + g for x in xs]
        entry = {"init": _label(case, g), "x": "depth", "xs": xs,
                 "trf_size": [2 * x + 1 for x in xs], "n_draws": [4] * 4}  # fmt: skip
        for y, values in (
            ("erf_size", mean),
            ("erf_trf_ratio", [m / (2 * x + 1) for m, x in zip(mean, xs)]),
        ):
            entry.update({y: values, f"{y}_low": [v * 0.9 for v in values],
                          f"{y}_high": [v * 1.1 for v in values], f"{y}_slope": 0.5,
                          f"{y}_slope_low": 0.45, f"{y}_slope_high": 0.55})  # fmt: skip
        groups.append(entry)
    fig = growth.growth_figure(groups)
    caption(fig, _caption(case))
    return fig


def _shape_panels(case: str) -> Figure:
    n = _n(case)
    profiles = [
        (_label(case, i), _map(case, i)[_map(case, i).shape[0] // 2], 2.0) for i in range(n)
    ]
    entries = [{"fit_r2": 0.99, "fit_r2_low": 0.98, "fit_r2_high": 0.995} for _ in range(n)]
    fig = shape.shape_panels_figure(profiles, entries)
    caption(fig, _caption(case))
    return fig


def _fit_r2(case: str) -> Figure:
    entries = [
        {"activation": _label(case, i % 3), "depth": 5 * (1 + i // 3), "fit_r2": 0.99,
         "fit_r2_low": 0.985 if case != "nan" else float("nan"), "fit_r2_high": 0.995}
        for i in range(max(_n(case), 1))
    ]  # fmt: skip
    fig = shape.fit_r2_figure(entries, ["activation", "depth"])
    caption(fig, _caption(case))
    return fig


def _skip_scale(case: str) -> Figure:
    entries = [
        {"batch_norm": bn, "branch_scale": a, "erf_size": 5.0 + a, "erf_size_low": 4.5 + a,
         "erf_size_high": 5.5 + a, "trf_size": 33.0}
        for bn in (False, True) for a in [0.25 * 2**k for k in range(max(_n(case) // 2, 1))]
    ]  # fmt: skip
    fig = skip_scale.skip_scale_figure(entries)
    caption(fig, _caption(case))
    return fig


def _shift_growth(case: str) -> Figure:
    seeds = list(range(max(_n(case), 1)))
    nan = float("nan")

    def entry(v: float) -> dict:
        values = [v + 0.1 * s for s in seeds]
        if case == "nan":
            values[0] = nan
        return {"values": values, "mean": v, "low": v - 1, "high": v + 1, "n": len(seeds)}

    keys = ["shift_row", "shift_col", "shift_norm", "luo_size_own", "moment_sigma_own",
            "mass_radius_50_own", "luo_size_unit", "moment_sigma_unit",
            "mass_radius_50_unit"]  # fmt: skip
    group = {"setting": _label(case, 0), "seeds": seeds}
    group.update({k: {p: entry(1.0) for p in ("before", "after", "change")} for k in keys})
    fig = trained.shift_growth_figure([group])
    caption(fig, _caption(case))
    return fig


FIGURES: dict[str, Callable[[str], Figure]] = {
    "heatmap": _heatmap, "erf_grid": _grid, "erf_grid_matrix": _grid_matrix,
    "trf_vs_erf": _trf_vs_erf, "shape": _shape, "profile": _profile, "benchmark": _benchmark,
    "path_rf": _path_rf, "before_after": _before_after, "erf_epochs": _epochs,
    "training": _training, "cross_arch": _cross_arch, "growth": _growth,
    "shape_panels": _shape_panels, "fit_r2": _fit_r2, "skip_scale": _skip_scale,
    "shift_growth": _shift_growth,
}  # fmt: skip


def _shown_tick_labels(fig: Figure) -> tuple[set[int], set[int]]:
    """(ids of every tick label, ids of those matplotlib draws: ticks inside the view)."""
    every, shown = set(), set()
    for ax in fig.axes + [c for a in fig.axes for c in a.child_axes]:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for ticks, locs in (
                (axis.get_major_ticks(), axis.get_majorticklocs()),
                (axis.get_minor_ticks(), axis.get_minorticklocs()),
            ):
                for k, tick in enumerate(ticks):
                    every.update((id(tick.label1), id(tick.label2)))
                    if k < len(locs) and lo - eps <= locs[k] <= hi + eps:
                        shown.update((id(tick.label1), id(tick.label2)))
    return every, shown


def text_boxes(fig: Figure) -> list[tuple[Text, object]]:
    """(text, window extent) of every visible non-empty text that matplotlib draws."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    every, shown = _shown_tick_labels(fig)
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        if id(t) in every and id(t) not in shown:
            continue  # a tick label outside the view: matplotlib does not draw it
        if t.axes is not None and not t.axes.get_visible():
            continue
        if id(t) in every and t.axes is not None and not t.axes.axison:
            continue  # the tick labels of an axes drawn without axes
        out.append((t, t.get_window_extent(renderer)))
    return out


def _caption_of(fig: Figure) -> str:
    (legend,) = [lg for lg in fig.legends if lg.get_gid() == "caption"]
    return " ".join(legend.get_title().get_text().split())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", sorted(FIGURES))
def test_no_text_leaves_the_canvas_or_overlaps_another(kind, case):
    fig = FIGURES[kind](case)
    try:
        fig.set_dpi(50)
        boxes = text_boxes(fig)
        canvas = fig.bbox
        assert boxes
        for t, b in boxes:
            inside = b.x0 >= canvas.x0 - 1 and b.y0 >= canvas.y0 - 1
            inside = inside and b.x1 <= canvas.x1 + 1 and b.y1 <= canvas.y1 + 1
            assert inside, (
                f"{t.get_text()!r} leaves the {kind} figure ({case}): {b} not in {canvas}"
            )
        for i, (t, a) in enumerate(boxes):
            for u, b in boxes[i + 1 :]:
                w = min(a.x1, b.x1) - max(a.x0, b.x0)
                h = min(a.y1, b.y1) - max(a.y0, b.y0)
                assert w <= 1 or h <= 1, (
                    f"{kind} ({case}): {t.get_text()!r} overlaps {u.get_text()!r}"
                )
    finally:
        plt.close(fig)


def _pdf_text(data: bytes) -> str:
    """The text strings of a PDF's content streams (matplotlib's TrueType text: 2-byte
    codes, kerning between the parts), joined."""
    parts = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            stream = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for block in re.findall(rb"BT(.*?)ET", stream, re.S):
            strings = re.findall(rb"\(((?:\\.|[^\\)])*)\)", block, re.S)
            raw = b"".join(re.sub(rb"\\(.)", rb"\1", s) for s in strings)
            parts.append(raw.decode("utf-16-be", errors="ignore").replace("\x00", ""))
    return " ".join(parts)


@pytest.mark.parametrize("kind", sorted(FIGURES))
def test_every_figure_renders_as_png_pdf_and_svg_with_its_caption_as_text(kind, tmp_path):
    fig = FIGURES[kind]("one_panel")
    text = _caption_of(fig)
    for word in ("reduction: mean |∂y/∂x| (abs)", f"samples: {SAMPLES}", MODEL, LAYER):
        assert word in text, f"the {kind} caption lacks {word!r}: {text!r}"
    written = plots.save_figure(
        fig, tmp_path / f"{kind}.png", FigureOutput(("png", "pdf", "svg"), 50)
    )
    assert [p.name for p in written] == [f"{kind}.png", f"{kind}.pdf", f"{kind}.svg"]
    assert (tmp_path / f"{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / f"{kind}.svg").read_text()
    svg_texts = " ".join(re.findall(r"<text\b[^>]*>(.*?)</text>", svg, re.S))
    assert f"samples: {SAMPLES}" in svg_texts and "reduction:" in svg_texts
    pdf = (tmp_path / f"{kind}.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf  # TrueType text, not paths
    pdf_text = _pdf_text(pdf)
    assert f"samples: {SAMPLES}" in pdf_text and "reduction:" in pdf_text
