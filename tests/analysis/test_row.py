"""The typed row: summary.csv's header, interval partners, labels, headings and key metrics all
come from the Column records and the size-metric registry."""

import pytest

from erf.analysis import row, sizes

# summary.csv's header as users' scripts read it (the published column order).
HEADER_TEXT = (
    "job label name weights target layer_index inputs input_h input_w depth kernel_size "
    "channels init activation blocks skip dropout dropout_mode dilation stride pool_at "
    "weight_scale branch_scale batch_norm protocol channel reduce n_samples n_draws "
    "erf_size erf_size_ci_low erf_size_ci_high erf_size_robust erf_size_robust_ci_low "
    "erf_size_robust_ci_high trf_size trf_bound trf_varies_by_unit erf_trf_ratio "
    "erf_trf_ratio_ci_low erf_trf_ratio_ci_high sigma_x sigma_x_ci_low sigma_x_ci_high "
    "sigma_y sigma_y_ci_low sigma_y_ci_high rotation fit_r2 fit_r2_ci_low fit_r2_ci_high "
    "fit_problem moment_sigma_row moment_sigma_row_ci_low moment_sigma_row_ci_high "
    "moment_sigma_col moment_sigma_col_ci_low moment_sigma_col_ci_high mass_radius_50 "
    "mass_radius_50_ci_low mass_radius_50_ci_high mass_radius_95 mass_radius_95_ci_low "
    "mass_radius_95_ci_high area_ratio_20 area_ratio_30 area_ratio_50 area_ratio_99 "
    "participation_size ci_level "
    "ci_n ci_method n_nonfinite n_dead dead_fraction n_dead_draws degenerate trf_clipped "
    "wall_time_s"
)
HEADER = tuple(HEADER_TEXT.split())


def test_the_summary_header_is_the_published_one():
    assert row.summary_columns() == HEADER


def test_every_column_with_an_interval_is_followed_by_its_partners():
    names = row.summary_columns()
    for column in row.summary_row():
        if column.interval:
            i = names.index(column.key)
            assert names[i + 1 : i + 3] == (f"{column.key}_ci_low", f"{column.key}_ci_high")


def test_paper_tables_keep_the_key_metrics_in_row_order():
    assert row.key_metrics() == ("erf_size", "trf_size", "erf_trf_ratio", "sigma_x", "sigma_y",
                                 "fit_r2")  # fmt: skip


def test_labels_and_headings_come_from_the_columns_and_the_size_registry():
    assert row.labels()["depth"] == "depth (layers)"
    assert row.labels()["mass_radius_50"] == "50 % mass radius (px)"
    assert row.headings()["erf_trf_ratio"] == "ERF/TRF"


def test_a_size_metric_registered_later_follows_the_placed_ones_with_its_interval(monkeypatch):
    monkeypatch.setattr(sizes, "_REGISTRY", dict(sizes._REGISTRY))
    sizes.size_metric("peak_share", {"peak_share": "peak share"}, interval="bootstrap")(
        lambda m, c: {"peak_share": 0.0}
    )
    names = row.summary_columns()
    i = names.index("peak_share")
    assert names[i - 1] == "participation_size"  # after the last registered one
    assert names[i : i + 3] == ("peak_share", "peak_share_ci_low", "peak_share_ci_high")
    assert row.labels()["peak_share"] == "peak share"


@pytest.mark.parametrize("column", row.summary_row(), ids=lambda c: c.key)
def test_a_table_heading_falls_back_to_the_key(column):
    assert column.table_heading == (column.heading or column.key)
