"""The six steps of the GPU run: for each, its budget (the least time worth starting it with,
the most it may take), the command it runs and the reader of the results its job wrote.

- ``install``: the carried wheels of hydra-core, omegaconf and antlr4-python3-runtime, then
  the project, with pip and no network (``gpu_install.py``; ``--skip-install``,
  ``--dry-run-install``).
- ``bench224``: ``experiment=benchmark``, ResNet-50 at 224 (probe, per_image, floor, fast).
- ``bench1024``: the same at 1024 (probe, per_image, fast).
- ``draws``: one pass over 20 random draws of a depth-20 conv stack vs one draw.
- ``suite``: ``experiment=paper_figures scale=paper`` (every Luo study; resumable).
- ``compile``: probe vs ``probe.compile=true`` at 224, last and only if the budget has room.

Every step but ``install`` is one ``python -m erf.run`` process (``run_step``). The functions
take the ``Run`` of ``run_all`` (its ``args``, ``sizes``, ``py`` and ``env``). Standard
library only.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gpu_install as install
from gpu_common import Step, last_line, run_process, write_json

if TYPE_CHECKING:
    import argparse

    from run_all import Run

# Sizes: "full" for the GPU run, "tiny" for the rehearsal (--tiny). See README.md, "Budget".
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "model": "resnet50",
        "small": 224, "n_small": 2048, "batch_small": 256,
        "large": 1024, "n_large": 256, "batch_large": 16,
        "repeats": 2,
        "draws": 20, "draws_depth": 20, "draws_channels": 32, "draws_size": 64,
        "draws_n": 64, "draws_batch": 64,
        "scale": "paper", "suite_experiments": None,
        "n_compile": 2048,
    },
    "tiny": {
        "model": "resnet18",
        "small": 32, "n_small": 4, "batch_small": 2,
        "large": 64, "n_large": 2, "batch_large": 2,
        "repeats": 1,
        "draws": 3, "draws_depth": 4, "draws_channels": 4, "draws_size": 16,
        "draws_n": 2, "draws_batch": 2,
        "scale": "tiny", "suite_experiments": "depth_sweep",
        "n_compile": 2,
    },
}  # fmt: skip
TINY_PLAN = (5, None)  # --tiny: every step starts with 5 s left and may take the rest


def sizes(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes of the run: full or tiny (--tiny), then any size option given."""
    out = dict(SIZES["tiny" if args.tiny else "full"])
    for key in ("model", "n_small", "batch_small", "n_large", "batch_large", "repeats", "draws",
                "suite_experiments"):  # fmt: skip
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if out["suite_experiments"] == "all":
        out["suite_experiments"] = None
    return out


# -- the erf steps: one `python -m erf.run` each ---------------------------------------------


def run_step(run: Run, step: Step, timeout: float) -> None:
    """Run an erf step's command under ``timeout``, then read its results into ``step``."""
    command, env = run.command(step.name)
    if step.name == "compile" and run.args.tiny:
        step.result["note"] = "TORCH_COMPILE_DISABLE=1 (--tiny rehearses the plumbing only)"
    step.command = command
    step.log = f"logs/{step.name}.log"
    log = run.args.work / step.log
    status, code, wall = run_process(command, log, timeout, env, run.args.grace)
    step.status, step.returncode, step.wall_time_s = status, code, wall
    if status == "failed":
        step.reason = last_line(log) or f"exit {code}"
    elif status == "timed out":
        step.reason = f"past its timeout of {timeout:.0f} s; stopped"
    try:
        step.result.update(SPECS[step.name].collect(run, step))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if step.status == "ok":
            step.status, step.reason = "failed", f"unreadable results: {exc}"


def erf_run(run: Run, *overrides: str) -> list[str]:
    return [run.py, "-m", "erf.run", *overrides, f"device={run.args.device}", "seed=0"]


def bench_dir(run: Run, size: int, suffix: str = "") -> Path:
    return run.args.work / "benchmarks" / f"{run.args.prefix}_{run.sizes['model']}_{size}{suffix}"


def draws_dir(run: Run) -> Path:
    return run.args.work / "benchmarks" / f"{run.args.prefix}_draws"


def suite_dir(run: Run) -> Path:
    return run.args.work / "luo2016"


