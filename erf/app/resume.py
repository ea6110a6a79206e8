"""``resume=true``: finished jobs are skipped, interrupted ones continue from their
checkpoints (a probe's ``checkpoint.npz``, a many-draws probe's ``checkpoint_draws.npz``, a
training job's ``train_checkpoint.pt``); an unreadable checkpoint is a one-line error.

Nothing is mixed: every job records the **settings** it was made with (the resolved config
minus ``UNFINGERPRINTED``, the keys that cannot change a map: where it runs and how it is
drawn) in ``metrics.json`` and in each checkpoint, and a sweep folder records its experiment
and command-line overrides in ``sweep.json``. A finished job is skipped, and a checkpoint
continued, only when its settings are this run's; else ``job_folder`` fails in one line
before any work, naming the first differing key. A job is complete only while every result
file matches the size and sha256 its ``metrics.json`` recorded; otherwise it is rerun.
A job folder is locked (``erf.io.store.folder_lock``) while a job runs in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from erf.app.build import locate_target
from erf.app.groups import TrainJobSettings
from erf.io.store import (
    LOCK,
    check_files,
    folder_lock,
    load_result,
    load_results,
    read_json,
    write_json,
)
from erf.probe.options import ProbeOptions
from erf.result import ERFResult
from erf.settings import unfingerprinted

log = logging.getLogger("erf")

# Config keys that do not change a job's map or metrics (dotted prefixes): whether to resume,
# the device (a CPU checkpoint may continue on a GPU: the same measurement up to float
# rounding), figure drawing, how often partial sums are saved, whether a layer profile shares
# its forward passes (bitwise the same maps), and CPU thread counts.
UNFINGERPRINTED = (
    "resume",
    "device",
    "plot",
    *unfingerprinted(ProbeOptions, "probe."),  # probe.checkpoint_every
    "profile.shared_forward",
    *unfingerprinted(TrainJobSettings, "train."),  # train.threads
    "benchmark.threads",
)
CHECKPOINTS = ("checkpoint.npz", "checkpoint_draws.npz", "train_checkpoint.pt")
SWEEP_RECORD = "sweep.json"


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _kept(key: str) -> bool:
    return not any(key == k or key.startswith(k + ".") for k in UNFINGERPRINTED)


def settings(config: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The settings a job's results depend on, as ``{dotted.key: value}``: the resolved
    config (a DictConfig, or the plain dict ``metrics.json`` keeps as ``config``) minus
    ``UNFINGERPRINTED``."""
    tree = config
    if isinstance(config, DictConfig):
        tree = OmegaConf.to_container(config, resolve=True)
    return {k: v for k, v in sorted(_flat(tree).items()) if _kept(k)}


def fingerprint(flat: dict[str, Any]) -> str:
    """A short hash of ``settings(...)``, recorded in ``metrics.json``."""
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """``"K=OLD, this run has K=NEW"`` for the first key whose values differ, else None."""
    for key in sorted(set(old) | set(new)):
        if old.get(key, "(unset)") != new.get(key, "(unset)"):
            return (
                f"{key}={_shown(old.get(key, '(unset)'))}, this run has "
                f"{key}={_shown(new.get(key, '(unset)'))}"
            )
    return None


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _folder_hint() -> str:
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return "hydra.sweep.dir" if multirun else "hydra.run.dir"


