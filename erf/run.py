"""Hydra entry point: ``python -m erf.run [experiment=NAME] [overrides]``.

The only module that reads config and writes files. One job = build the model, compute its
TRF, probe its ERF, and write ``erf.npz``, ``metrics.json`` and ``heatmap.png`` into the job
directory. Sweeps (``experiment=...``) are Hydra multiruns; their summary is ``erf.report``.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
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

import erf
from erf.plots import erf_figure, save_figure
from erf.probe import measure_erf
from erf.store import save_result, write_json
from erf.summary import erf_metrics
from erf.theory import TheoreticalRF, theoretical_rf

log = logging.getLogger("erf")

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def input_shape_for(cfg: DictConfig, model: nn.Module, trf: TheoreticalRF) -> tuple[int, int, int]:
    """(C, H, W): ``inputs.channels``/``inputs.size`` or, when null, the model's first conv's
    input channels and the TRF plus a 16-pixel margin (at least 32) per axis."""
    channels = cfg.inputs.channels
    if channels is None:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            raise ValueError("inputs.channels is null and the model has no Conv2d to infer it from")
        channels = first_conv.in_channels
    if cfg.inputs.size is None:
        h, w = (max(32, s + 16) for s in trf.size)
    else:
        h, w = (int(v) for v in cfg.inputs.size)
    return int(channels), int(h), int(w)


def model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The model's scalar/list config values (what a sweep varies), without Hydra keys."""
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
        "erf_version": erf.__version__,
        "git_commit": commit,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "dtype": dtype,
    }


def run_job(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """One measurement: probe, metrics, files. Returns the metrics dict written."""
    if cfg.probe.dtype not in DTYPES:
        raise ValueError(f"probe.dtype={cfg.probe.dtype!r}; allowed: {list(DTYPES)}")
    model = instantiate(cfg.model, _convert_="all")
    trf_chain = theoretical_rf(model)
    input_shape = input_shape_for(cfg, model, trf_chain)
    trf = theoretical_rf(model, input_shape=input_shape)
    position = cfg.probe.position
    if not isinstance(position, str):
        position = tuple(int(v) for v in position)
    result = measure_erf(
        model,
        input_shape,
        n_samples=cfg.probe.n_samples,
        batch_size=cfg.probe.batch_size,
        target=cfg.probe.target,
        position=position,
        channel=cfg.probe.channel,
        reduce=cfg.probe.reduce,
        inputs=cfg.inputs.source,
        device=cfg.device,
        dtype=DTYPES[cfg.probe.dtype],
        seed=cfg.seed,
        on_nonfinite=cfg.probe.on_nonfinite,
    )
    metrics = {
        **model_settings(cfg),
        **erf_metrics(result, trf if cfg.probe.target is None else None),
    }
    warnings = []
    if metrics.get("trf_clipped"):
        warnings.append(
            f"input {input_shape[1]}x{input_shape[2]} is smaller than the TRF "
            f"{trf.size[0]}x{trf.size[1]} around the probed unit: the ERF is clipped"
        )
    if metrics["degenerate"]:
        warnings.append(f"degenerate ERF map: {metrics['degenerate']}; no size or fit reported")
    for w in warnings:
        log.warning(w)
    metrics["warnings"] = warnings
    metrics["wall_time_s"] = result.meta["wall_time_s"]
    metrics["provenance"] = provenance(result.meta["device"], result.meta["dtype"])
    metrics["config"] = OmegaConf.to_container(cfg, resolve=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_result(result, out_dir / "erf.npz")
    write_json(metrics, out_dir / "metrics.json")
    title = ", ".join(f"{k}={metrics[k]}" for k in ("depth", "init", "activation") if k in metrics)
    title += (
        f"\nERF size {metrics['erf_size']:.2f}, TRF {metrics.get('trf_size', float('nan')):.0f}"
    )
    save_figure(
        erf_figure(
            result.map,
            trf_interval=metrics.get("trf_interval"),
            fit=metrics.get("fit"),
            title=title,
        ),
        str(out_dir / "heatmap.png"),
    )
    log.info(
        "ERF size %.2f px, TRF %s, sigma (%.2f, %.2f), fit R2 %.3f, %d samples in %.1fs",
        metrics["erf_size"],
        metrics.get("trf_size"),
        metrics["sigma_x"],
        metrics["sigma_y"],
        metrics["fit_r2"],
        result.n_samples,
        result.meta["wall_time_s"],
    )
    return metrics


def one_line(exc: BaseException) -> str:
    """The root cause of a (possibly Hydra-wrapped) error as one line."""
    root = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
    return " ".join(str(root).split())


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        run_job(cfg, out_dir)
    except (ValueError, TypeError, FileNotFoundError, InstantiationException) as exc:
        raise SystemExit(f"error: {one_line(exc)}") from None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        print(f"results: {out_dir}", file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