# benchmarks: bench224, bench1024, compile


def bench_command(run: Run, size: int, n: int, batch: int, methods: str, out: Path) -> list[str]:
    s = run.sizes
    return erf_run(
        run,
        "experiment=benchmark",
        f"model.name={s['model']}",
        f"inputs.size=[{size},{size}]",
        f"probe.n_samples={n}",
        f"probe.batch_size={batch}",
        f"benchmark.repeats={s['repeats']}",
        "benchmark.warmup=1",
        f"benchmark.methods=[{methods}]",
        f"hydra.run.dir={out}",
    )


def bench224_command(run: Run) -> tuple[list[str], dict[str, str]]:
    s = run.sizes
    out, methods = bench_dir(run, s["small"]), "probe,per_image,floor,fast"
    command = bench_command(run, s["small"], s["n_small"], s["batch_small"], methods, out)
    return command, dict(run.env)


def bench1024_command(run: Run) -> tuple[list[str], dict[str, str]]:
    s = run.sizes
    out, methods = bench_dir(run, s["large"]), "probe,per_image,fast"
    command = bench_command(run, s["large"], s["n_large"], s["batch_large"], methods, out)
    return command, dict(run.env)


def compile_command(run: Run) -> tuple[list[str], dict[str, str]]:
    s, env = run.sizes, dict(run.env)
    if run.args.tiny:  # the step's plumbing only: inductor takes minutes on a small CPU
        env["TORCH_COMPILE_DISABLE"] = "1"
    out, methods = bench_dir(run, s["small"], "_compile"), "probe,compile"
    command = bench_command(run, s["small"], s["n_compile"], s["batch_small"], methods, out)
    return command, env


def bench_results(run: Run, size: int, folder: Path, copy: bool) -> dict[str, Any]:
    """A benchmark's numbers from its benchmark.json (copied to --out when ``copy``)."""
    record = json.loads((folder / "benchmark.json").read_text())
    if copy:  # --out keeps at most 8 files: the archive has the compile step's
        shutil.copyfile(folder / "benchmark.json", run.args.out / f"{folder.name}.json")
    rows = {
        r["method"]: {
            k: r.get(k)
            for k in ("images_per_s", "best_s", "map_corr", "luo_rel_diff", "batch_size")
        }
        for r in record["rows"]
    }
    return {
        "dir": str(folder.relative_to(run.args.work)),
        "model": record["model"],
        "size": size,
        "n_samples": record["rows"][0]["images"],
        "rows": rows,
        "ratios": record["ratios"],
    }


def bench224_results(run: Run, step: Step) -> dict[str, Any]:
    size = run.sizes["small"]
    return bench_results(run, size, bench_dir(run, size), copy=True)


def bench1024_results(run: Run, step: Step) -> dict[str, Any]:
    size = run.sizes["large"]
    return bench_results(run, size, bench_dir(run, size), copy=True)


def compile_results(run: Run, step: Step) -> dict[str, Any]:
    size = run.sizes["small"]
    return bench_results(run, size, bench_dir(run, size, "_compile"), copy=False)


# draws


def draws_command(run: Run) -> tuple[list[str], dict[str, str]]:
    s, m = run.sizes, run.sizes["draws"]
    return [
        *erf_run(
            run,
            f"model.depth={s['draws_depth']}",
            f"model.channels={s['draws_channels']}",
            "model.init=random",
            "model.activation=relu",
            f"inputs.size=[{s['draws_size']},{s['draws_size']}]",
            f"probe.draws=1,{m},1,{m}",  # twice each: the first job warms the device
            f"probe.n_samples={s['draws_n']}",
            f"probe.batch_size={s['draws_batch']}",
            f"hydra.sweep.dir={draws_dir(run)}",
        ),
        "--multirun",
    ], dict(run.env)


