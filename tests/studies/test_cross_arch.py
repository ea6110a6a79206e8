"""The cross-architecture study (erf.studies.cross_arch): t-intervals over seeds, cells and
seed-averaged maps, the figure and the table from synthetic maps and rows."""

import csv
import io
import math

import numpy as np
import pytest

from erf.io.store import save_result
from erf.result import ERFResult
from erf.studies.cross_arch import (
    cell_stats,
    cross_arch_figure,
    cross_arch_markdown,
    cross_arch_table,
    group_cells,
    mean_map,
    seed_interval,
    trf_is_global,
    write_cross_arch,
)


def test_the_interval_is_the_hand_computed_student_t_interval():
    # values 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3,
    # t_{0.975, 3} = 3.182446305 (a t table), half width t * s / sqrt(4)
    half = 3.182446305284263 * math.sqrt(14 / 3) / 2
    got = seed_interval([1.0, 2.0, 3.0, 6.0])
    assert got["n"] == 4
    assert got["mean"] == pytest.approx(3.0)
    assert got["lo"] == pytest.approx(3.0 - half, rel=1e-9)
    assert got["hi"] == pytest.approx(3.0 + half, rel=1e-9)
    assert half == pytest.approx(3.43743, abs=1e-5)  # 3.182446 * 2.160247 / 2


def test_a_90_percent_interval_uses_its_own_quantile():
    # t_{0.95, 2} = 2.919985580; values 0, 1, 2: mean 1, s = 1
    got = seed_interval([0.0, 1.0, 2.0], level=0.9)
    assert got["hi"] - got["mean"] == pytest.approx(2.919985580 / math.sqrt(3), rel=1e-8)


def test_missing_values_are_skipped_and_one_value_has_no_interval():
    assert seed_interval([None, float("nan"), 2.0, 4.0])["n"] == 2
    one = seed_interval([5.0, None])
    assert one["n"] == 1 and one["mean"] == 5.0
    assert math.isnan(one["lo"]) and math.isnan(one["hi"])
    none = seed_interval([])
    assert none["n"] == 0 and math.isnan(none["mean"])
    same = seed_interval([7.0, 7.0, 7.0])
    assert same["lo"] == same["hi"] == 7.0
    with pytest.raises(ValueError, match="level"):
        seed_interval([1.0, 2.0], level=95)


def test_cells_group_jobs_in_order_and_a_global_trf_has_no_size():
    rows = [
        {"label": "A", "inputs": "gaussian", "erf_size": 10.0, "trf_size": 100.0},
        {"label": "B", "inputs": "gaussian", "erf_size": 1.0, "trf_global_from": "blocks.0",
         "trf_size": 64.0, "erf_trf_ratio": 0.1},
        {"label": "A", "inputs": "gaussian", "erf_size": 12.0, "trf_size": 100.0},
    ]  # fmt: skip
    cells = group_cells(rows, ("label", "inputs"))
    assert list(cells) == [("A", "gaussian"), ("B", "gaussian")]
    a = cell_stats(cells[("A", "gaussian")])
    assert a["erf_size"]["mean"] == 11.0 and a["erf_size"]["n"] == 2
    assert a["trf_size"]["lo"] == a["trf_size"]["hi"] == 100.0
    b = cell_stats(cells[("B", "gaussian")])
    assert trf_is_global(rows[1]) and not trf_is_global(rows[0])
    assert b["trf_size"]["n"] == 0 and b["erf_trf_ratio"]["n"] == 0
    assert b["erf_size"]["mean"] == 1.0


def test_the_seed_averaged_map_is_the_mean_and_shapes_must_agree():
    a, b = np.zeros((3, 4)), np.full((3, 4), 2.0)
    np.testing.assert_array_equal(mean_map([a, b]), np.ones((3, 4)))
    with pytest.raises(ValueError, match="shapes"):
        mean_map([a, np.zeros((4, 4))])
    with pytest.raises(ValueError, match="no maps"):
        mean_map([])


def _gauss(size: int, sigma: float, peak: float = 1.0) -> np.ndarray:
    r = np.arange(size) - size // 2
    return peak * np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))


