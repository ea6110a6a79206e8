"""The sequence and volume write-ups quote their committed result files: every table row of
experiments/tcn_dilation and experiments/highresnet3d is rebuilt here from results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ci(row: dict, key: str, digits: int) -> str:
    """``mean [low, high]`` of ``key`` at ``digits`` decimals; "1.00" for a share that is 1."""
    mean, low, high = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if f"{low:.4f}" == f"{high:.4f}" == "1.0000":  # all the mass (up to rounding)
        return "1.00"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def tcn_row(row: dict) -> str:
    cells = [
        row["stack"], str(row["trf"]), _ci(row, "relu_recent_share", 3),
        _ci(row, "relu_history_share", 3), _ci(row, "relu_lag_median", 1),
        _ci(row, "relu_window90", 1),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def hrn_row(row: dict) -> str:
    cells = [
        row["network"], f"{row['stage']} (d = {row['dilation']})", str(row["trf"]),
        _ci(row, "erf_size", 1), _ci(row, "erf_size_axis", 1), _ci(row, "fit_sigma", 2),
        _ci(row, "erf_trf_ratio", 2),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


@pytest.mark.parametrize("folder, make_row", [("tcn_dilation", tcn_row), ("highresnet3d", hrn_row)])
def test_the_write_up_tables_are_their_results_files(folder, make_row):
    results = json.loads((ROOT / "experiments" / folder / "results.json").read_text())
    readme = (ROOT / "experiments" / folder / "README.md").read_text()
    missing = [make_row(r) for r in results["rows"] if make_row(r) not in readme]
    assert not missing, "rows not quoted as in results.json:\n" + "\n".join(missing)


def test_the_tcn_oracle_error_is_the_largest_committed_one():
    results = json.loads((ROOT / "experiments/tcn_dilation/results.json").read_text())
    largest = max(r["uniform_oracle_max_error"] for r in results["rows"])
    readme = (ROOT / "experiments/tcn_dilation/README.md").read_text()
    assert f"normalised entry is {largest:.1e}" in readme
