"""Hydra entry point: ``python -m erf.run [experiment=NAME] [overrides]``.

The only module that reads config and writes files. One job = build the model, compute its
TRF, probe its ERF, and write ``erf.npz``, ``metrics.json`` and ``heatmap.png`` into the job
directory. With ``profile.layers`` set, one job probes several layers of the same model.
Sweeps (``experiment=...``) are Hydra multiruns; their summary is ``erf.report``.
"""

from __future__ import annotations

import copy
import logging
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.analysis.summary import erf_metrics
from erf.app import torchrun
from erf.app.config import CONFIG_DIR
from erf.app.validate import ConfigError, preflight, validate
from erf.io.plots import erf_figure, save_figure
from erf.io.store import (
    load_result,
    load_results,
    read_json,
    save_result,
    save_results,
    write_json,
    write_text,
)
from erf.nets.zoo import load_checkpoint
from erf.probe import distributed
from erf.probe.bench import BENCH_REFUSES
from erf.probe.inputs import RANDOM_SOURCES, image_folder
from erf.probe.measure import ProbeInterrupted, probe_units, resolve_device
from erf.probe.options import DTYPES, SPEED_KEYS, ProbeOptions
from erf.result import ERFResult
from erf.rf import TheoreticalRF, theoretical_rf
from erf.rf.graph import layer_table
from erf.rf.targets import auto_target, stage_layers
from erf.version import __version__

log = logging.getLogger("erf")

DEFAULT_SIZE = 224  # input side for models whose TRF cannot size the input (graphs, global RFs)


def build_model(model_cfg: DictConfig) -> nn.Module:
    """Instantiate ``model._target_`` with the other keys; then load ``checkpoint`` if set."""
    spec = OmegaConf.to_container(model_cfg, resolve=True)
    checkpoint = spec.pop("checkpoint", None)
    model = instantiate(spec, _convert_="all")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model._target_ built a {type(model).__name__}, not a torch nn.Module")
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model


def _chain_trf(model: nn.Module) -> TheoreticalRF | None:
    """Closed-form TRF when the model is a plain chain, else None."""
    try:
        return theoretical_rf(model)
    except (TypeError, ValueError):
        return None


def input_shape_for(cfg: DictConfig, model: nn.Module) -> tuple[int, int, int]:
    """(C, H, W) from ``inputs.channels``/``inputs.size``. When null: the in_channels of the
    model's first conv, and for chains the TRF plus a 16-pixel margin (at least 32) per axis,
    for other models 224."""
    channels = cfg.inputs.channels
    if channels is None:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            raise ValueError("inputs.channels is null and the model has no Conv2d to infer it from")
        channels = first_conv.in_channels
    if cfg.inputs.size is not None:
        h, w = (int(v) for v in cfg.inputs.size)
    else:
        chain = _chain_trf(model)
        h, w = (max(32, s + 16) for s in chain.size) if chain else (DEFAULT_SIZE, DEFAULT_SIZE)
    if min(channels, h, w) < 1:
        raise ValueError(f"input shape must be positive, got {(channels, h, w)}")
    return int(channels), int(h), int(w)


def build_inputs(cfg: DictConfig, input_shape: tuple[int, int, int]) -> str | Iterable:
    """The probe's input source: a random source name, or a DataLoader for ``imagefolder``."""
    source = cfg.inputs.source
    if source in RANDOM_SOURCES:
        return source
    if source == "imagefolder":
        return image_folder(
            cfg.inputs.root,
            input_shape[1:],
            cfg.probe.batch_size,
            normalize=cfg.inputs.get("normalize", True),
            seed=cfg.seed,
        )
    raise ValueError(f"inputs.source={source!r}; allowed: {[*RANDOM_SOURCES, 'imagefolder']}")


def resolve_target(target: str | None, model: nn.Module, input_shape) -> str | None:
    """``auto`` -> the last local feature map (``erf.rf.targets.auto_target``); else as given."""
    if target != "auto":
        return target
    return auto_target(layer_table(model, input_shape))


