"""CSV and text tables from plain rows: one writer for every summary."""

from erf.io.tables import cell, csv_text, format_rows

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
