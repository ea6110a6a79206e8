"""The settings a resumed job must match (erf.app.resume): what is in, what is out."""

import pytest
from helpers.paths import REPO
from hydra import compose, initialize_config_dir

from erf.app.resume import UNFINGERPRINTED, check_resume, fingerprint, settings


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
