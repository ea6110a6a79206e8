"""Figures and job files of sequence and volume maps (erf.io.nd_figures, erf.io.job)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from erf.analysis.summary import erf_metrics
from erf.io.job import write_job
from erf.io.nd_figures import nd_grid_figure, nd_title, profile_figure, slices_figure
from erf.io.store import load_result, read_json
from erf.result import ERFResult
from erf.rf.trf import TheoreticalRF


def _box(n: int) -> np.ndarray:
    p = np.ones(1)
    for _ in range(n):
        p = np.convolve(p, np.ones(3))
    return p


def _result(erf_map: np.ndarray, position: tuple[int, ...]) -> ERFResult:
    return ERFResult(
        total=erf_map, total_sq=erf_map**2, n_samples=1, input_shape=(1, *erf_map.shape),
        target=None, target_shape=(1, *erf_map.shape), position=position, channel=None,
        reduce="abs",
    )  # fmt: skip


def test_profile_shades_the_trf_span_and_marks_the_unit():
    fig = profile_figure(np.r_[np.zeros(4), _box(3), np.zeros(4)], trf_interval=[[4, 10]], unit=[7])
    (ax,) = fig.axes
    (span,) = [p for p in ax.patches if p.get_label() == "TRF span"]
    x0, x1 = span.get_x(), span.get_x() + span.get_width()
    assert (x0, x1) == (3.5, 10.5)
    assert any(line.get_label() == "probed unit" for line in ax.lines)
    plt.close(fig)


def test_slices_cut_through_the_unit_voxel_with_one_trf_box_each():
    volume = np.zeros((5, 6, 7))
    volume[1, 2, 3] = 1.0
    fig = slices_figure(volume, center=[1, 2, 3], trf_interval=[[0, 2], [1, 3], [2, 4]])
    images = [ax.images[0].get_array() for ax in fig.axes[:3]]
    assert [im.shape for im in images] == [(6, 7), (5, 7), (5, 6)]
    assert all(im.max() == 1.0 for im in images)  # every slice holds the peak voxel
    boxes = [[p for p in ax.patches if isinstance(p, Rectangle)][0] for ax in fig.axes[:3]]
    assert [(b.get_x(), b.get_y(), b.get_width(), b.get_height()) for b in boxes] == [
        (1.5, 0.5, 3, 3), (1.5, -0.5, 3, 3), (0.5, -0.5, 3, 3),
    ]  # fmt: skip
    plt.close(fig)


def test_title_names_luo_size_per_axis_and_the_trf():
    title = nd_title({"ndim": 3, "erf_size": 4.2, "erf_size_axes": [5, 5, 3], "trf_sizes": [7] * 3})
    assert title == "ERF size 4.20 (per axis 5 x 5 x 3) voxels, TRF 7 x 7 x 7"


@pytest.mark.parametrize("ndim", [1, 3])
def test_write_job_of_a_sequence_or_volume_writes_map_figure_and_metrics(tmp_path, ndim):
    p = _box(2)
    erf_map = p if ndim == 1 else np.einsum("i,j,k->ijk", p, p, p)
    result = _result(erf_map, (2,) * ndim)
    trf = TheoreticalRF(size=(5,) * ndim, stride=(1,) * ndim, padding=(2,) * ndim)
    metrics = erf_metrics(result, trf)
    write_job(tmp_path, result, metrics, "linear")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erf.npz", "heatmap.png", "metrics.json"]
    assert load_result(tmp_path / "erf.npz").position == (2,) * ndim
    assert read_json(tmp_path / "metrics.json")["trf_sizes"] == [5] * ndim
    assert (tmp_path / "heatmap.png").stat().st_size > 1000


def test_a_sweep_of_sequence_jobs_gets_its_summary_and_a_grid_of_profiles(tmp_path):
    from erf.io.sweep import write_summary

    for i, depth in enumerate((2, 4)):
        p = _box(depth)
        erf_map = np.r_[np.zeros(6), p, np.zeros(6)]
        result = _result(erf_map, (len(erf_map) // 2,))
        trf = TheoreticalRF(size=(len(p),), stride=(1,), padding=(depth,))
        metrics = {"depth": depth, **erf_metrics(result, trf)}
        write_job(tmp_path / str(i), result, metrics, "linear")
    slopes = write_summary(tmp_path, x="depth", group_by=())
    assert (tmp_path / "erf_grid.png").stat().st_size > 1000
    assert slopes[0]["trf_size_slope"] == pytest.approx(np.log(9 / 5) / np.log(2))


def test_a_profile_without_trf_unit_or_title_draws_the_erf_alone():
    fig = profile_figure(_box(3), scale="log")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["ERF"] and not ax.patches
    assert fig.get_suptitle() == ""
    plt.close(fig)


def test_volume_slices_without_trf_show_no_box():
    volume = np.zeros((3, 4, 5))
    volume[1, 2, 3] = 1.0
    fig = slices_figure(volume, center=[1, 2, 3])
    assert not any(isinstance(p, Rectangle) for ax in fig.axes[:3] for p in ax.patches)
    plt.close(fig)


def test_a_sweep_grid_of_volumes_shows_the_slice_through_each_units_depth():
    volume = np.zeros((5, 6, 7))
    volume[3, 2, 4] = 2.0
    profile = _box(2)
    panels = [
        {
            "map": volume,
            "trf_interval": [[2, 4], [1, 3], [3, 5]],
            "center": [3, 2, 4],
            "title": "a",
        },
        {"map": volume, "title": "b"},  # no centre: the middle depth (2), no TRF box
        {"map": profile, "title": "c"},  # a profile without a TRF span
    ]
    fig = nd_grid_figure(panels, ncols=2)
    axes = fig.axes[:4]
    np.testing.assert_array_equal(axes[0].images[0].get_array(), volume[3] / 2.0)
    np.testing.assert_array_equal(axes[1].images[0].get_array(), volume[2] / 2.0)
    (box,) = [p for p in axes[0].patches if isinstance(p, Rectangle)]
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (2.5, 0.5, 3, 3)
    assert not axes[1].patches and not axes[2].patches
    assert [ax.get_visible() for ax in axes] == [True, True, True, False]
    assert axes[0].get_xlabel() == "slice d = 3: w" and axes[1].get_xlabel() == "slice d = 2: w"
    plt.close(fig)
