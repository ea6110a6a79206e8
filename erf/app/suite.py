"""A suite of experiments in one command: ``python -m erf.run experiment=paper_figures``.

Glue like ``erf.run`` (it writes files): each experiment of ``suite.experiments`` runs as its
own ``python -m erf.run experiment=NAME`` process (its sweep, its summary callback) into
``<out_dir>/<NAME>``, with the suite's scale, device, seed and resume passed on. Then every
figure and summary table the experiments wrote is copied into ``<out_dir>/figures`` and
``suite.json`` records each experiment's command, exit status and wall time, and the hardware.
Its paths are relative to the suite's run folder (``dir``, ``hydra.sweep.dir``, ``figures``) and
its commands start with ``python``, so a record names no folder of the machine that made it and
each command can be run again from that folder.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from erf.app.config import EXPERIMENT_DIR
from erf.app.job_kinds import job_kind
from erf.io.store import atomic_write, write_json

log = logging.getLogger("erf")

COLLECTED = ("*.png", "*.pdf", "*.svg", "summary.csv", "growth.json", "slopes.json")
RELATIVE_TO = "the folder holding this suite.json (run the commands there)"


def hardware(device: str) -> str:
    """The machine in words: the GPU name when ``device`` resolves to CUDA, else the CPU."""
    if device != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return f"CPU {_cpu_name()}, {os.cpu_count()} cores"


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sweeps_seed(name: str) -> bool:
    """Whether experiment ``name`` sweeps ``seed`` itself (e.g. trained_vs_untrained repeats
    every setting over ``scale.<study>.seeds``): a suite's ``seed=N`` would replace that sweep
    by the one seed N, so the suite leaves the experiment its own seeds."""
    text = (EXPERIMENT_DIR / f"{name}.yaml").read_text()
    params = OmegaConf.create(text).get("hydra", {}).get("sweeper", {}).get("params", {}) or {}
    return "seed" in params


def experiment_command(cfg: DictConfig, name: str, out_dir: Path) -> list[str]:
    """The ``erf.run`` command of one suite member, writing into ``out_dir / name``; the
    suite's seed is passed on unless the experiment sweeps its own seeds (``sweeps_seed``)."""
    seed = [] if sweeps_seed(name) else [f"seed={cfg.seed}"]
    return [
        sys.executable,
        "-m",
        "erf.run",
        f"experiment={name}",
        f"scale={cfg.scale.name}",
        f"device={cfg.device}",
        *seed,
        f"resume={str(bool(cfg.resume)).lower()}",
        f"hydra.sweep.dir={out_dir / name}",
    ]


def recorded_command(cfg: DictConfig, name: str) -> str:
    """The command of one suite member as ``suite.json`` records it: ``python`` for the
    interpreter and the output folder relative to the suite's run folder."""
    return " ".join(["python", *experiment_command(cfg, name, Path())[1:]])


def collect_figures(out_dir: Path, names: list[str]) -> list[str]:
    """Copy each experiment's top-level figures and tables to ``out_dir/figures`` as
    ``<experiment>__<file>``; return the copied names."""
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        for pattern in COLLECTED:
            for path in sorted((out_dir / name).glob(pattern)):
                target = figures / f"{name}__{path.name}"
                atomic_write(target, lambda f, path=path: f.write(path.read_bytes()))
                copied.append(target.name)
    return copied


@job_kind(
    "suite",
    help="run every experiment of suite.experiments in turn (experiment=paper_figures)",
    owns=("suite",),
    locked=False,
)
def run_suite(cfg: DictConfig, out_dir: Path, should_stop: Any = None) -> dict[str, Any]:
    """Run every experiment of ``cfg.suite.experiments`` in turn (a failure is recorded and
    the next one still runs); collect figures; write ``suite.json``. Raises RuntimeError
    naming the failed experiments at the end, if any."""
    names = [str(n) for n in cfg.suite.experiments]
    folder = EXPERIMENT_DIR
    available = sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "paper_figures")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"suite.experiments: unknown {unknown}; available: {available}")
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "scale": cfg.scale.name,
        "device": cfg.device,
        "hardware": hardware(cfg.device),
        "paths_relative_to": RELATIVE_TO,
        "experiments": [],
    }
    start = time.perf_counter()
    for name in tqdm(names, desc="paper figures", unit="experiment"):
        command = experiment_command(cfg, name, out_dir)
        log.info("%s: %s", name, " ".join(command[1:]))
        t0 = time.perf_counter()
        code = subprocess.run(command, check=False).returncode
        entry = {
            "name": name,
            "command": recorded_command(cfg, name),
            "returncode": code,
            "wall_time_s": round(time.perf_counter() - t0, 1),
            "dir": name,
        }
        record["experiments"].append(entry)
        log.info("%s: exit %d after %.0f s", name, code, entry["wall_time_s"])
        write_json(record, out_dir / "suite.json")
        if code == 130:  # the experiment saved a checkpoint after SIGINT/SIGTERM: stop here
            raise RuntimeError(
                f"interrupted during {name}; continue with the same command plus: "
                f"resume=true hydra.run.dir={out_dir}"
            )
    record["wall_time_s"] = round(time.perf_counter() - start, 1)
    record["figures"] = collect_figures(out_dir, names)
    write_json(record, out_dir / "suite.json")
    failed = [e["name"] for e in record["experiments"] if e["returncode"] != 0]
    if failed:
        raise RuntimeError(f"experiments failed: {', '.join(failed)}; see {out_dir}/suite.json")
    return record
