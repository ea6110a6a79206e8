"""The figure style's helpers: output formats, natural sort, captions, the zoom window, log
ticks, and save_figure writing one file per format atomically."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from erf.io.figure_style import (  # noqa: E402
    FigureOutput,
    caption_text,
    current_output,
    figure_output,
    log_axis,
    mass_extent,
    natural_key,
    parse_formats,
    setting,
    zoom_window,
)
from erf.io.plots import save_figure  # noqa: E402


def test_formats_and_dpi_are_checked_and_name_the_option():
    assert FigureOutput().formats == ("png",) and FigureOutput().dpi == 200
    assert FigureOutput(("pdf", "png", "pdf"), 300).formats == ("pdf", "png")
    with pytest.raises(ValueError, match="plot.format"):
        FigureOutput(("gif",))
    with pytest.raises(ValueError, match="plot.dpi"):
        FigureOutput(dpi=5)
    with pytest.raises(ValueError, match="plot.dpi"):
        FigureOutput(dpi=True)
    assert parse_formats("[png,pdf]") == ("png", "pdf")
    assert parse_formats("svg") == ("svg",) and parse_formats(["PNG", "svg"]) == ("png", "svg")


def test_names_sort_by_their_numbers():
    names = ["resnet101", "resnet18", "vgg16", "resnet50", "resnet34"]
    assert sorted(names, key=natural_key) == [
        "resnet18", "resnet34", "resnet50", "resnet101", "vgg16",
    ]  # fmt: skip
    assert sorted(["10_a", "2_a", "1_a"], key=natural_key) == ["1_a", "2_a", "10_a"]


def test_settings_and_captions_are_in_words():
    assert setting("input_h", 224) == "input 224 px"
    assert setting("init", "random") == "weights random"
    row = {"reduce": "abs", "n_samples": 32, "label": "ResNet-50", "target": "layer3"}
    assert caption_text([row]) == (
        "reduction: mean |∂y/∂x| (abs); samples: 32; model: ResNet-50; weights: random (the "
        "model's own init); inputs: n/a; layer: layer3"
    )
    rows = [{**row, "n_draws": 4, "target": None}, {**row, "label": "VGG", "target": None}]
    text = caption_text(rows)
    assert "weight draws: 4" in text and "model: per panel" in text and "layer: output" in text


@pytest.mark.parametrize(
    "row, weights, inputs",
    [
        (
            {"name": "resnet18", "weights": None, "inputs": "gaussian"},
            "random (the model's own init)",
            "N(0, 1) noise",
        ),  # fmt: skip
        (
            {"name": "resnet18", "weights": "DEFAULT", "inputs": "photos"},
            "pretrained DEFAULT",
            "photos (scikit-image)",
        ),  # fmt: skip
        (
            {"depth": 5, "init": "uniform", "inputs": "uniform"},
            "random (uniform init)",
            "U[-1, 1) noise",
        ),  # fmt: skip
        (
            {"name": "x", "pretrained": True, "inputs": "imagefolder"},
            "pretrained (timm)",
            "images from a folder",
        ),  # fmt: skip
        (
            {"name": "x", "checkpoint": "/a/b/net.pt", "inputs": "dataset"},
            "checkpoint net.pt",
            "the dataset's validation images",
        ),  # fmt: skip
    ],
)
def test_every_caption_names_the_weights_and_the_inputs(row, weights, inputs):
    text = caption_text([{"reduce": "abs", "n_samples": 4, **row}])
    assert f"weights: {weights};" in text and f"inputs: {inputs};" in text


def test_the_mass_extent_holds_the_bright_block_and_not_a_faint_pixel():
    m = np.zeros((20, 30))
    m[4:7, 7:10] = 1.0  # 9 units of mass
    m[0, 0] = 1e-6  # far below 1 % of it
    m[15, 3] = np.nan
    assert mass_extent(m) == ((4, 6), (7, 9))
    assert mass_extent(np.zeros((5, 5))) is None


def test_the_zoom_window_adds_a_margin_and_gives_up_on_a_large_erf():
    # a 5-px box on a 101-px canvas: margin ceil(0.3 * 5) = 2 px a side -> 9 px
    assert zoom_window((101, 101), [((48, 52), (48, 52))]) == ((46, 54), (46, 54))
    assert zoom_window((101, 101), [((10, 90), (10, 90))]) is None  # > 60 % of the side
    assert zoom_window((101, 101), [None]) is None
    # clipped at the canvas edge
    assert zoom_window((101, 101), [((0, 4), (0, 4))]) == ((0, 6), (0, 6))


@pytest.mark.parametrize(
    ("limits", "ticks"),
    [
        ((5, 80), [5, 10, 20, 50]),
        ((0.25, 0.9), [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
        ((10, 1e6), [10, 100, 1000, 1e4, 1e5, 1e6]),
    ],
)
def test_log_ticks_are_plain_numbers_and_at_least_three(limits, ticks):
    fig, ax = plt.subplots()
    ax.plot([1, 2], limits)
    ax.set_ylim(*limits)
    log_axis(ax, "y")
    np.testing.assert_allclose(ax.get_yticks(), ticks)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == f"{ticks[0]:g}" and all(labels)
    plt.close(fig)


def test_save_figure_writes_each_format_of_the_current_output_atomically(tmp_path):
    assert current_output() == FigureOutput()
    with figure_output(FigureOutput(("pdf", "svg"), 72)):
        written = save_figure(plt.figure(), tmp_path / "fig.png")
    assert [p.name for p in written] == ["fig.pdf", "fig.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.svg"]  # no temp files
    assert current_output() == FigureOutput()
    fig = plt.figure(figsize=(2, 1))
    (path,) = save_figure(fig, tmp_path / "small.png", FigureOutput(("png",), 100))
    assert imread(path).shape[:2] == (100, 200)  # 2 x 1 inches at 100 dpi
