"""The paths study (erf.studies.paths): binomial path counts, and one path-RF figure and
line per job whose graph has several paths."""

from helpers.sweeps import gaussian, write_job

from erf.studies import write_study
from erf.studies.paths import binomial_path_counts


def test_binomial_path_counts_sum_to_two_to_the_blocks():
    counts = binomial_path_counts(6)
    assert counts == {0: 1, 1: 6, 2: 15, 3: 20, 4: 15, 5: 6, 6: 1}
    assert sum(counts.values()) == 2**6


def test_a_figure_and_a_line_per_job_with_several_paths(tmp_path):
    paths = [[5, 5, 1], [9, 9, 2], [13, 13, 1]]  # rows, cols, number of paths
    write_job(tmp_path, "0_plain", [gaussian(15, 2.0)], label="plain", erf_size=5.0,
              trf_size=13.0, trf_path_sizes=[[13, 13, 1]])  # fmt: skip
    write_job(tmp_path, "1_residual", [gaussian(15, 2.0)], label="residual", erf_size=5.0,
              trf_size=13.0, trf_path_sizes=paths)  # fmt: skip
    text = write_study(tmp_path, "paths", x="label", group_by=["label"])
    assert text == "1_residual: mean path RF 9.0 px, TRF 13 px"
    assert sorted(p.name for p in tmp_path.glob("path_rf_*")) == ["path_rf_1_residual.png"]
