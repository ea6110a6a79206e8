"""``experiment=benchmark``: time the probe against the public tools' per-image method, the
floor, the fast mode and shared-forward profiles (``erf.probe.bench``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from erf.app.build import (
    input_shape_for,
    layer_names,
    probe_options,
    refuse_probe,
    resolve_target,
    seeded_model,
)
from erf.app.job_kinds import job_kind
from erf.app.provenance import provenance
from erf.io.benchmark import format_benchmark, write_benchmark
from erf.probe.bench import BENCH_REFUSES
from erf.probe.bench import run_benchmark as bench
from erf.probe.measure import resolve_device

JOB = "experiment=benchmark"


def run_benchmark(cfg: DictConfig, model: nn.Module, input_shape, out_dir: Path) -> dict[str, Any]:
    """Time the methods of ``benchmark.methods``; write ``benchmark.csv``, ``benchmark.json``
    and ``benchmark.png`` and print the table. Settings it cannot honour are refused."""
    if cfg.probe.batch_size == "auto":
        raise ValueError("the benchmark needs a fixed probe.batch_size (an integer)")
    if cfg.inputs.source != "gaussian":
        raise ValueError("the benchmark uses its own seeded N(0,1) inputs: leave inputs=gaussian")
    options = probe_options(cfg, "gaussian")
    options.refuse(BENCH_REFUSES, f"{JOB} (its methods time those)", "probe.")
    refuse_probe(cfg, ("position", "draws"), f"{JOB} (it times one centre unit of one model)")
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
    record = {
        **context,
        "rows": rows,
        "ratios": out["ratios"],
        "multi_targets": multi,
        "provenance": provenance(device, "float32"),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    title = f"{context['model']} {input_shape[1]}x{input_shape[2]} -> {target} on {device}"
    write_benchmark(out_dir, record, title)
    print(format_benchmark(rows, out["ratios"]), flush=True)
    return record


@job_kind("benchmark", help="time the probe against the per-image method and the floor")
def benchmark_job(
    cfg: DictConfig, out_dir: Path, should_stop: Callable[[], bool] | None = None
) -> dict[str, Any]:
    """The benchmark kind: ``run_benchmark`` of the seeded model."""
    refuse_probe(cfg, ("draw_weight",), "probe.draws=1 (one network: no draws to pool)")
    model = seeded_model(cfg.model, cfg.seed)
    return run_benchmark(cfg, model, input_shape_for(cfg, model), out_dir)
