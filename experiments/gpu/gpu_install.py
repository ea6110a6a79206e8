"""The install step: the carried wheels of hydra-core, omegaconf and antlr4-python3-runtime
with pip and no network (unpacked onto PYTHONPATH if pip cannot install them), then the
project (else the steps run from the checkout), then a check that hydra and erf import.
Unlike the other steps it is not one ``python -m erf.run``: hydra is not there yet. Standard
library only.
"""

from __future__ import annotations

import os
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from gpu_common import REPO, Failure, Step, last_line, run_process

if TYPE_CHECKING:
    from run_all import Run

WHEELS = {  # distribution -> the file name its wheel starts with
    "hydra-core": "hydra_core-",
    "omegaconf": "omegaconf-",
    "antlr4-python3-runtime": "antlr4_python3_runtime-",
}


def wheel_files(wheels: Path) -> dict[str, Path]:
    """The carried wheel of each distribution; Failure naming what is missing."""
    found, missing = {}, []
    for dist, stem in WHEELS.items():
        hits = sorted(wheels.glob(f"{stem}*.whl")) if wheels.is_dir() else []
        if hits:
            found[dist] = hits[-1]
        else:
            missing.append(dist)
    if missing:
        raise Failure(
            f"no wheel for {', '.join(missing)} in {wheels}: run experiments/gpu/fetch_wheels.sh "
            "on a machine with a package index and carry .whl"
        )
    return found


def install_commands(py: str, wheels: Path) -> list[list[str]]:
    """The two pip commands of the install step (no network)."""
    return [
        [py, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), *WHEELS],
        [py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", str(REPO)],
    ]


def unpack_wheels(wheels: dict[str, Path], site: Path) -> None:
    """Fallback when pip cannot install (no pip, an externally managed Python): pure-Python
    wheels are zip files of importable packages; unpack them into ``site`` (PYTHONPATH)."""
    site.mkdir(parents=True, exist_ok=True)
    for path in wheels.values():
        with zipfile.ZipFile(path) as whl:
            whl.extractall(site)


def install(run: Run, step: Step, timeout: float) -> None:
    """The install step: the wheels (pip, else unpacked onto PYTHONPATH), the project (pip,
    else the checkout), then a check that hydra and erf import."""
    wheels = wheel_files(run.args.wheels)
    logs = run.args.work / "logs"
    t0 = time.perf_counter()
    hydra_cmd, project_cmd = install_commands(run.py, run.args.wheels)
    step.command = hydra_cmd
    step.log = "logs/install.log"
    if all(find_spec(m) for m in ("hydra", "omegaconf", "antlr4")):
        step.result["wheels"] = "already importable; pip not run"
    else:
        status, code, _ = run_process(
            hydra_cmd, logs / "install.log", timeout, run.env, run.args.grace
        )
        if status == "ok":
            step.result["wheels"] = "installed with pip"
        else:  # e.g. an externally managed Python or no pip: unpack onto PYTHONPATH
            site = run.args.work / ".site"
            unpack_wheels(wheels, site)
            prepend_path(run.env, site)
            step.result["wheels"] = f"pip {status} (exit {code}); unpacked into {site}"
    left = timeout - (time.perf_counter() - t0)
    status, code, _ = run_process(
        project_cmd, logs / "install_project.log", left, run.env, run.args.grace
    )
    if status == "ok":
        step.result["project"] = "installed with pip"
    else:  # the steps run from the checkout's root, so `python -m erf.run` imports it
        prepend_path(run.env, REPO)
        step.result["project"] = f"pip {status} (exit {code}); running from the checkout"
    check = [run.py, "-c", "import hydra, omegaconf, erf.run"]
    status, code, _ = run_process(check, logs / "install_check.log", 120, run.env, run.args.grace)
    step.wall_time_s = time.perf_counter() - t0
    if status != "ok":
        raise Failure(
            "hydra or erf is not importable after the install: "
            + last_line(logs / "install_check.log")
        )
    step.status = "ok"


def prepend_path(env: dict[str, str], path: Path) -> None:
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(path) + (os.pathsep + old if old else "")
