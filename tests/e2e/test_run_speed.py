"""The app's speed settings: shared-forward layer profiles (with resume), probe.batch_size=auto,
probe.crop, and experiment=benchmark, end to end at tiny sizes."""

import csv
import json

import numpy as np
import pytest
from helpers.cli import last_line
from helpers.inprocess import run_erf_expecting_error, run_module_here
from helpers.paths import REPO
from hydra import compose, initialize_config_dir

from erf.app.jobs import run_job
from erf.io.store import load_result
from erf.probe.measure import ProbeInterrupted

PROFILE = [
    "model.depth=4",
    "model.channels=2",
    "model.init=random",
    "model.activation=relu",
    "inputs.size=[20,20]",
    "probe.n_samples=6",
    "probe.batch_size=2",
    "probe.checkpoint_every=1",
    "job=profile",
    "profile.layers=[1,3,7]",
]


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "erf" / "configs"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _maps(folder):
    return {p.parent.name: load_result(p) for p in sorted(folder.glob("*/erf.npz"))}


def _stop_after(batches):
    calls = []
    return lambda: calls.append(1) or len(calls) >= batches


@pytest.fixture(scope="module")
def whole_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    run_job(_cfg(*PROFILE), out)
    return _maps(out)


def test_a_shared_forward_profile_equals_one_probe_per_layer_bitwise(tmp_path, whole_profile):
    run_job(_cfg(*PROFILE, "profile.shared_forward=false"), tmp_path)
    separate = _maps(tmp_path)
    assert list(separate) == ["00_1", "01_3", "02_7"] == list(whole_profile)
    for name, result in separate.items():
        assert np.array_equal(result.total, whole_profile[name].total), name
    metrics = json.loads((tmp_path / "00_1" / "metrics.json").read_text())
    assert metrics["n_units"] == 1


def test_an_interrupted_shared_forward_profile_resumes_to_the_bitwise_same_maps(
    tmp_path, whole_profile
):
    with pytest.raises(ProbeInterrupted):
        run_job(_cfg(*PROFILE), tmp_path, should_stop=_stop_after(2))
    seen = {p.parent.name: load_result(p).meta["samples_seen"] for p in tmp_path.glob("*/c*.npz")}
    assert seen == {"00_1": 4, "01_3": 4, "02_7": 4}
    run_job(_cfg(*PROFILE, "resume=true"), tmp_path)
    for name, result in _maps(tmp_path).items():
        assert np.array_equal(result.total, whole_profile[name].total), name
        assert not (tmp_path / name / "checkpoint.npz").exists()
    metrics = json.loads((tmp_path / "02_7" / "metrics.json").read_text())
    assert metrics["n_units"] == 3  # the three layers shared each forward pass


def test_a_per_layer_profile_interrupted_midway_resumes_with_a_shared_forward(
    tmp_path, whole_profile
):
    # per layer: layer 1 finishes (3 batches), layer 3 stops after 2 of its batches
    with pytest.raises(ProbeInterrupted):
        run_job(
            _cfg(*PROFILE, "profile.shared_forward=false"), tmp_path, should_stop=_stop_after(5)
        )
    assert (tmp_path / "00_1" / "metrics.json").exists()
    assert load_result(tmp_path / "01_3" / "checkpoint.npz").meta["samples_seen"] == 4
    run_job(_cfg(*PROFILE, "resume=true"), tmp_path)
    for name, result in _maps(tmp_path).items():
        assert np.array_equal(result.total, whole_profile[name].total), name


def test_auto_batch_size_and_crop_are_recorded_in_the_metrics(tmp_path):
    overrides = [
        "model.depth=3",
        "model.stride=[2,1,1]",
        "inputs.size=[48,48]",
        "probe.n_samples=5",
        "probe.batch_size=auto",
        "probe.crop=auto",
    ]
    run_job(_cfg(*overrides), tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["batch_size"] == 5  # everything fits
    assert metrics["crop"]["applied"] is True and metrics["crop"]["rows"][0] % 2 == 0
    full = tmp_path / "full"
    run_job(_cfg(*overrides[:4]), full)
    np.testing.assert_allclose(
        load_result(tmp_path / "erf.npz").map, load_result(full / "erf.npz").map, rtol=1e-5
    )


@pytest.mark.slow
def test_benchmark_experiment_writes_the_table_the_json_and_the_figure(tmp_path):
    out = tmp_path / "bench"
    proc = run_module_here(
        "erf.run",
        "experiment=benchmark",
        "inputs.size=[32,32]",
        "probe.n_samples=2",
        "probe.batch_size=2",
        "benchmark.repeats=1",
        "benchmark.warmup=0",
        "benchmark.threads=1",
        "benchmark.methods=[probe,per_image,floor,multi]",
        "benchmark.multi_targets=[layer1,layer2]",
        f"hydra.run.dir={out}",
    )
    assert last_line(proc.stdout) == f"results: {out}"
    assert "probe/per_image" in proc.stdout
    with open(out / "benchmark.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["probe", "per_image", "floor", "multi", "separate"]
    assert rows["probe"]["target"] == "layer4" and rows["probe"]["model"] == "resnet18"
    assert float(rows["per_image"]["map_corr"]) > 0.9999
    assert float(rows["probe"]["vs_per_image"]) > 0
    record = json.loads((out / "benchmark.json").read_text())
    assert record["provenance"]["torch_version"] and record["multi_targets"] == [
        "layer1",
        "layer2",
    ]
    assert (out / "benchmark.png").stat().st_size > 5_000


def test_benchmark_with_auto_batch_size_is_a_one_line_error(tmp_path):
    last = run_erf_expecting_error(
        tmp_path / "b", "experiment=benchmark", "probe.batch_size=auto", "inputs.size=[32,32]"
    )
    assert last == "error: the benchmark needs a fixed probe.batch_size (an integer)"