def draws_results(run: Run, step: Step) -> dict[str, Any]:
    """The best wall time of one draw and of many from each job's metrics.json, written to
    benchmarks/<prefix>_draws.json (copied to --out)."""
    s = run.sizes
    jobs = []
    for metrics in sorted(draws_dir(run).glob("*/metrics.json"), key=_job_number):
        m = json.loads(metrics.read_text())
        jobs.append({
            "job": metrics.parent.name,
            "draws": int(m["config"]["probe"]["draws"]),
            "wall_time_s": m["wall_time_s"],
            "n_samples_per_draw": int(m["config"]["probe"]["n_samples"]),
            "batch_size": m["batch_size"],
        })  # fmt: skip
    many = [j["wall_time_s"] for j in jobs if j["draws"] == s["draws"]]
    one = [j["wall_time_s"] for j in jobs if j["draws"] == 1]
    record = {
        "what": f"{s['draws']} random draws of a depth-{s['draws_depth']} conv stack in "
        "one pass vs one draw; each ran twice in one process (the first job warms the "
        "device), the best of each is compared",
        "model": {
            "depth": s["draws_depth"],
            "channels": s["draws_channels"],
            "init": "random",
            "activation": "relu",
            "size": s["draws_size"],
        },  # fmt: skip
        "draws": s["draws"],
        "device": run.args.device,
        "jobs": jobs,
        "one_draw_s": min(one) if one else None,
        "many_draws_s": min(many) if many else None,
        "ratio": min(many) / min(one) if one and many else None,
        "target_ratio_at_most": 3.0,
        "command": " ".join(shlex.quote(c) for c in ["python", *step.command[1:]]),
        "dir": str(draws_dir(run).relative_to(run.args.work)),
    }
    path = run.args.work / "benchmarks" / f"{run.args.prefix}_draws.json"
    write_json(record, path)
    shutil.copyfile(path, run.args.out / path.name)
    return {k: record[k] for k in ("one_draw_s", "many_draws_s", "ratio", "dir")}


def _job_number(path: Path) -> int:
    name = path.parent.name
    return int(name) if name.isdigit() else 10**9


# suite


def suite_command(run: Run) -> tuple[list[str], dict[str, str]]:
    s, extra = run.sizes, []
    if s["suite_experiments"]:
        extra.append(f"suite.experiments=[{s['suite_experiments']}]")
    resume = (suite_dir(run) / "suite.json").exists()
    return erf_run(
        run,
        "experiment=paper_figures",
        f"scale={s['scale']}",
        *extra,
        f"resume={str(resume).lower()}",
        f"hydra.run.dir={suite_dir(run)}",
    ), dict(run.env)


def suite_results(run: Run, step: Step) -> dict[str, Any]:
    """Per study, its wall time and exit code from luo2016/suite.json (copied to
    suite_<prefix>.json beside it and in --out); whether the suite resumed and finished."""
    suite = suite_dir(run) / "suite.json"
    if not suite.exists():
        return {}
    name = f"suite_{run.args.prefix}.json"
    shutil.copyfile(suite, suite_dir(run) / name)
    shutil.copyfile(suite, run.args.out / name)
    record = json.loads(suite.read_text())
    done = record.get("experiments", [])
    return {
        "dir": "luo2016",
        "resumed": "resume=true" in step.command,
        "complete": "wall_time_s" in record,
        "wall_time_s": record.get("wall_time_s"),
        "studies": {
            e["name"]: {"wall_time_s": e["wall_time_s"], "returncode": e["returncode"]}
            for e in done
        },  # fmt: skip
        "resume_with": None if step.status == "ok" else "the same command (resume=true)",
    }


# -- the table of steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class StepSpec:
    """A step of the full run: the least time worth starting it with, the most it may take
    (None: the rest), what runs it (``run(run, step, timeout)``); for an erf step, its command
    (``command(run) -> (command, env)``) and the reader of its results (``collect(run, step)``)."""

    least: float
    most: float | None
    command: Callable[..., tuple[list[str], dict[str, str]]] | None = None
    collect: Callable[..., dict[str, Any]] | None = None
    run: Callable[..., None] = run_step


SPECS: dict[str, StepSpec] = {  # in the order they run; README.md, "Budget plan"
    "install": StepSpec(20, 120, run=install.install),
    "bench224": StepSpec(60, 240, bench224_command, bench224_results),
    "bench1024": StepSpec(30, 150, bench1024_command, bench1024_results),
    "draws": StepSpec(30, 120, draws_command, draws_results),
    "suite": StepSpec(60, None, suite_command, suite_results),
    "compile": StepSpec(150, 300, compile_command, compile_results),
}
STEPS = tuple(SPECS)