def _refuse(what: Path, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """ValueError (one line) when ``old`` settings (None: not recorded) are not ``new``."""
    if old is None:
        raise ValueError(
            f"resume=true: {what} records no settings (made by an older erf), so it cannot be "
            f"checked against this run; delete it or use another {_folder_hint()}"
        )
    diff = _first_difference(old, new)
    if diff:
        raise ValueError(
            f"resume=true: {what} was made with {diff}; use another {_folder_hint()} or delete it"
        )


def _job_folders(out_dir: Path) -> list[Path]:
    """``out_dir`` and its sub-job folders (a layer profile's ``NN_<layer>``)."""
    subs = [p for p in sorted(out_dir.glob("*")) if p.is_dir() and not p.name.startswith(".")]
    return [out_dir, *subs]


def check_resume(cfg: DictConfig, out_dir: Path) -> None:
    """With ``resume=true``, refuse (one line, before any work) a finished job or a
    checkpoint in ``out_dir`` (or its sub-job folders) made with other settings."""
    if not cfg.resume or not out_dir.is_dir():
        return
    new = settings(cfg)
    profile = cfg.get("profile") and cfg.profile.get("layers")
    for folder in _job_folders(out_dir) if profile else [out_dir]:
        done = folder / "metrics.json"
        if done.exists():
            try:
                config = read_json(done).get("config")
            except (OSError, ValueError):
                config = None  # unreadable: completed_metrics reruns it
            else:
                _refuse(folder, None if config is None else settings(config), new)
        reused = ("erf_init.npz",) if cfg.get("train") is not None else ()
        for name in (*CHECKPOINTS, *reused):  # a training job reuses its ERF at init
            if (folder / name).exists():
                _refuse(folder / name, checkpoint_settings(folder / name), new)


def checkpoint_settings(path: Path) -> dict[str, Any] | None:
    """The settings recorded in a checkpoint (None when it records none); an unreadable
    checkpoint is a one-line error."""
    if path.suffix == ".pt":
        return load_training_state(path).get("settings")
    results = load_draws_checkpoint(path) if "draws" in path.name else [load_checkpoint(path)]
    return results[0].meta.get("settings")


_SWEEPS: dict[Path, dict[str, Any] | None] = {}  # each sweep's record, read once per process


def _sweep_record(sweep_dir: Path) -> dict[str, Any] | None:
    """What this multirun is: its experiment (this job's choice) and the command-line
    overrides that can change a result, from the ``multirun.yaml`` Hydra wrote when the sweep
    started (read once per process: a refused run into the same folder rewrites it)."""
    if sweep_dir not in _SWEEPS:
        path = sweep_dir / "multirun.yaml"
        overrides = None
        if path.exists():
            overrides = {}
            for item in OmegaConf.load(path).hydra.overrides.task:
                key, _, value = str(item).lstrip("+~").partition("=")
                if _kept(key) and key != "experiment":
                    overrides[key] = value
        _SWEEPS[sweep_dir] = overrides
    overrides = _SWEEPS[sweep_dir]
    if overrides is None:
        return None
    experiment = HydraConfig.get().runtime.choices.get("experiment")
    return {"experiment": experiment, "overrides": overrides}


def check_sweep(cfg: DictConfig, out_dir: Path | None = None) -> None:
    """In a multirun, record the sweep in ``sweep.json`` in its folder, or refuse (one line)
    to run into a sweep folder another experiment or other overrides made, or one that holds
    finished or interrupted jobs (other than ``out_dir``, this job's) but no ``sweep.json``:
    what made them cannot be checked."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    sweep_dir = Path(HydraConfig.get().sweep.dir)
    record = _sweep_record(sweep_dir)
    if record is None:
        return
    path = sweep_dir / SWEEP_RECORD
    if not path.exists():
        others = [
            job
            for job in sorted(sweep_dir.iterdir())
            if job.is_dir()
            and job != out_dir
            and any((job / name).exists() for name in ("metrics.json", *CHECKPOINTS))
        ]
        if others:
            raise ValueError(
                f"{sweep_dir} holds jobs ({others[0].name}, ...) but no {SWEEP_RECORD}, so what "
                "made them cannot be checked against this sweep; use another hydra.sweep.dir, "
                "or move those jobs out"
            )
        write_json(record, path)
        return
    old = read_json(path)
    flat_old = {"experiment": old.get("experiment"), **old.get("overrides", {})}
    flat_new = {"experiment": record["experiment"], **record["overrides"]}
    diff = _first_difference(flat_old, flat_new)
    if diff:
        raise ValueError(
            f"{'resume=true: ' if cfg.resume else ''}{sweep_dir} holds a sweep made with {diff}; "
            "use another hydra.sweep.dir or delete it"
        )


MODEL_FILES = "model_files"  # the config key ``with_model_files`` adds


def with_model_files(cfg: DictConfig) -> DictConfig:
    """``cfg`` plus ``model_files``: the sha256 of ``model.checkpoint``'s content and of the
    source file that defines ``model._target_``. They enter the job's settings like any key,
    so a checkpoint file replaced, or a model's code edited, between a kill and a resume is
    refused instead of mixed into the map. (A missing file or source: not recorded.)"""
    files: dict[str, str] = {}
    checkpoint = OmegaConf.select(cfg, "model.checkpoint", default=None)
    if checkpoint and Path(str(checkpoint)).expanduser().is_file():
        files["checkpoint_sha256"] = _sha256(Path(str(checkpoint)).expanduser())
    source = _target_source(OmegaConf.select(cfg, "model._target_", default=None))
    if source is not None:
        files["code_sha256"] = _sha256(source)
    out = cfg.copy()
    OmegaConf.set_struct(out, False)
    out[MODEL_FILES] = files
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _target_source(target: Any) -> Path | None:
    """The source file that defines ``target`` (a dotted ``_target_``), if any: None when it
    does not import (``build_model`` refuses it then) or is built in."""
    if not target:
        return None
    try:
        file = inspect.getsourcefile(locate_target(str(target), "model._target_"))
    except (ValueError, TypeError):
        return None
    return Path(file) if file else None


def _writes_files() -> bool:
    """False on torchrun's ranks other than 0 (they share rank 0's folder and lock)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def job_folder(cfg: DictConfig, out_dir: Path) -> Iterator[None]:
    """Lock ``out_dir`` for this job (``erf.io.store.folder_lock``: a busy folder is a
    one-line error; under torchrun rank 0 holds it for all ranks), then refuse what resuming
    would mix (``check_sweep``, ``check_resume``; every rank checks, so all fail alike)."""
    lock = folder_lock(out_dir) if _writes_files() else contextlib.nullcontext()
    with lock:
        try:
            check_sweep(cfg, out_dir)
        except ValueError:
            _remove_if_new(out_dir)
            raise
        check_resume(cfg, out_dir)
        yield


