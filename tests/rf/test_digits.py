"""Digit layouts (erf.rf.digits): where a window partition puts each axis's units, and which
units a unit reads once the digits of a window are mixed. Oracles by window arithmetic."""

from erf.rf.digits import (
    OTHER,
    Digit,
    as_channels,
    axis_reads,
    exit_dims,
    from_layout,
    grid,
    index_digits,
    normalise,
    regroup,
)

ROW_OUTER, ROW_INNER = Digit(0, 7, 2), Digit(0, 1, 7)  # row = 7 * outer + inner, 14 rows
COL_OUTER, COL_INNER = Digit(1, 7, 2), Digit(1, 1, 7)


def test_a_map_has_one_digit_per_axis_in_the_dim_that_holds_it():
    digits = from_layout((1, 14, 14, 96), (1, 2))
    assert digits == ((), (Digit(0, 1, 14),), (Digit(1, 1, 14),), (Digit(OTHER, 0, 96),))


def test_swins_window_partition_cuts_each_axis_into_window_and_offset_digits():
    digits = regroup(from_layout((1, 14, 14, 96), (1, 2)), (1, 2, 7, 2, 7, 96))
    assert digits == (
        (), (ROW_OUTER,), (ROW_INNER,), (COL_OUTER,), (COL_INNER,), (Digit(OTHER, 0, 96),)
    )  # fmt: skip
    windows = (digits[0], digits[1], digits[3], digits[2], digits[4], digits[5])  # permute
    assert regroup(windows, (4, 49, 96)) == (
        (ROW_OUTER, COL_OUTER), (ROW_INNER, COL_INNER), (Digit(OTHER, 0, 96),)
    )  # fmt: skip


def test_a_reshape_that_cuts_a_digit_unevenly_has_no_digit_layout():
    assert regroup(from_layout((1, 14, 14), (1, 2)), (1, 4, 49)) is None


def test_digits_that_continue_each_other_join_back_into_one():
    assert normalise(((ROW_OUTER, ROW_INNER),)) == ((Digit(0, 1, 14),),)
    assert normalise(((ROW_INNER, ROW_OUTER),)) == ((ROW_INNER, ROW_OUTER),)  # transposed


def test_the_grid_of_a_split_map_counts_the_values_of_each_axis_digits():
    assert grid(((ROW_OUTER, COL_OUTER), (ROW_INNER,), (Digit(OTHER, 0, 3),)), 2) == (14, 2)


def test_mixing_a_windows_tokens_reads_the_whole_window():
    reads = axis_reads([ROW_OUTER, ROW_INNER], [ROW_OUTER, ROW_INNER], mixed={ROW_INNER})
    assert reads[9] == list(range(7, 14)) and reads[0] == list(range(7))


def test_mixing_a_grid_windows_tokens_reads_every_seventh_row():
    # MaxViT's grid: the window is the outer digit (rows 3 and 10 share inner digit 3)
    reads = axis_reads([ROW_OUTER, ROW_INNER], [ROW_OUTER, ROW_INNER], mixed={ROW_OUTER})
    assert reads[3] == [3, 10]


def test_a_unit_reads_the_input_units_that_share_the_digits_it_keeps():
    # a patch merge: the output keeps the outer digit only, so unit r reads rows 2r and 2r + 1
    outer, inner = Digit(0, 2, 7), Digit(0, 1, 2)
    assert axis_reads([outer], [outer, inner])[3] == [6, 7]


def test_an_opaque_index_digit_does_not_constrain_the_input():
    # a dim of (outer digit, 2 channels) read as 6 units: units 4 and 5 both read unit 2
    outer = Digit(0, 2, 3)
    units = index_digits((outer, Digit(OTHER, 0, 2)), 0)
    reads = axis_reads(units, [outer])
    assert reads[4] == reads[5] == [2]


def test_a_map_is_ordinary_again_when_each_axis_has_a_dim_of_its_own():
    assert exit_dims(((), (ROW_OUTER, ROW_INNER), (COL_INNER,)), 2) == (1, 2)
    assert exit_dims(((ROW_OUTER, COL_OUTER), (ROW_INNER, COL_INNER)), 2) is None


def test_mixing_keeps_a_same_size_dim_of_digits_spent_and_makes_other_dims_channels():
    digits = ((ROW_OUTER,), (ROW_INNER,), (COL_INNER, Digit(OTHER, 0, 4)))
    mixed = as_channels(digits, [1, 2], (2, 7, 28))
    assert mixed == ((ROW_OUTER,), (ROW_INNER._replace(spent=True),), (Digit(OTHER, 0, 28),))


def test_spent_digits_count_as_channels_when_the_map_is_ordinary_only_without_them():
    # a patch merge of a one-channel map: a linear layer over the (col, row) offsets keeps
    # their number, so they stay digits, spent; the map is (row outer, col outer) again
    row, col = Digit(0, 2, 7), Digit(1, 2, 7)
    offsets = (Digit(1, 1, 2, spent=True), Digit(0, 1, 2, spent=True))
    assert exit_dims(((), (row,), (col,), offsets), 2) == (1, 2)
    assert (
        exit_dims(((), (row,), (col,), tuple(f._replace(spent=False) for f in offsets)), 2) is None
    )