def model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The model's config values (what a sweep varies), without Hydra keys."""
    settings = OmegaConf.to_container(cfg.model, resolve=True)
    return {k: v for k, v in settings.items() if not k.startswith("_")}


def provenance(device: str, dtype: str) -> dict[str, Any]:
    """Versions, git commit (when run from a checkout), device and dtype of a run."""
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "erf_version": __version__,
        "git_commit": commit,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "dtype": dtype,
    }


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT/SIGTERM ask the probe to checkpoint and stop after the current
    batch (a second SIGINT interrupts at once). Yields the "was a stop asked for?" poll."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, _frame):
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.append(signum)
        log.warning("%s: saving a checkpoint after this batch", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _load_checkpoint(path: Path) -> ERFResult:
    try:
        return load_result(path)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over"
        ) from None


def crop_mode(value: Any) -> str:
    """``probe.crop`` as measure_erf's mode: YAML reads a bare off/on as false/true."""
    return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value


def probe_options(cfg: DictConfig, inputs: str | Iterable) -> ProbeOptions:
    """The probe's options from ``probe.*``, ``seed`` and ``device``, probing ``inputs`` (a
    random source name or an iterable of batches: ``build_inputs``). Every job (measure,
    profile, draws, torchrun, benchmark, training) takes its options from here."""
    p = cfg.probe
    return ProbeOptions(
        n_samples=p.n_samples,
        batch_size=p.batch_size if p.batch_size == "auto" else int(p.batch_size),
        channel=p.channel,
        reduce=p.reduce,
        inputs=inputs,
        device=cfg.device,
        dtype=DTYPES[p.dtype],
        seed=cfg.seed,
        on_nonfinite=p.on_nonfinite,
        checkpoint_every=p.checkpoint_every,
        fast=p.fast,
        channels_last=p.channels_last,
        compile=p.compile,
        crop=crop_mode(p.crop),
    )


def _position(cfg: DictConfig) -> str | tuple[int, int]:
    position = cfg.probe.position
    return position if isinstance(position, str) else tuple(int(v) for v in position)