def _shown(fig):
    """Every panel's displayed array, row by row (axes with an image only)."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


@pytest.mark.parametrize("norm", ["row", "cell"])
def test_one_panel_per_model_and_row_and_the_same_map_renders_identically(norm):
    small, large = _gauss(33, 2.0), _gauss(33, 6.0, peak=5.0)
    panels = [
        [{"map": small}, {"map": large}, {"map": small}],
        [{"map": large, "trf_interval": [[4, 28], [4, 28]]}, None, {"map": small}],
    ]
    fig = cross_arch_figure(
        panels, ["gaussian, 33 px", "photos, 33 px"], ["A", "B", "C"], norm=norm
    )
    shown = _shown(fig)
    assert len(shown) == 5  # 2 rows x 3 models, one job missing
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 2  # one bar per row
    np.testing.assert_array_equal(shown[0], shown[2])  # the same map in two cells of a row
    assert all(ax.images[0].get_clim() == (0, 1) for ax in fig.axes if ax.images)
    expected = np.log10(small + 1) / np.log10(large + 1).max() if norm == "row" else None
    if norm == "row":  # one colour scale per row: the row's largest map sets it
        np.testing.assert_allclose(shown[0], expected)
        assert shown[1].max() == pytest.approx(1.0)
    else:  # each map scaled to its own max
        assert shown[0].max() == pytest.approx(1.0) and shown[1].max() == pytest.approx(1.0)
    assert any(p.get_linestyle() == "--" for p in fig.axes[3].patches)  # the TRF box


def test_the_figure_refuses_panels_that_do_not_match_the_labels():
    with pytest.raises(ValueError, match="panels"):
        cross_arch_figure([[{"map": np.ones((4, 4))}]], ["row"], ["A", "B"])
    with pytest.raises(ValueError, match="norm"):
        cross_arch_figure([[{"map": np.ones((4, 4))}]], ["row"], ["A"], norm="global")


def _row(label, seed, erf_size, **extra):
    return {
        "label": label, "name": label.lower(), "inputs": "gaussian", "input_h": 32,
        "config": {"seed": seed}, "erf_size": erf_size, "trf_size": 40.0,
        "erf_trf_ratio": erf_size / 40.0, "area_ratio_20": 0.1, "area_ratio_30": 0.2,
        "area_ratio_50": 0.3, "area_ratio_99": float("nan"), "trf_interval": [[-4, 35], [-4, 35]],
        **extra,
    }  # fmt: skip


def test_the_table_has_a_t_interval_per_metric_and_global_trfs_say_so(tmp_path):
    rows = [_row("CNN", s, v) for s, v in enumerate((10.0, 12.0, 14.0))]
    rows += [_row("ViT", s, 20.0 + s, trf_global_from="blocks.0") for s in range(3)]
    table = cross_arch_table(rows)
    assert [e["label"] for e in table] == ["CNN", "ViT"]
    cnn = table[0]
    assert cnn["n_seeds"] == 3 and cnn["seeds"] == "0 1 2"
    assert cnn["erf_size_mean"] == 12.0 and cnn["erf_size_lo"] < 12.0 < cnn["erf_size_hi"]
    assert cnn["area_ratio_99_n"] == 0
    md = cross_arch_markdown(table)
    assert "| CNN | gaussian | 32 | 3 |" in md and "12.0 [" in md
    assert "| global | n/a (global) |" in md
    for i, row in enumerate(rows):  # the writer reads each job's map from its folder
        row["_dir"] = tmp_path / str(i)
        row["_dir"].mkdir()
        m = _gauss(32, 3.0)
        result = ERFResult(m, m**2, 1, (3, 32, 32), "layer", (8, 4, 4), (2, 2), None, "abs")
        save_result(result, row["_dir"] / "erf.npz")
    write_cross_arch(tmp_path, rows)
    for name in ("cross_arch.png", "cross_arch_per_map.png", "cross_arch.md"):
        assert (tmp_path / name).is_file()
    parsed = list(csv.DictReader(io.StringIO((tmp_path / "cross_arch.csv").read_text())))
    assert [r["label"] for r in parsed] == ["CNN", "ViT"]
    assert float(parsed[0]["erf_size_lo"]) < 12.0 < float(parsed[0]["erf_size_hi"])
    assert parsed[1]["trf_global"] == "True"
