"""The settings a resumed job must match (erf.app.resume): what is in, what is out."""

import pytest
from helpers.paths import REPO
from hydra import compose, initialize_config_dir

from erf.app.resume import (
    UNFINGERPRINTED,
    check_resume,
    check_sweep,
    completed_metrics,
    fingerprint,
    settings,
    with_model_files,
)


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(REPO / "erf" / "configs"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_settings_hold_what_changes_a_map_and_drop_what_cannot():
    flat = settings(_cfg())
    for key in ("model.depth", "inputs.size", "seed", "probe.target", "probe.position"):
        assert key in flat
    assert not [k for k in flat if any(k == u or k.startswith(u + ".") for u in UNFINGERPRINTED)]
    same = ["device=cpu", "resume=true", "plot.scale=log", "probe.checkpoint_every=3"]
    assert fingerprint(settings(_cfg(*same))) == fingerprint(flat)
    for other in ("model.depth=3", "seed=1", "inputs.size=[8,8]", "probe.n_samples=3"):
        assert fingerprint(settings(_cfg(other))) != fingerprint(flat), other


def test_a_metrics_json_without_a_config_cannot_be_resumed_into(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match="records no settings .made by an older erf."):
        check_resume(_cfg("resume=true"), tmp_path)
    check_resume(_cfg(), tmp_path)  # without resume=true the job simply runs again


def _finished(folder, cfg):
    """A finished job's metrics.json, as a job records its config."""
    from omegaconf import OmegaConf

    from erf.io.store import write_json

    write_json({"config": OmegaConf.to_container(cfg, resolve=True)}, folder / "metrics.json")


def test_a_checkpoint_file_replaced_between_runs_is_refused_on_resume(tmp_path):
    from erf.app.resume import with_model_files

    weights = tmp_path / "net.pth"
    weights.write_bytes(b"first weights")
    job = tmp_path / "job"
    job.mkdir()
    args = ("model=conv_stack", f"+model.checkpoint={weights}", "resume=true")
    _finished(job, with_model_files(_cfg(*args)))
    check_resume(with_model_files(_cfg(*args)), job)  # the same file: resumable
    weights.write_bytes(b"other weights")
    with pytest.raises(ValueError, match="model_files.checkpoint_sha256="):
        check_resume(with_model_files(_cfg(*args)), job)


def test_a_model_whose_code_changed_between_runs_is_refused_on_resume(tmp_path, monkeypatch):
    import sys

    from erf.app.resume import with_model_files

    package = tmp_path / "code"
    package.mkdir()
    (package / "my_net_4c1.py").write_text("import torch\nclass Net(torch.nn.Conv2d): pass\n")
    monkeypatch.syspath_prepend(str(package))
    job = tmp_path / "job"
    job.mkdir()
    args = ("model=custom", "model._target_=my_net_4c1.Net", "resume=true")
    _finished(job, with_model_files(_cfg(*args)))
    (package / "my_net_4c1.py").write_text("import torch\nclass Net(torch.nn.Conv3d): pass\n")
    sys.modules.pop("my_net_4c1", None)
    with pytest.raises(ValueError, match="model_files.code_sha256="):
        check_resume(with_model_files(_cfg(*args)), job)


def test_an_unreadable_metrics_json_is_rerun_not_refused(tmp_path, caplog):
    (tmp_path / "metrics.json").write_text("{cut off")
    cfg = _cfg("resume=true")
    check_resume(cfg, tmp_path)  # not refused: there is nothing to compare with
    with caplog.at_level("WARNING", logger="erf"):
        assert completed_metrics(cfg, tmp_path) is None
    assert "metrics.json is unreadable (JSONDecodeError); rerunning the job" in caplog.text
    assert (tmp_path / "metrics.json").read_text() == "{cut off"


def test_a_finished_job_without_file_checksums_is_rerun(tmp_path, caplog):
    cfg = _cfg("resume=true")
    _finished(tmp_path, cfg)
    with caplog.at_level("WARNING", logger="erf"):
        assert completed_metrics(cfg, tmp_path) is None
    assert "records no file checksums (older erf); rerunning the job" in caplog.text


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "checkpoint_draws.npz",
            r"^checkpoint .*checkpoint_draws.npz is unreadable \(CorruptJob\)",
        ),
        ("train_checkpoint.pt", r"^training checkpoint .*train_checkpoint.pt is unreadable"),
    ],
)
def test_an_unreadable_checkpoint_is_a_one_line_error_and_is_kept(tmp_path, name, message):
    (tmp_path / name).write_bytes(b"half a file")
    with pytest.raises(ValueError, match=message) as info:
        check_resume(_cfg("resume=true"), tmp_path)
    assert "\n" not in str(info.value)
    assert (tmp_path / name).read_bytes() == b"half a file"  # deleting it is the user's call


def test_a_model_target_without_source_records_no_code_checksum():
    # a target that does not import: build_model refuses it later, in one line
    files = with_model_files(_cfg("model=custom", "model._target_=no_such_pkg_7d.Net"))
    assert files.model_files == {}
    assert with_model_files(_cfg("model=custom")).model_files == {}  # _target_ still ???
    ours = with_model_files(_cfg()).model_files
    assert list(ours) == ["code_sha256"] and len(ours.code_sha256) == 64


@pytest.fixture
def in_a_sweep(tmp_path):
    """Hydra's state in a multirun whose sweep folder is ``tmp_path / "sweep"`` (reset after)."""
    from hydra.core.hydra_config import HydraConfig

    sweep = tmp_path / "sweep"
    args = ["hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}", "model.depth=2"]
    with initialize_config_dir(config_dir=str(REPO / "erf" / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=args, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "metrics.json").write_text("{}")  # a job some earlier run left there
    try:
        yield cfg, sweep
    finally:
        HydraConfig.instance().cfg = None


def test_a_sweep_folder_hydra_recorded_is_checked_for_jobs_it_cannot_vouch_for(in_a_sweep):
    from omegaconf import OmegaConf

    cfg, sweep = in_a_sweep
    OmegaConf.save(cfg, sweep / "multirun.yaml")  # what Hydra writes when a sweep starts
    with pytest.raises(ValueError, match=r"holds jobs \(0, ...\) but no sweep.json"):
        check_sweep(cfg, sweep / "1")
    assert not (sweep / "sweep.json").exists()


def test_a_sweep_folder_without_hydras_multirun_record_is_not_checked(in_a_sweep):
    cfg, sweep = in_a_sweep  # no multirun.yaml: not a sweep Hydra started, nothing to compare
    check_sweep(cfg, sweep / "1")
    assert sorted(p.name for p in sweep.iterdir()) == ["0"]  # and no sweep.json is written
