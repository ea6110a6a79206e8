"""``erf.io.sweep.write_summary``: summary.csv carries what the write-ups quote from it."""

import csv

import numpy as np

from erf.io.store import save_result, write_json
from erf.io.sweep import write_summary
from erf.result import ERFResult


def _job(folder, name, **metrics):
    """A saved job: a small Gaussian map and its metrics.json."""
    folder.mkdir(parents=True)
    r = np.arange(9) - 4
    m = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.0)
    save_result(ERFResult(m, m**2, 1, (1, 9, 9), None, (1, 9, 9), (4, 4), None, "abs"),
                folder / "erf.npz")  # fmt: skip
    write_json(
        {"activation": name, "depth": 2, "reduce": "abs", "n_samples": 1, "erf_size": 3.0,
         "trf_size": 5.0, "erf_trf_ratio": 0.6, "trf_interval": [[2, 6], [2, 6]], **metrics},
        folder / "metrics.json",
    )  # fmt: skip


def test_summary_csv_counts_each_draws_jobs_dead_draws(tmp_path):
    _job(tmp_path / "0_relu", "relu", n_draws=64, n_dead_draws=34)
    _job(tmp_path / "1_none", "none", n_draws=64, n_dead_draws=0)
    _job(tmp_path / "2_single", "tanh")  # one network: no draws, no count
    write_summary(tmp_path, x="activation", group_by=())
    with open(tmp_path / "summary.csv", newline="") as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert [rows[j]["n_dead_draws"] for j in ("0_relu", "1_none", "2_single")] == ["34", "0", ""]
