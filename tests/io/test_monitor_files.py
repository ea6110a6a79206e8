"""The ERF monitor's files and logs (erf.io.monitor): the heatmap image, the CSV."""

import csv
import math

import numpy as np
from matplotlib import colormaps

from erf.io.monitor import heatmap_image, log_tensorboard, write_monitor_csv


def test_the_heatmap_is_the_map_over_its_peak_in_viridis_and_nan_black():
    m = np.array([[0.0, 1.0], [4.0, np.nan]])
    image = heatmap_image(m)
    viridis = colormaps["viridis"]
    assert image.shape == (2, 2, 3) and image.dtype == np.float32
    for (r, c), level in (((0, 0), 0.0), ((0, 1), 0.25), ((1, 0), 1.0)):
        assert np.allclose(image[r, c], viridis(level)[:3], atol=1e-6)
    assert image[1, 1].tolist() == [0.0, 0.0, 0.0]


def test_an_all_zero_map_is_the_bottom_colour_everywhere():
    image = heatmap_image(np.zeros((3, 3)))
    assert np.allclose(image, colormaps["viridis"](0.0)[:3], atol=1e-6)


def test_the_csv_is_in_epoch_order_with_every_column(tmp_path):
    rows = [{"epoch": 2, "erf_size": 3.5}, {"epoch": 0, "erf_size": 2.0, "fit_r2": 0.9}]
    write_monitor_csv(rows, ("epoch", "erf_size", "fit_r2"), tmp_path / "m.csv")
    with open(tmp_path / "m.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert got == [
        {"epoch": "0", "erf_size": "2", "fit_r2": "0.9"},
        {"epoch": "2", "erf_size": "3.5", "fit_r2": ""},
    ]


class _Writer:
    def __init__(self):
        self.calls = []

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, value, step))

    def add_image(self, tag, image, step, dataformats):
        self.calls.append((tag, image.shape, step, dataformats))


def test_only_finite_numbers_are_logged_as_scalars_at_the_epoch():
    writer = _Writer()
    row = {"epoch": 3, "erf_size": 5.0, "fit_r2": math.nan, "erf_trf_ratio": None}
    log_tensorboard(writer, row, np.ones((4, 5)), prefix="m")
    assert writer.calls == [("m/size", 5.0, 3), ("m/heatmap", (4, 5, 3), 3, "HWC")]
