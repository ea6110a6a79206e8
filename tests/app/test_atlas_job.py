"""``job: atlas`` (``experiment=atlas``): one run writes the atlas's table, maps, figure,
page and record; its keys belong to it, and bad values are one-line errors."""

import csv
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from erf.app.config import CONFIG_DIR
from erf.app.jobs import run_job
from erf.app.rules import ConfigError

TINY = [
    "model.depth=2", "model.channels=2", "model.in_channels=1", "inputs.size=[10,10]",
    "probe.n_samples=4", "probe.batch_size=4", "probe.bootstrap_groups=2",
]  # fmt: skip


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas")
    record = run_job(_cfg("experiment=atlas", *TINY, "atlas.units=border"), out)
    return out, record


def test_an_atlas_job_writes_its_files_and_its_record_last(atlas_run):
    out, record = atlas_run
    saved = json.loads((out / "atlas.json").read_text())
    assert set(saved["files"]) == {"atlas.csv", "atlas_maps.npz", "atlas.png", "atlas.html"}
    assert saved["plan"] == record["plan"] and saved["plan"]["n_units"] == 9
    assert saved["plan"]["shared"]  # TRF 5 on 10 px: the corners share a pass
    rows = list(csv.DictReader((out / "atlas.csv").open()))
    assert [(int(r["unit_row"]), int(r["unit_col"])) for r in rows][:3] == [
        (0, 0), (0, 5), (0, 9),
    ]  # fmt: skip
    assert {r["region"] for r in rows} == {"corner", "edge", "centre"}
    with np.load(out / "atlas_maps.npz") as data:
        assert data["maps"].shape == (9, 10, 10)
        assert data["trf_interval"][0].tolist() == [[-2, 2], [-2, 2]]
    assert 'id="atlas-data"' in (out / "atlas.html").read_text()


def test_resume_skips_a_finished_atlas_with_the_same_settings(atlas_run):
    out, record = atlas_run
    before = (out / "atlas.json").stat().st_mtime_ns
    again = run_job(_cfg("experiment=atlas", *TINY, "atlas.units=border", "resume=true"), out)
    assert again["plan"] == record["plan"]
    assert (out / "atlas.json").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["atlas.units=all"], "atlas.units is set: it belongs to job=atlas"),
        (["job=atlas", "atlas.units=edges"], "atlas.units=edges is not allowed"),
        (["job=atlas", "atlas.share=never"], "atlas.share=never is not allowed"),
        (["job=atlas", "model.padding_mode=mirror"], "model.padding_mode=mirror is not allowed"),
    ],
)
def test_atlas_keys_belong_to_the_atlas_and_are_checked(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as info:
        run_job(_cfg(*TINY, *overrides), tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_atlas_refuses_a_probe_position(tmp_path):
    with pytest.raises(ValueError, match=r"probe.position=\[1,1\] does not combine with job=atlas"):
        run_job(_cfg(*TINY, "job=atlas", "probe.position=[1,1]"), tmp_path)
