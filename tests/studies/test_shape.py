"""The shape study (erf.studies.shape): the centre-row profile and the fit R² interval over
draws, against hand-computed values, and its files on a sweep of synthetic job folders."""

import csv

import numpy as np
import pytest
from helpers.sweeps import gaussian, write_job

from erf.analysis.fit import fit_gaussian
from erf.io.store import read_json
from erf.studies import get_study, write_study
from erf.studies.shape import centre_profile, fit_r2_interval


def test_centre_profile_is_the_centre_row_scaled_to_one_at_the_centre():
    m = np.outer([1, 2, 1], [1, 4, 2, 1]).astype(float)
    np.testing.assert_allclose(centre_profile(m), [0.5, 2, 1, 0.5])


def test_fit_r2_interval_is_a_jackknife_interval_about_the_bias_corrected_r2():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:21, 0:21]
    g = np.exp(-((rows - 10) ** 2 + (cols - 10) ** 2) / (2 * 3.0**2))
    maps = g + 0.05 * rng.standard_normal((12, 21, 21))
    out = fit_r2_interval(maps, groups=4)
    assert out["fit_r2"] == fit_gaussian(maps.mean(axis=0)).r_squared
    # jackknife by hand: leave out 3 draws at a time
    loo = [fit_gaussian(np.delete(maps, range(3 * i, 3 * i + 3), axis=0).mean(0)).r_squared
           for i in range(4)]  # fmt: skip
    se = np.sqrt(3 / 4 * np.sum((np.array(loo) - np.mean(loo)) ** 2))
    corrected = 4 * out["fit_r2"] - 3 * np.mean(loo)
    assert out["se"] == pytest.approx(se, rel=1e-12) and out["groups"] == 4
    assert out["fit_r2_corrected"] == pytest.approx(corrected, rel=1e-12)
    assert corrected > out["fit_r2"]  # noise lowers a map's R²; the correction adds it back
    assert out["low"] < corrected < out["high"] <= 1
    noisier = fit_r2_interval(g + 0.2 * rng.standard_normal((12, 21, 21)), groups=4)
    assert noisier["fit_r2"] < out["fit_r2"]
    single = fit_r2_interval(maps[:1])
    assert np.isnan(single["low"]) and single["n_draws"] == 1


def test_the_shape_files_hold_one_entry_per_job_with_its_r2_interval(tmp_path):
    rng = np.random.default_rng(2)
    for i, activation in enumerate(("none", "relu")):
        maps = [gaussian(15, 2.0) + 0.01 * rng.random((15, 15)) for _ in range(4)]
        write_job(tmp_path, f"{i}_{activation}", maps, activation=activation, depth=2,
                  erf_size=5.0, trf_size=9.0, sigma_x=2.0, fit_r2=0.99)  # fmt: skip
    text = write_study(tmp_path, "shape", x="depth", group_by=["activation"])
    assert set(get_study("shape").files) <= {p.name for p in tmp_path.iterdir()}
    jobs = read_json(tmp_path / "shape.json")["jobs"]
    assert [(e["activation"], e["n_draws"]) for e in jobs] == [("none", 4), ("relu", 4)]
    assert all(e["fit_r2_low"] <= e["fit_r2_corrected"] and e["fit_r2_high"] <= 1 for e in jobs)
    with open(tmp_path / "shape.csv") as f:
        assert next(csv.reader(f))[:3] == ["activation", "job", "label"]
    assert text.split()[:5] == ["activation", "erf_size", "fit_r2", "fit_r2_low", "fit_r2_high"]
