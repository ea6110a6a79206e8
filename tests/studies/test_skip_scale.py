"""The skip-scale study (erf.studies.skip_scale): one entry per job, in (batch-norm, α) order,
with the ERF size's t-band over draws, and its text table."""

import numpy as np
from helpers.sweeps import gaussian, write_job

from erf.analysis.bands import draws_size_band
from erf.io.store import read_json
from erf.studies import get_study, write_study


def test_the_entries_are_in_batch_norm_then_alpha_order_with_bands_over_draws(tmp_path):
    jobs = [(True, 1.0), (False, 0.5), (False, 0.0), (True, 0.0)]
    for i, (bn, alpha) in enumerate(jobs):
        maps = [gaussian(15, 0.5 + alpha + 0.2 * d) for d in range(3)]
        write_job(tmp_path, f"{i}_bn{bn}_a{alpha}", maps, batch_norm=bn, branch_scale=alpha,
                  erf_size=1.0 + 4 * alpha, trf_size=9.0, erf_trf_ratio=0.5)  # fmt: skip
    text = write_study(tmp_path, "skip_scale", x="batch_norm", group_by=["batch_norm"])
    assert set(get_study("skip_scale").files) <= {p.name for p in tmp_path.iterdir()}
    entries = read_json(tmp_path / "skip_scale.json")["jobs"]
    assert [(e["batch_norm"], e["branch_scale"]) for e in entries] == sorted(jobs)
    first = entries[0]  # no batch-norm, alpha 0: job 2
    band = draws_size_band(np.stack([gaussian(15, 0.5 + 0.2 * d) for d in range(3)]))
    assert (first["erf_size_low"], first["erf_size_high"]) == band
    lines = text.splitlines()
    assert lines[0].split() == ["batch_norm", "alpha", "ERF", "size", "[95%", "CI]", "TRF"]
    assert len(lines) == 5 and lines[1].split()[:2] == ["False", "0"]