def _remove_if_new(job_dir: Path) -> None:
    """Remove the job folder Hydra just made for a refused sweep job, when it holds nothing
    but Hydra's own files (``.hydra``, ``run.log``) and the lock: nothing is left behind."""
    if _writes_files() and {p.name for p in job_dir.iterdir()} <= {".hydra", "run.log", LOCK}:
        shutil.rmtree(job_dir, ignore_errors=True)


def completed_metrics(cfg: DictConfig, job_dir: Path) -> dict[str, Any] | None:
    """With ``resume=true``, the metrics of a job that already finished with this run's
    settings and whose result files are all whole (else None: the job runs again, saying why
    in one log line when its ``metrics.json`` exists)."""
    done = job_dir / "metrics.json"
    if not (cfg.resume and done.exists()):
        return None
    try:
        metrics = read_json(done)
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); rerunning the job", done, type(exc).__name__)
        return None
    config = metrics.get("config")
    _refuse(job_dir, None if config is None else settings(config), settings(cfg))
    record = metrics.get("files")
    if not record:
        log.warning("%s records no file checksums (older erf); rerunning the job", done)
        return None
    problem = check_files(job_dir, record)
    if problem:
        log.warning("%s is not complete: %s; rerunning the job", job_dir, problem)
        return None
    log.info("%s is complete; skipped (resume=true)", job_dir)
    return metrics


def load_checkpoint(path: Path) -> ERFResult:
    """A probe's partial result (``checkpoint.npz``)."""
    try:
        return load_result(path)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over"
        ) from None


def load_draws_checkpoint(path: Path) -> list[ERFResult]:
    """A many-draws probe's partial results, one per draw (``checkpoint_draws.npz``)."""
    try:
        return load_results(path)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it"
        ) from None


def load_training_state(path: Path) -> dict[str, Any]:
    """A training job's state after its last finished epoch (``train_checkpoint.pt``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"training checkpoint {path} is unreadable ({type(exc).__name__}); delete it to "
            "start over"
        ) from None
