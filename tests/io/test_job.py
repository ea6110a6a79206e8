"""One measurement's files from plain data: erf.npz, heatmap.png, metrics.json last."""

import numpy as np

from erf.io.job import heatmap_title, write_job
from erf.io.store import check_files, load_result, read_json, save_result
from erf.result import ERFResult


def _result():
    stack = np.random.default_rng(0).random((3, 9, 9))
    return ERFResult(
        total=stack.sum(0),
        total_sq=(stack**2).sum(0),
        n_samples=3,
        input_shape=(1, 9, 9),
        target=None,
        target_shape=(1, 9, 9),
        position=(4, 4),
        channel=None,
        reduce="abs",
        meta={},
    )


def test_write_job_writes_the_files_and_removes_checkpoint_and_stale_temps(tmp_path):
    result = _result()
    save_result(result, tmp_path / "checkpoint.npz")
    (tmp_path / ".erf.npz.abc.tmp").write_bytes(b"partial")  # an older erf's temp name
    metrics = {"erf_size": 3.5, "trf_size": 5.0, "depth": 2, "warnings": ["a", "b"]}
    write_job(tmp_path, result, metrics, "linear")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erf.npz", "heatmap.png", "metrics.json"]
    assert np.array_equal(load_result(tmp_path / "erf.npz").total, result.total)
    assert read_json(tmp_path / "metrics.json") == metrics
    assert set(metrics["files"]) == {"erf.npz", "heatmap.png"}  # sizes and sha256s
    assert check_files(tmp_path, metrics["files"]) is None
    assert (tmp_path / "heatmap.png").stat().st_size > 1000


def test_the_heatmap_title_names_the_settings_and_sizes():
    title = heatmap_title({"label": "x", "depth": 2, "init": None, "erf_size": 3.456})
    assert title == "x, depth 2\nERF size 3.46 px, TRF n/a"


def test_the_heatmap_marks_the_probed_unit_with_a_labelled_cross():
    import matplotlib.pyplot as plt

    from erf.io.plots import draw_erf

    fig, ax = plt.subplots()
    draw_erf(ax, np.ones((8, 8)), unit=(2.5, 4.0))
    (line,) = ax.lines
    assert line.get_label() == "probed unit"
    assert list(line.get_xdata()) == [4.0] and list(line.get_ydata()) == [2.5]
    plt.close(fig)


def test_the_heatmap_title_says_when_the_box_varies_by_unit_or_holds_gates_constant():
    from erf.rf.trf import LOCAL_CONVENTION

    varying = heatmap_title({"trf_size": 9.0, "trf_varies_by_unit": True})
    assert varying == "ERF size n/a, TRF 9 px (this unit's box; varies by unit)"
    local = heatmap_title({"trf_size": 5.0, "trf_convention": LOCAL_CONVENTION})
    assert local.endswith("(local box: gates and norm statistics held constant)")
    assert heatmap_title({"trf_size": 5.0, "trf_convention": ""}) == "ERF size n/a, TRF 5 px"
