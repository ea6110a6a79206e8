"""CSV and text tables from plain rows: one writer for every summary."""

import pytest

from erf.io import store
from erf.io.tables import (
    cell,
    csv_text,
    fixed_text,
    format_rows,
    interval_text,
    is_number,
    key_columns,
    latex_escape,
    latex_table,
    markdown_table,
    number_text,
    write_paper_tables,
)

ROWS = [{"job": "0", "erf_size": 1.234567891, "sizes": [1, 2]}, {"job": "1", "extra": None}]


def test_cells_round_floats_join_lists_and_leave_none_empty():
    assert cell(1.234567891) == "1.23457"
    assert cell([1, 2]) == "1 2"
    assert cell(None) == ""
    assert cell(True) is True and cell(3) == 3


def test_csv_keeps_the_columns_some_row_has_in_the_given_order():
    text = csv_text(ROWS, ["sizes", "missing", "job", "erf_size"])
    assert text == "sizes,job,erf_size\n1 2,0,1.23457\n,1,\n"


def test_csv_with_every_column_keeps_the_empty_ones():
    text = csv_text(ROWS, ["job", "missing", "erf_size"], every_column=True)
    assert text == "job,missing,erf_size\n0,,1.23457\n1,,\n"


def test_format_rows_pads_every_column_to_its_widest_cell():
    assert format_rows(ROWS, ["job", "erf_size"]).splitlines() == [
        "job  erf_size",
        "0    1.23457 ",
        "1            ",
    ]


# Paper tables: summary.md and summary.tex


def test_numbers_round_to_three_significant_digits_in_fixed_point():
    assert number_text(8.314) == "8.31"
    assert number_text(22.74) == "22.7"
    assert number_text(0.48234) == "0.482"
    assert number_text(1234.6) == "1235"
    assert number_text(0.0) == "0.00"
    assert number_text(-0.4321) == "-0.432"
    assert number_text(0.0001234) == "1.23e-04"
    assert number_text(8.314, digits=2) == "8.3"
    assert number_text(5) == "5" and number_text("relu") == "relu"
    assert number_text(True) == "yes" and number_text(False) == "no"
    with pytest.raises(ValueError, match="digits"):
        number_text(1.0, digits=0)


@pytest.mark.parametrize("missing", [None, "", "  ", float("nan"), float("inf")])
def test_missing_cells_are_an_em_dash(missing):
    assert number_text(missing) == "—"
    assert interval_text(missing, 1.0, 2.0) == "—"


def test_intervals_show_the_bounds_with_the_values_decimals():
    assert interval_text(8.31, 7.9512, 8.6789) == "8.31 [7.95, 8.68]"
    assert interval_text(8.31, 7.9512, 8.6789, style="pm") == "8.31 ± 0.36"
    assert interval_text(0.482, 0.4, 0.55) == "0.482 [0.400, 0.550]"
    assert interval_text(8.31, None, 8.6) == "8.31"  # a missing bound: just the value
    assert interval_text(8.31, float("nan"), 8.6) == "8.31"
    with pytest.raises(ValueError, match="interval style"):
        interval_text(1.0, 0.5, 1.5, style="sd")


SWEEP = [
    {"job": "0_a", "depth": 5, "init": "uniform", "channels": 2, "erf_size": 8.314, "fit_r2": 0.99},
    {"job": "1_b", "depth": 10, "init": "uniform", "channels": 2, "erf_size": 11.7, "fit_r2": None},
]
ORDER = ["job", "depth", "init", "channels", "erf_size", "trf_size", "fit_r2", "wall_time_s"]


def test_key_columns_are_the_varying_settings_then_the_key_metrics():
    assert key_columns(SWEEP, ORDER) == ["depth", "erf_size", "fit_r2"]


def test_key_columns_lead_with_the_job_when_the_settings_do_not_tell_rows_apart():
    rows = [dict(SWEEP[0]), dict(SWEEP[0], job="1_c")]  # two seeds of one setting
    assert key_columns(rows, ORDER) == ["job", "erf_size", "fit_r2"]


def test_markdown_table_names_aligns_and_fills_missing_cells():
    assert markdown_table(SWEEP, ["depth", "init", "erf_size", "fit_r2"]) == (
        "| depth | init | ERF size (px) | fit R2 |\n"
        "|---:|:---|---:|---:|\n"
        "| 5 | uniform | 8.31 | 0.990 |\n"
        "| 10 | uniform | 11.7 | — |\n"
    )


def test_markdown_cells_with_an_interval_and_a_pipe():
    rows = [{"label": "a|b", "erf_size": 8.31, "erf_size_ci_low": 7.95, "erf_size_ci_high": 8.7}]
    assert markdown_table(rows, ["label", "erf_size"]).splitlines()[-1] == (
        "| a\\|b | 8.31 [7.95, 8.70] |"
    )


def test_latex_table_has_booktabs_rules_escapes_and_maths_minus():
    rows = [
        {"name": "50%_net", "sigma_x": -0.4321, "erf_size": float("nan")},
        {"name": "[x]&y", "sigma_x": 1.5, "erf_size": 3.0},
    ]
    assert latex_table(rows, ["name", "sigma_x", "erf_size"]) == (
        "\\begin{tabular}{lrr}\n"
        "\\toprule\n"
        "name & sigma\\_x (px) & ERF size (px) \\\\\n"
        "\\midrule\n"
        "50\\%\\_net & $-$0.432 & --- \\\\\n"
        "{[}x]\\&y & 1.50 & 3.00 \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )


def test_latex_intervals_as_plus_minus():
    rows = [{"erf_size": 8.31, "erf_size_ci_low": 7.95, "erf_size_ci_high": 8.67}]
    body = latex_table(rows, ["erf_size"], style="pm").splitlines()[4]
    assert body == "8.31 $\\pm$ 0.36 \\\\"
    assert latex_escape("a_b ~ c^d \\ {e} #$") == (
        "a\\_b \\textasciitilde{} c\\textasciicircum{}d \\textbackslash{} \\{e\\} \\#\\$"
    )


def test_write_paper_tables_writes_both_files_atomically(tmp_path, monkeypatch):
    written = []
    real = store.atomic_write
    monkeypatch.setattr(store, "atomic_write", lambda p, w: (written.append(p.name), real(p, w)))
    assert write_paper_tables(tmp_path, SWEEP, ORDER) == ["summary.md", "summary.tex"]
    assert sorted(written) == ["summary.md", "summary.tex"]
    md = (tmp_path / "summary.md").read_text()
    assert md.splitlines()[0] == "| depth | ERF size (px) | fit R2 |"
    assert "\\toprule" in (tmp_path / "summary.tex").read_text()


def test_is_number_takes_ints_and_floats_with_nan_but_not_bools_or_text():
    assert is_number(3) and is_number(0.5) and is_number(float("nan"))
    assert not is_number(True) and not is_number("3") and not is_number(None)


def test_fixed_text_writes_the_decimals_asked_for_and_n_a_for_none():
    assert (fixed_text(12.345), fixed_text(12.345, 0), fixed_text(None)) == ("12.3", "12", "n/a")
