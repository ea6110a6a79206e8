"""experiment=cross_arch end to end at scale=tiny (ResNet-50 and DeiT-S, 64 px, 1 sample, 2
seeds): a graph TRF and a global measured support in one table."""

import csv
import math

import pytest
from helpers.inprocess import run_erf_here, run_module_here

pytest.importorskip("timm")


@pytest.mark.slow  # about 30 s on 2 CPU cores: four timm jobs
def test_the_tiny_cross_arch_sweep_writes_its_figure_and_a_table_with_intervals(tmp_path):
    sweep_dir = tmp_path / "cross_arch"
    proc = run_erf_here(
        "run", "experiment=cross_arch", "scale=tiny", f"hydra.sweep.dir={sweep_dir}"
    )
    assert f"results: {sweep_dir}" in proc.stdout
    for name in ("cross_arch.png", "cross_arch_per_map.png", "cross_arch.csv", "cross_arch.md"):
        assert (sweep_dir / name).is_file(), name
    assert len(list(sweep_dir.glob("*/metrics.json"))) == 4
    rows = list(csv.DictReader((sweep_dir / "cross_arch.csv").open()))
    assert [r["label"] for r in rows] == ["ResNet-50", "DeiT-S"]
    for r in rows:
        assert r["n_seeds"] == "2" and r["seeds"] == "0 1"
        lo, mean, hi = (float(r[f"erf_size_{p}"]) for p in ("lo", "mean", "hi"))
        assert all(math.isfinite(v) for v in (lo, mean, hi)) and lo <= mean <= hi
    md = (sweep_dir / "cross_arch.md").read_text()
    assert "| ResNet-50 | gaussian | 64 | 2 |" in md and "[" in md
    assert rows[0]["trf_global"] == "False" and rows[1]["trf_global"] == "True"
    assert rows[1]["trf_source"] == "measured_support" and "| global |" in md
    (sweep_dir / "cross_arch.md").unlink()  # the report rebuilds it from the job folders
    report = run_module_here("erf.report", str(sweep_dir), "--study", "cross_arch")
    assert "| DeiT-S | gaussian | 64 | 2 |" in report.stdout
    assert (sweep_dir / "cross_arch.md").read_text() == md