def probe_one(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    target: str | None,
    job_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[ERFResult, TheoreticalRF]:
    """Measure the ERF of ``target`` and compute its TRF.

    Partial sums go to ``job_dir/checkpoint.npz`` every ``probe.checkpoint_every`` batches
    and on a stop request; with ``resume=true`` an existing checkpoint is continued.
    """
    ((result, trf),) = probe_many(cfg, model, input_shape, [target], [job_dir], should_stop)
    return result, trf


def probe_many(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    targets: list[str | None],
    job_dirs: list[Path],
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[ERFResult, TheoreticalRF]]:
    """ERF and TRF of several targets of one model from one forward pass per batch
    (``erf.measure_erfs``), each with its own ``checkpoint.npz`` in its job folder.

    With ``resume=true``, targets whose checkpoints stopped at the same sample continue
    together; targets at different samples (say, a profile interrupted while it still ran
    one layer at a time) run as separate groups, fresh targets as one more group.
    """
    position = _position(cfg)
    trfs = [theoretical_rf(model, input_shape=input_shape, target=t) for t in targets]
    options = probe_options(cfg, build_inputs(cfg, input_shape))
    if distributed.active():  # torchrun: samples sharded over the ranks, no checkpoints
        options.refuse(("batch_size",), "torchrun (give a number)", prefix="probe.")
        return [
            (
                distributed.measure_erf_sharded(
                    model,
                    input_shape,
                    target=t,
                    position=position,
                    options=options,
                    should_stop=should_stop,
                ),
                trf,
            )
            for t, trf in zip(targets, trfs)
        ]
    resumes = []
    for job_dir in job_dirs:
        checkpoint = job_dir / "checkpoint.npz"
        resume = _load_checkpoint(checkpoint) if cfg.resume and checkpoint.exists() else None
        if resume is not None:
            log.info("resuming from %s (%d samples done)", checkpoint, resume.meta["samples_seen"])
        resumes.append(resume)
        job_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[int, list[int]] = {}
    for i, resume in enumerate(resumes):
        groups.setdefault(-1 if resume is None else resume.meta["samples_seen"], []).append(i)
    if len(targets) > 1:
        log.info("probing %s from one forward pass per batch", ", ".join(map(str, targets)))
    if len(groups) > 1:
        log.info(
            "resumed layers stopped at different samples: %d probes, one per group", len(groups)
        )
    results: dict[int, ERFResult] = {}
    for members in groups.values():
        dirs = [job_dirs[i] for i in members]

        def save(partials: list[ERFResult], dirs: list[Path] = dirs) -> None:
            for partial, job_dir in zip(partials, dirs):
                save_result(partial, job_dir / "checkpoint.npz")

        found = probe_units(
            model,
            input_shape,
            [(targets[i], position) for i in members],
            options,
            resume=None if resumes[members[0]] is None else [resumes[i] for i in members],
            on_checkpoint=save,
            should_stop=should_stop,
        )
        results.update(zip(members, found))
    return [(results[i], trfs[i]) for i in range(len(targets))]


def job_metrics(cfg: DictConfig, result: ERFResult, trf: TheoreticalRF) -> dict[str, Any]:
    """Settings, ERF/TRF metrics, warnings and provenance of one measurement."""
    metrics = {
        **({"label": cfg.label} if cfg.get("label") else {}),
        **model_settings(cfg),
        "target": result.target,
        **erf_metrics(result, trf, r2_min=cfg.fit.r2_min),
    }
    metrics["inputs"] = cfg.inputs.source
    if cfg.inputs.source == "imagefolder":
        metrics["inputs_root"] = cfg.inputs.root
    warnings = []
    if getattr(trf, "is_global", False):
        warnings.append(
            "the target's TRF is global (adaptive pooling / linear): ERF/TRF is vs the input"
        )
    if metrics.get("trf_clipped"):
        h, w = result.shape
        warnings.append(
            f"input {h}x{w} is smaller than the TRF {trf.size[0]}x{trf.size[1]} around the "
            "probed unit: the ERF is clipped"
        )
    if metrics["degenerate"]:
        warnings.append(f"degenerate ERF map: {metrics['degenerate']}; no size or fit reported")
    if metrics.get("fit_problem") and not metrics["degenerate"]:
        warnings.append(metrics["fit_problem"])
    if result.n_nonfinite:
        warnings.append(f"{result.n_nonfinite} sample(s) with NaN/Inf gradients were skipped")
    for w in warnings:
        log.warning(w)
    metrics["warnings"] = warnings
    metrics["wall_time_s"] = result.meta["wall_time_s"]
    metrics["batch_size"] = result.meta["batch_size"]  # the one used (probe.batch_size=auto)
    for key in ("fast", "channels_last", "compile", "crop", "n_units"):
        if key in result.meta:
            metrics[key] = result.meta[key]
    metrics["provenance"] = provenance(result.meta["device"], result.meta["dtype"])
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
    return metrics


def _title(metrics: dict[str, Any]) -> str:
    keys = ("label", "name", "target", "depth", "blocks", "init", "activation")
    head = ", ".join(f"{k}={metrics[k]}" for k in keys if metrics.get(k) is not None)
    trf = metrics.get("trf_size", float("nan"))
    return f"{head}\nERF size {metrics['erf_size']:.2f}, TRF {trf:.0f}"


def write_job(out_dir: Path, result: ERFResult, metrics: dict[str, Any], scale: str) -> None:
    """erf.npz, heatmap.png, then metrics.json (the completion marker), each written
    atomically; the probe checkpoint is removed once they are all in place. Under torchrun
    only rank 0 writes."""
    if not distributed.is_main_process():
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    save_result(result, out_dir / "erf.npz")
    fig = erf_figure(
        result.map,
        trf_interval=metrics.get("trf_interval"),
        fit=metrics.get("fit"),
        title=_title(metrics),
        scale=scale,
        warning="; ".join(metrics.get("warnings", [])) or None,
    )
    save_figure(fig, str(out_dir / "heatmap.png"))
    write_json(metrics, out_dir / "metrics.json")
    (out_dir / "checkpoint.npz").unlink(missing_ok=True)
    for stale in out_dir.glob(".*.tmp"):  # temp files of a run killed mid-write
        stale.unlink(missing_ok=True)
    log.info(
        "%sERF size %.2f px, TRF %s, sigma (%.2f, %.2f), fit R2 %.3f, %d samples in %.1fs",
        f"{result.target}: " if result.target else "",
        metrics["erf_size"],
        metrics.get("trf_size"),
        metrics["sigma_x"],
        metrics["sigma_y"],
        metrics["fit_r2"],
        result.n_samples,
        result.meta["wall_time_s"],
    )


def _completed(cfg: DictConfig, job_dir: Path) -> dict[str, Any] | None:
    """With ``resume=true``, the metrics of a job that already finished (else None)."""
    done = job_dir / "metrics.json"
    if cfg.resume and done.exists():
        log.info("%s is complete; skipped (resume=true)", job_dir)
        return read_json(done)
    return None


def run_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """One measurement (or, with ``profile.layers``, a layer profile; with ``suite``, a
    suite of experiments, ``erf.app.suite``). Returns its metrics."""
    validate(cfg)
    if cfg.get("suite"):
        from erf.app.suite import run_suite

        return run_suite(cfg, out_dir)
    if cfg.get("train") is not None:  # a training job: ERF at init and after training
        from erf.app.trainjob import run_training

        return run_training(cfg, out_dir, should_stop)
    model = build_model(cfg.model)
    input_shape = input_shape_for(cfg, model)
    if cfg.get("benchmark") and cfg.benchmark.get("run"):
        return run_benchmark(cfg, model, input_shape, out_dir)
    draws = cfg.probe.get("draws", 1)
    if cfg.get("profile") and cfg.profile.get("layers"):
        if draws > 1:
            raise ValueError("probe.draws > 1 does not combine with profile.layers")
        return run_profile(cfg, model, input_shape, out_dir, should_stop)
    finished = _completed(cfg, out_dir)
    if finished is not None:
        return finished
    target = resolve_target(cfg.probe.target, model, input_shape)
    if draws > 1:
        if distributed.active():
            raise ValueError("probe.draws > 1 does not run under torchrun; use one process")
        return run_draws(cfg, model, input_shape, target, out_dir, should_stop)
    result, trf = probe_one(cfg, model, input_shape, target, out_dir, should_stop)
    metrics = job_metrics(cfg, result, trf)
    write_job(out_dir, result, metrics, cfg.plot.scale)
    return metrics


def layer_names(spec: Any, key: str, model: nn.Module, input_shape) -> list[str]:
    """A list of module names from ``spec``: "stages" (one layer per resolution,
    ``erf.rf.targets.stage_layers``) or names (``[1, 3]`` for nn.Sequential children "1", "3")."""
    if isinstance(spec, str):
        if spec != "stages":
            raise ValueError(f"{key}={spec!r}; use 'stages' or a list of module names")
        return stage_layers(layer_table(model, input_shape))
    return [str(name) for name in spec]


def run_profile(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """ERF and TRF of several layers of one model: ``profile.layers`` is a list of module
    names or "stages" (one layer per resolution, ``erf.rf.targets.stage_layers``). Each layer is
    a sub-job in ``out_dir/<index>_<layer>``; the profile summary and figures sit in out_dir."""
    from erf.app.report import write_profile

    layers = layer_names(cfg.profile.layers, "profile.layers", model, input_shape)
    dirs = [out_dir / f"{i:02d}_{name}" for i, name in enumerate(layers)]
    todo = [i for i, d in enumerate(dirs) if _completed(cfg, d) is None]
    # One forward per batch for all layers (profile.shared_forward), or one probe per layer.
    chunks = [todo] if cfg.profile.get("shared_forward", True) else [[i] for i in todo]
    for chunk in filter(None, chunks):
        found = probe_many(
            cfg, model, input_shape, [layers[i] for i in chunk], [dirs[i] for i in chunk],
            should_stop,
        )  # fmt: skip
        for i, (result, trf) in zip(chunk, found):
            metrics = job_metrics(cfg, result, trf)
            metrics["layer_index"] = i
            write_job(dirs[i], result, metrics, cfg.plot.scale)
    if not distributed.is_main_process():
        return {"layers": list(layers)}
    return {"layers": list(layers), "summary": write_profile(out_dir, scale=cfg.plot.scale)}


def model_for_seed(cfg: DictConfig, seed: int) -> nn.Module:
    """The configured model built with ``seed`` and ``model.seed`` (when it has one) set to
    ``seed``; the global torch RNG is seeded too (torchvision/timm inits draw from it) and
    restored afterwards."""
    cfg = copy.deepcopy(cfg)
    cfg.seed = int(seed)
    if "seed" in cfg.model:
        cfg.model.seed = int(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build_model(cfg.model)


def run_draws(
    cfg: DictConfig,
    model: nn.Module,
    input_shape,
    target: str | None,
    out_dir: Path,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """``probe.draws`` = M > 1 random networks (seeds seed .. seed + M - 1) in one pass
    (``erf.probe.draws``): erf.npz and the heatmap hold the mean map, metrics.json its metrics plus
    ``draws`` (per-draw sizes, ``erf.analysis.draw_stats``), draws.npz the per-draw maps."""
    from erf.analysis.draw_stats import draw_metrics, pool_draws
    from erf.probe.draws import measure_erf_draws

    options = probe_options(cfg, build_inputs(cfg, input_shape))
    options.refuse((*SPEED_KEYS, "batch_size"), "probe.draws > 1", prefix="probe.")
    trf = theoretical_rf(model, input_shape=input_shape, target=target)
    checkpoint = out_dir / "checkpoint_draws.npz"
    resume = None
    if cfg.resume and checkpoint.exists():
        try:
            resume = load_results(checkpoint)
        except Exception as exc:
            raise ValueError(
                f"checkpoint {checkpoint} is unreadable ({type(exc).__name__}); delete it"
            ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    results = measure_erf_draws(
        lambda seed: model_for_seed(cfg, seed),
        input_shape,
        draws=cfg.probe.draws,
        target=target,
        position=_position(cfg),
        resume=resume,
        on_checkpoint=lambda partials: save_results(partials, checkpoint),
        options=options,
        should_stop=should_stop,
    )
    pooled = pool_draws(results)
    metrics = job_metrics(cfg, pooled, trf)
    metrics["draws"] = draw_metrics(results, trf, r2_min=cfg.fit.r2_min)
    save_results(results, out_dir / "draws.npz")
    write_job(out_dir, pooled, metrics, cfg.plot.scale)
    checkpoint.unlink(missing_ok=True)
    return metrics


def run_benchmark(cfg: DictConfig, model: nn.Module, input_shape, out_dir: Path) -> dict[str, Any]:
    """``experiment=benchmark``: time the probe against the public tools' per-image method,
    the floor, the fast mode and shared-forward profiles (``erf.probe.bench``); write
    ``benchmark.csv``, ``benchmark.json`` and ``benchmark.png`` and print the table."""
    from erf.app.report import csv_text
    from erf.io.plots import benchmark_figure
    from erf.probe.bench import run_benchmark as bench

    if cfg.probe.batch_size == "auto":
        raise ValueError("the benchmark needs a fixed probe.batch_size (an integer)")
    if cfg.inputs.source != "gaussian":
        raise ValueError("the benchmark uses its own seeded N(0,1) inputs: leave inputs=gaussian")
    options = probe_options(cfg, "gaussian")
    options.refuse(BENCH_REFUSES, "experiment=benchmark (its methods time those)", "probe.")
    if cfg.benchmark.threads:
        torch.set_num_threads(cfg.benchmark.threads)
    target = resolve_target(cfg.probe.target, model, input_shape)
    methods = list(cfg.benchmark.methods)
    multi = (
        layer_names(cfg.benchmark.multi_targets, "benchmark.multi_targets", model, input_shape)
        if "multi" in methods
        else []
    )
    out = bench(
        model,
        input_shape,
        target=target,
        options=options,
        warmup=cfg.benchmark.warmup,
        repeats=cfg.benchmark.repeats,
        methods=methods,
        multi_targets=multi,
    )
    device = str(resolve_device(cfg.device))
    context = {
        "model": cfg.model.get("name", cfg.model.get("_target_")),
        "input_h": input_shape[1],
        "input_w": input_shape[2],
        "target": target,
        "device": device,
        "threads": torch.get_num_threads(),
    }
    rows = [{**context, **row} for row in out["rows"]]
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_text(csv_text(rows, columns), out_dir / "benchmark.csv")
    record = {
        **context,
        "rows": rows,
        "ratios": out["ratios"],
        "multi_targets": multi,
        "provenance": provenance(device, "float32"),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json(record, out_dir / "benchmark.json")
    title = f"{context['model']} {input_shape[1]}x{input_shape[2]} -> {target} on {device}"
    save_figure(benchmark_figure(rows, title), str(out_dir / "benchmark.png"))
    print(format_benchmark(rows, out["ratios"]), flush=True)
    return record


BENCH_COLUMNS = ("method", "images_per_s", "best_s", "median_s", "map_corr", "luo_rel_diff")


def format_benchmark(rows: list[dict[str, Any]], ratios: dict[str, float]) -> str:
    """The benchmark's table and ratios as text."""
    from erf.app.report import format_rows

    ratio_text = ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
    return f"{format_rows(rows, BENCH_COLUMNS)}\nratios: {ratio_text}"


def one_line(exc: BaseException) -> str:
    """The root cause of a (possibly Hydra-wrapped) error as one line."""
    root = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
    return " ".join(str(root).split())


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        with stop_requests() as should_stop:
            run_job(cfg, out_dir, should_stop)
    except ProbeInterrupted as stop:
        where = "hydra.sweep.dir" if hydra_cfg.mode == RunMode.MULTIRUN else "hydra.run.dir"
        folder = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else out_dir
        print(
            f"interrupted after {stop.partial.meta['samples_seen']} samples; checkpoint saved in "
            f"{out_dir}. Continue with the same command plus: resume=true {where}={folder}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, InstantiationException) as exc:
        raise SystemExit(f"error: {one_line(exc)}") from None
    if hydra_cfg.mode != RunMode.MULTIRUN and distributed.is_main_process():
        print(f"results: {out_dir}", file=sys.stdout, flush=True)


# Hydra's flags that take the next argument as their value (``--cfg job``, ``-cn NAME``).
_FLAGS_WITH_VALUE = {
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--experimental-rerun",
}  # fmt: skip
_INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def command_line_overrides(args: list[str]) -> list[str]:
    """The ``key=value`` overrides among ``erf.run``'s arguments: flags and their values
    (``--cfg job``, ``--info defaults``) are not overrides."""
    overrides, previous = [], ""
    for arg in args:
        is_value = previous in _FLAGS_WITH_VALUE or (
            previous in ("--info", "-i") and arg in _INFO_TOPICS
        )
        if not arg.startswith("-") and not is_value:
            overrides.append(arg)
        previous = "" if is_value else arg
    return overrides


def cli() -> None:
    """``python -m erf.run``: check the overrides (one-line errors, exit 2), then run Hydra."""
    overrides = command_line_overrides(sys.argv[1:])
    try:
        preflight(overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if distributed.launched():  # torchrun: one output folder for all ranks
        sys.argv += torchrun.hydra_overrides(overrides)
    main()


if __name__ == "__main__":
    cli()
