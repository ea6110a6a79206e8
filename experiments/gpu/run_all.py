"""The whole GPU run in one command, within a wall-clock budget (``experiments/gpu/run.sh``).

Steps, in order (``--steps`` picks a subset):

- ``install``: the carried wheels of hydra-core, omegaconf and antlr4-python3-runtime, then
  the project, with pip and no network (``--skip-install``; ``--dry-run-install`` prints it).
- ``bench224``: ``experiment=benchmark``, ResNet-50 at 224 (probe, per_image, floor, fast).
- ``bench1024``: the same at 1024 (probe, per_image, fast).
- ``draws``: one pass over 20 random draws of a depth-20 conv stack vs one draw.
- ``suite``: ``experiment=paper_figures scale=paper`` (every Luo study; resumable).
- ``compile``: probe vs ``probe.compile=true`` at 224, last and only if the budget has room.

Every step is its own ``python -m erf.run`` process (its own process group) with a timeout
taken from what is left of the budget; a step that would not fit is not started, and the
rest are recorded as "not run". After each step ``run.json`` (hardware, versions, commit,
command, per-step status and wall times, the summary) is rewritten and everything is packed
into ``<out>/gpu_results.tar.gz``, so a run killed from outside still leaves what it finished.
At the end a table compares every measured ratio with its target: met / not met / not run.

Standard library only until the install step has run: nothing here imports hydra (or torch:
the hardware is read in a subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WHEELS = {  # distribution -> the file name its wheel starts with
    "hydra-core": "hydra_core-",
    "omegaconf": "omegaconf-",
    "antlr4-python3-runtime": "antlr4_python3_runtime-",
}
NEEDED = ("torch", "torchvision", "numpy", "scipy", "matplotlib", "yaml", "tqdm", "packaging")
ARCHIVE = "gpu_results.tar.gz"
ARCHIVE_LIMIT = 15 * 2**20  # the device tool returns files of at most 16 MiB
FINISH_S = 10.0  # kept back from every step for writing run.json and packing
STEPS = ("install", "bench224", "bench1024", "draws", "suite", "compile")

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
# Per step: the least time worth starting it with, and the most it may take (None: the rest).
PLAN = {
    "full": {
        "install": (20, 120),
        "bench224": (60, 240),
        "bench1024": (30, 150),
        "draws": (30, 120),
        "suite": (60, None),
        "compile": (150, 300),
    },
    "tiny": {s: (5, None) for s in STEPS},
}
TARGETS = {  # the targets: name -> (threshold, comparison, unit of the table)
    "probe/per_image @small": (40.0, ">=", "x"),
    "probe/floor @small": (1 / 1.1, ">=", "x"),  # probe within 1.1x of the floor
    "fast images/s @small": (6000.0, ">=", "/s"),
    "fast map corr @small": (0.999, ">=", ""),
    "fast |Luo size diff| @small": (0.01, "<=", "%"),
    "probe/per_image @large": (2.0, ">=", "x"),
    "fast/per_image @large": (4.0, ">=", "x"),
    "draws cost / one draw": (3.0, "<=", "x"),
    "Luo suite wall time (s)": (300.0, "<", "s"),
}

STOP: list[int] = []  # signals received (SIGINT/SIGTERM): stop after the current step


class Failure(Exception):
    """A one-line error that ends the run (after run.json and the archive are written)."""


@dataclass
class Step:
    name: str
    status: str = "not run"  # ok | failed | timed out | interrupted | skipped | not run
    reason: str = ""
    command: list[str] = field(default_factory=list)
    wall_time_s: float | None = None
    timeout_s: float | None = None
    returncode: int | None = None
    log: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    earlier: bool = False  # a step of an earlier run into the same folder (not in --steps)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Step:
        """A step as an earlier run.json recorded it (its command kept as one string)."""
        step = cls(record["name"], status=record["status"], reason=record.get("reason", ""))
        for key in ("wall_time_s", "timeout_s", "returncode", "log"):
            setattr(step, key, record.get(key))
        step.result, step.earlier = record.get("result", {}), True
        step.command = shlex.split(record.get("command", ""))
        return step

    def record(self) -> dict[str, Any]:
        out = {"name": self.name, "status": self.status}
        if self.earlier:
            out["earlier_run"] = True
        if self.reason:
            out["reason"] = self.reason
        if self.command:
            out["command"] = " ".join(shlex.quote(c) for c in self.command)
        for key in ("wall_time_s", "timeout_s", "returncode", "log"):
            value = getattr(self, key)
            if value is not None:
                out[key] = round(value, 1) if isinstance(value, float) else value
        if self.result:
            out["result"] = self.result
        return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage + message
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(
        prog="experiments/gpu/run.sh",
        description="Benchmarks, many-draws timing and every Luo study at paper scale on one "
        "GPU, within a wall-clock budget; results packed into <out>/" + ARCHIVE + ".",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="results folder (default: $OUT, else outputs/gpu)"
    )
    p.add_argument(
        "--work",
        type=Path,
        default=None,
        help="where the steps write (default: --out); with a separate --work, --out "
        "gets only the archive and the key files (the device tool returns 8 files)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=480.0,
        help="wall-clock budget in seconds for the whole run (default 480)",
    )
    p.add_argument("--cpu", action="store_true", help="device=cpu (no CUDA needed)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes everywhere (a rehearsal)")
    p.add_argument("--skip-install", action="store_true", help="the project is importable")
    p.add_argument(
        "--dry-run-install", action="store_true", help="print the install commands and exit"
    )
    p.add_argument(
        "--wheels",
        type=Path,
        default=REPO / ".whl",
        help="folder of the carried wheels (default .whl/ at the repo root)",
    )
    p.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated subset of {','.join(STEPS)} (default: all)",
    )
    p.add_argument(
        "--min-step",
        type=float,
        default=None,
        help="start no step with less than this many seconds left (default: per step)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL for a step past its timeout",
    )
    p.add_argument("--model", help="torchvision model of the benchmarks")
    p.add_argument("--n-small", type=int, help="samples of the 224 benchmark (default 2048)")
    p.add_argument("--batch-small", type=int, help="batch of the 224 benchmark (default 256)")
    p.add_argument("--n-large", type=int, help="samples of the 1024 benchmark (default 256)")
    p.add_argument("--batch-large", type=int, help="batch of the 1024 benchmark (default 16)")
    p.add_argument("--repeats", type=int, help="timed repeats per benchmark method (default 2)")
    p.add_argument("--draws", type=int, help="random draws of the many-draws pass (default 20)")
    p.add_argument(
        "--suite-experiments",
        help="comma-separated studies of the suite, or all (default: all; --tiny: depth_sweep)",
    )
    args = p.parse_args(argv)  # fmt: skip
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        p.error(f"--steps: unknown {unknown}; choose from {','.join(STEPS)}")
    args.steps = steps
    if args.budget <= 0:
        p.error("--budget must be positive")
    args.out = (args.out or Path(os.environ.get("OUT") or "outputs/gpu")).resolve()
    args.work = (args.work or args.out).resolve()
    sizes = dict(SIZES["tiny" if args.tiny else "full"])
    for key in ("model", "n_small", "batch_small", "n_large", "batch_large", "repeats", "draws",
                "suite_experiments"):  # fmt: skip
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    if sizes["suite_experiments"] == "all":
        sizes["suite_experiments"] = None
    args.sizes = sizes
    args.device = "cpu" if args.cpu else "cuda"
    args.prefix = "cpu" if args.cpu else "gpu"
    return args


# -- install ---------------------------------------------------------------------------------


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


# -- processes ---------------------------------------------------------------------------------


def run_process(
    command: list[str], log: Path, timeout: float | None, env: dict[str, str], grace: float
) -> tuple[str, int | None, float]:
    """Run ``command`` in its own process group, output to ``log``; past ``timeout`` (or on a
    stop request) SIGTERM the group (erf jobs save a checkpoint), SIGKILL it ``grace`` s
    later. Returns (status, returncode, wall seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        status = None
        while proc.poll() is None:
            elapsed = time.perf_counter() - t0
            if STOP or (timeout is not None and elapsed > timeout):
                status = "interrupted" if STOP else "timed out"
                _signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.2)
    code = proc.returncode
    return status or ("ok" if code == 0 else "failed"), code, time.perf_counter() - t0


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def last_line(log: Path) -> str:
    """The last non-empty line of a step's log (after any progress bar's carriage returns)."""
    try:
        lines = [ln.split("\r")[-1].strip() for ln in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


# -- the steps ----------------------------------------------------------------------------------


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.sizes = args.sizes
        self.py = sys.executable
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget
        self.steps = {name: Step(name) for name in args.steps}
        self.keep_earlier_steps()
        self.hardware: dict[str, Any] = {}
        self.notes: list[str] = []
        self.archive: dict[str, Any] = {}

    def keep_earlier_steps(self) -> None:
        """Steps outside --steps keep what an earlier run into the same folder recorded (a
        rerun of one step, e.g. to resume the suite, keeps the others' results)."""
        try:
            earlier = json.loads((self.args.work / "run.json").read_text())["steps"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        kept = {r["name"]: Step.from_record(r) for r in earlier if r.get("name") in STEPS}
        self.steps = {
            name: self.steps.get(name) or kept[name]
            for name in STEPS
            if name in self.steps or name in kept
        }

    # paths
    def bench_dir(self, size: int, suffix: str = "") -> Path:
        return (
            self.args.work
            / "benchmarks"
            / f"{self.args.prefix}_{self.sizes['model']}_{size}{suffix}"
        )

    @property
    def draws_dir(self) -> Path:
        return self.args.work / "benchmarks" / f"{self.args.prefix}_draws"

    @property
    def suite_dir(self) -> Path:
        return self.args.work / "luo2016"

    def erf_run(self, *overrides: str) -> list[str]:
        return [self.py, "-m", "erf.run", *overrides, f"device={self.args.device}", "seed=0"]

    def bench_command(self, size: int, n: int, batch: int, methods: str, out: Path) -> list[str]:
        s = self.sizes
        return self.erf_run(
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

    def command(self, name: str) -> tuple[list[str], dict[str, str]]:
        s, env = self.sizes, dict(self.env)
        if name == "bench224":
            out = self.bench_dir(s["small"])
            methods = "probe,per_image,floor,fast"
            return self.bench_command(s["small"], s["n_small"], s["batch_small"], methods, out), env
        if name == "bench1024":
            out = self.bench_dir(s["large"])
            methods = "probe,per_image,fast"
            return self.bench_command(s["large"], s["n_large"], s["batch_large"], methods, out), env
        if name == "compile":
            if self.args.tiny:  # the step's plumbing only: inductor takes minutes on a small CPU
                env["TORCH_COMPILE_DISABLE"] = "1"
            out = self.bench_dir(s["small"], "_compile")
            n = s["n_compile"]
            return self.bench_command(s["small"], n, s["batch_small"], "probe,compile", out), env
        if name == "draws":
            m = s["draws"]
            return [
                *self.erf_run(
                    f"model.depth={s['draws_depth']}",
                    f"model.channels={s['draws_channels']}",
                    "model.init=random",
                    "model.activation=relu",
                    f"inputs.size=[{s['draws_size']},{s['draws_size']}]",
                    f"probe.draws=1,{m},1,{m}",  # twice each: the first job warms the device
                    f"probe.n_samples={s['draws_n']}",
                    f"probe.batch_size={s['draws_batch']}",
                    f"hydra.sweep.dir={self.draws_dir}",
                ),
                "--multirun",
            ], env
        if name == "suite":
            extra = []
            if s["suite_experiments"]:
                extra.append(f"suite.experiments=[{s['suite_experiments']}]")
            resume = (self.suite_dir / "suite.json").exists()
            return self.erf_run(
                "experiment=paper_figures",
                f"scale={s['scale']}",
                *extra,
                f"resume={str(resume).lower()}",
                f"hydra.run.dir={self.suite_dir}",
            ), env
        raise AssertionError(name)

    # budget
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def plan(self, name: str) -> tuple[float, float | None]:
        least, most = PLAN["tiny" if self.args.tiny else "full"][name]
        if self.args.min_step is not None:
            least = self.args.min_step
        return least, most

    def run(self) -> int:
        self.preflight()
        for name in self.args.steps:
            step = self.steps[name]
            if STOP:
                step.reason = "stopped by a signal"
                continue
            if name == "install" and self.args.skip_install:
                step.status, step.reason = "skipped", "--skip-install"
                continue
            least, most = self.plan(name)
            timeout = self.left() - FINISH_S - self.args.grace
            if most is not None:
                timeout = min(timeout, most)
            if timeout < least:
                self.stop_for_budget(name, timeout, least)
                break
            step.timeout_s = timeout
            print(f"[{self.elapsed():6.1f} s] {name}: start (timeout {timeout:.0f} s)", flush=True)
            try:
                if name == "install":
                    self.install(step, timeout)
                else:
                    self.run_step(step, timeout)
            except Failure as exc:
                step.status, step.reason = "failed", str(exc)
            line = f"[{self.elapsed():6.1f} s] {name}: {step.status}"
            if step.wall_time_s is not None:
                line += f" after {step.wall_time_s:.1f} s"
            print(line + (f": {step.reason}" if step.reason else ""), flush=True)
            self.write()
            if name == "install" and step.status != "ok":
                self.skip_rest(name, "the install step did not succeed")
                break
        return self.finish()

    def stop_for_budget(self, name: str, timeout: float, least: float) -> None:
        reason = f"budget: {max(timeout, 0):.0f} s left for it, needs >= {least:.0f} s"
        self.steps[name].reason = reason
        self.skip_rest(name, f"budget exhausted before {name}")
        print(f"[{self.elapsed():6.1f} s] stop: {name} and after not run ({reason})", flush=True)

    def skip_rest(self, after: str, reason: str) -> None:
        names = self.args.steps
        for name in names[names.index(after) + 1 :]:
            self.steps[name].reason = reason

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def preflight(self) -> None:
        """Before anything runs: the work folder, the interpreter's packages, the GPU."""
        self.args.work.mkdir(parents=True, exist_ok=True)
        self.args.out.mkdir(parents=True, exist_ok=True)
        missing = [m for m in NEEDED if find_spec(m) is None]
        if missing:
            raise Failure(f"{self.py} lacks {', '.join(missing)}; these cannot be carried")
        self.hardware = self.read_hardware()
        if not self.args.cpu and not self.hardware.get("cuda_available"):
            raise Failure(
                f"CUDA is not available to {self.py} (torch {self.hardware.get('torch')}, "
                f"CUDA build {self.hardware.get('cuda')}): rehearse with --cpu"
            )

    def read_hardware(self) -> dict[str, Any]:
        """Device name and versions; for a GPU run from a subprocess that imports torch (so
        the budget is not spent on it here), for --cpu from the package metadata."""
        info: dict[str, Any] = {
            "python": sys.version.split()[0],
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
        }
        for dist in ("torch", "torchvision", "timm", "numpy"):
            with contextlib.suppress(metadata.PackageNotFoundError):
                info[dist] = metadata.version(dist)
        if self.args.cpu:
            info.update(device="cpu", device_name=info["cpu"])
            return info
        code = (
            "import json, torch; c = torch.cuda.is_available(); print(json.dumps({"
            "'cuda_available': c, 'torch': torch.__version__, 'cuda': torch.version.cuda, "
            "'cudnn': torch.backends.cudnn.version() if c else None, "
            "'device_name': torch.cuda.get_device_name(0) if c else None, "
            "'device_count': torch.cuda.device_count(), "
            "'memory_gib': round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)"
            " if c else None, "
            "'cudnn_allow_tf32': torch.backends.cudnn.allow_tf32, "
            "'matmul_allow_tf32': torch.backends.cuda.matmul.allow_tf32}))"
        )
        try:
            proc = subprocess.run(
                [self.py, "-c", code], capture_output=True, text=True, timeout=120, env=self.env
            )
            info.update(json.loads(proc.stdout.strip().splitlines()[-1]), device="cuda")
        except (subprocess.SubprocessError, ValueError, IndexError, OSError):
            info["cuda_available"] = False
        return info

    def install(self, step: Step, timeout: float) -> None:
        wheels = wheel_files(self.args.wheels)
        logs = self.args.work / "logs"
        t0 = time.perf_counter()
        hydra_cmd, project_cmd = install_commands(self.py, self.args.wheels)
        step.command = hydra_cmd
        step.log = "logs/install.log"
        if all(find_spec(m) for m in ("hydra", "omegaconf", "antlr4")):
            step.result["wheels"] = "already importable; pip not run"
        else:
            status, code, _ = run_process(
                hydra_cmd, logs / "install.log", timeout, self.env, self.args.grace
            )
            if status == "ok":
                step.result["wheels"] = "installed with pip"
            else:  # e.g. an externally managed Python or no pip: unpack onto PYTHONPATH
                site = self.args.work / ".site"
                unpack_wheels(wheels, site)
                self.prepend_path(site)
                step.result["wheels"] = f"pip {status} (exit {code}); unpacked into {site}"
        left = timeout - (time.perf_counter() - t0)
        status, code, _ = run_process(
            project_cmd, logs / "install_project.log", left, self.env, self.args.grace
        )
        if status == "ok":
            step.result["project"] = "installed with pip"
        else:  # the steps run from the checkout's root, so `python -m erf.run` imports it
            self.prepend_path(REPO)
            step.result["project"] = f"pip {status} (exit {code}); running from the checkout"
        check = [self.py, "-c", "import hydra, omegaconf, erf.run"]
        status, code, _ = run_process(
            check, logs / "install_check.log", 120, self.env, self.args.grace
        )
        step.wall_time_s = time.perf_counter() - t0
        if status != "ok":
            raise Failure(
                "hydra or erf is not importable after the install: "
                + last_line(logs / "install_check.log")
            )
        step.status = "ok"

    def prepend_path(self, path: Path) -> None:
        old = self.env.get("PYTHONPATH")
        self.env["PYTHONPATH"] = str(path) + (os.pathsep + old if old else "")

    def run_step(self, step: Step, timeout: float) -> None:
        command, env = self.command(step.name)
        if step.name == "compile" and self.args.tiny:
            step.result["note"] = "TORCH_COMPILE_DISABLE=1 (--tiny rehearses the plumbing only)"
        step.command = command
        step.log = f"logs/{step.name}.log"
        log = self.args.work / step.log
        status, code, wall = run_process(command, log, timeout, env, self.args.grace)
        step.status, step.returncode, step.wall_time_s = status, code, wall
        if status == "failed":
            step.reason = last_line(log) or f"exit {code}"
        elif status == "timed out":
            step.reason = f"past its timeout of {timeout:.0f} s; stopped"
        try:
            step.result.update(self.collect(step))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if step.status == "ok":
                step.status, step.reason = "failed", f"unreadable results: {exc}"

    def collect(self, step: Step) -> dict[str, Any]:
        """The step's numbers from the files its job wrote; the key files copied to --out."""
        s, out = self.sizes, self.args.out
        if step.name in ("bench224", "bench1024", "compile"):
            size = s["small"] if step.name != "bench1024" else s["large"]
            folder = self.bench_dir(size, "_compile" if step.name == "compile" else "")
            record = json.loads((folder / "benchmark.json").read_text())
            if step.name != "compile":  # --out keeps at most 8 files: the archive has it
                shutil.copyfile(folder / "benchmark.json", out / f"{folder.name}.json")
            rows = {
                r["method"]: {
                    k: r.get(k)
                    for k in ("images_per_s", "best_s", "map_corr", "luo_rel_diff", "batch_size")
                }
                for r in record["rows"]
            }
            return {
                "dir": str(folder.relative_to(self.args.work)),
                "model": record["model"],
                "size": size,
                "n_samples": record["rows"][0]["images"],
                "rows": rows,
                "ratios": record["ratios"],
            }
        if step.name == "draws":
            jobs = []
            for metrics in sorted(self.draws_dir.glob("*/metrics.json"), key=_job_number):
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
                "device": self.args.device,
                "jobs": jobs,
                "one_draw_s": min(one) if one else None,
                "many_draws_s": min(many) if many else None,
                "ratio": min(many) / min(one) if one and many else None,
                "target_ratio_at_most": 3.0,
                "command": " ".join(shlex.quote(c) for c in ["python", *step.command[1:]]),
                "dir": str(self.draws_dir.relative_to(self.args.work)),
            }
            path = self.args.work / "benchmarks" / f"{self.args.prefix}_draws.json"
            _write_json(record, path)
            shutil.copyfile(path, out / path.name)
            return {k: record[k] for k in ("one_draw_s", "many_draws_s", "ratio", "dir")}
        if step.name == "suite":
            suite = self.suite_dir / "suite.json"
            if not suite.exists():
                return {}
            name = f"suite_{self.args.prefix}.json"
            shutil.copyfile(suite, self.suite_dir / name)
            shutil.copyfile(suite, out / name)
            record = json.loads(suite.read_text())
            done = record.get("experiments", [])
            resumed = "resume=true" in step.command
            return {
                "dir": "luo2016",
                "resumed": resumed,
                "complete": "wall_time_s" in record,
                "wall_time_s": record.get("wall_time_s"),
                "studies": {
                    e["name"]: {"wall_time_s": e["wall_time_s"], "returncode": e["returncode"]}
                    for e in done
                },  # fmt: skip
                "resume_with": None if step.status == "ok" else "the same command (resume=true)",
            }
        return {}

    # results
    def measured(self) -> dict[str, tuple[str, float | None, str]]:
        """Each target's label, measured value (None: not run) and a note."""
        s, steps = self.sizes, self.steps

        def result(name: str) -> dict[str, Any]:
            step = steps.get(name)
            return step.result if step is not None and step.status == "ok" else {}

        def pick(res: dict[str, Any], *keys: str) -> float | None:
            value: Any = res
            for key in keys:
                if not isinstance(value, dict) or value.get(key) is None:
                    return None
                value = value[key]
            return float(value)

        small, large, draws = result("bench224"), result("bench1024"), result("draws")
        at_s, at_l = f"{s['model']} {s['small']} px", f"{s['model']} {s['large']} px"
        luo = pick(small, "rows", "fast", "luo_rel_diff")
        out = {
            "probe/per_image @small": (
                f"{at_s} fp32: probe / per_image", pick(small, "ratios", "probe/per_image"), ""),
            "probe/floor @small": (
                f"{at_s} fp32: probe / floor", pick(small, "ratios", "probe/floor"), ""),
            "fast images/s @small": (
                f"{at_s} fast: images/s", pick(small, "rows", "fast", "images_per_s"), ""),
            "fast map corr @small": (
                f"{at_s} fast: map corr with fp32", pick(small, "rows", "fast", "map_corr"), ""),
            "fast |Luo size diff| @small": (
                f"{at_s} fast: |Luo size diff| vs fp32", None if luo is None else abs(luo), ""),
            "probe/per_image @large": (
                f"{at_l} fp32: probe / per_image", pick(large, "ratios", "probe/per_image"), ""),
            "fast/per_image @large": (
                f"{at_l} fast / per_image (fp32)", pick(large, "ratios", "fast/per_image"), ""),
            "draws cost / one draw": (
                f"{s['draws']} draws in one pass / one draw", pick(draws, "ratio"), ""),
        }  # fmt: skip
        value, note = None, ""
        suite = steps.get("suite")
        if suite is not None and suite.result.get("studies") is not None:
            r = suite.result
            total = sum(v["wall_time_s"] for v in r["studies"].values())
            failed = [n for n, v in r["studies"].items() if v["returncode"] != 0]
            if failed:
                note = f"failed: {', '.join(failed)}"
            elif r["resumed"]:
                note = "resumed: needs one uninterrupted run"
            elif not r["complete"]:
                note = f"stopped after {total:.0f} s, {len(r['studies'])} studies started"
                if total >= TARGETS["Luo suite wall time (s)"][0]:
                    value = total
            else:
                value = r["wall_time_s"]
        studies = (
            "every Luo study" if not s["suite_experiments"] else "Luo: " + s["suite_experiments"]
        )
        out["Luo suite wall time (s)"] = (f"{studies}, scale={s['scale']}", value, note)
        return out

    def targets(self) -> list[dict[str, Any]]:
        """Each target with its goal, measured value and met / not met / not run."""
        rows = []
        for key, (label, value, note) in self.measured().items():
            threshold, op, unit = TARGETS[key]
            if value is None:
                status = "not met" if note.startswith("failed") else "not run"
            else:
                met = value >= threshold if op == ">=" else value <= threshold
                met = value < threshold if op == "<" else met
                status = "met" if met else "not met"
            row = {"target": label, "goal": f"{op} {_fmt(threshold, unit)}", "unit": unit,
                   "measured": value, "status": status}  # fmt: skip
            if note:
                row["note"] = note
            rows.append(row)
        return rows

    def table(self, rows: list[dict[str, Any]]) -> str:
        """The summary table: one line per target, then compile, the studies and the steps."""
        where = self.hardware.get("device_name") or self.args.device
        kind = "tiny rehearsal, sizes too small to mean anything" if self.args.tiny else "full"
        lines = [f"Targets on {where} ({kind}):"]
        width = max(len(r["target"]) for r in rows)
        lines.append(f"{'target':<{width}}  {'goal':>9}  {'measured':>9}  status")
        for r in rows:
            value = "-" if r["measured"] is None else _fmt(r["measured"], r["unit"])
            note = f" ({r['note']})" if r.get("note") else ""
            lines.append(f"{r['target']:<{width}}  {r['goal']:>9}  {value:>9}  {r['status']}{note}")
        compiled = self.steps.get("compile")
        ratio = compiled.result.get("ratios", {}).get("compile/probe") if compiled else None
        if compiled is not None and compiled.status == "ok" and ratio:
            lines.append(f"no target: compile / probe at {self.sizes['small']} px {ratio:.2f}x")
        suite = self.steps.get("suite")
        if suite is not None and suite.result.get("studies"):
            times = ", ".join(
                f"{n} {v['wall_time_s']:.1f}" for n, v in suite.result["studies"].items()
            )
            lines.append(f"Luo studies, wall time (s): {times}")
        done = [
            f"{s.name} {s.status}" + ("" if s.wall_time_s is None else f" {s.wall_time_s:.0f} s")
            for s in self.steps.values()
        ]
        lines.append("Steps: " + ", ".join(done))
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        return {
            "what": "experiments/gpu/run.sh: benchmarks, many-draws timing and the Luo suite",
            "device": self.args.device,
            "tiny": self.args.tiny,
            "hardware": self.hardware,
            "git_commit": _git_commit(),
            "command": " ".join(shlex.quote(a) for a in ["experiments/gpu/run.sh", *sys.argv[1:]]),
            "budget_s": self.args.budget,
            "elapsed_s": round(self.elapsed(), 1),
            "sizes": self.sizes,
            "steps": [s.record() for s in self.steps.values()],
            "targets": self.targets(),
            "notes": self.notes,
            "archive": self.archive,
        }

    def write(self) -> None:
        """run.json and summary.txt in the work folder and --out, then the archive."""
        record = self.record()
        table = self.table(record["targets"])
        for folder in {self.args.work, self.args.out}:
            _write_json(record, folder / "run.json")
            _write_text(table + "\n", folder / "summary.txt")
        self.pack()
        record["archive"] = self.archive
        _write_json(record, self.args.out / "run.json")

    def pack(self) -> None:
        """Everything in the work folder into one archive under the size limit: if it is too
        large, the largest .npz files are left out (named in run.json)."""
        work, target = self.args.work, self.args.out / ARCHIVE
        skip = {target.resolve(), (work / ".site").resolve()}
        files = [
            p
            for p in sorted(work.rglob("*"))
            if p.is_file() and p.suffix != ".tmp" and not _under(p, skip)
        ]
        left_out: list[str] = []
        candidates = sorted(
            (p for p in files if p.suffix == ".npz"), key=lambda p: -p.stat().st_size
        )
        tmp = target.with_name(target.name + ".tmp")
        target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
                for p in files:
                    if str(p.relative_to(work)) not in left_out:
                        tar.add(p, arcname=str(p.relative_to(work)))
            excess = tmp.stat().st_size - ARCHIVE_LIMIT
            if excess <= 0 or not candidates:
                break
            while candidates and excess > 0:  # .npz maps hardly compress: count them whole
                dropped = candidates.pop(0)
                excess -= dropped.stat().st_size
                left_out.append(str(dropped.relative_to(work)))
        tmp.replace(target)
        self.archive = {
            "file": ARCHIVE,
            "bytes": target.stat().st_size,
            "files": len(files) - len(left_out),
            "left_out": left_out,
        }

    def finish(self) -> int:
        self.write()
        record = json.loads((self.args.out / "run.json").read_text())
        print(self.table(record["targets"]), flush=True)
        print(f"results: {self.args.out} ({ARCHIVE}, run.json, summary.txt)", flush=True)
        statuses = [s.status for s in self.steps.values() if not s.earlier]
        if STOP:
            return 130
        if "failed" in statuses:
            return 1
        if "not run" in statuses or "timed out" in statuses:
            return 2
        return 0


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * value:.2f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.0f} s"
    if unit == "/s":
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"
    return f"{value:.4f}" if value < 10 else f"{value:.0f}"


def _under(path: Path, roots: set[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == r or r in resolved.parents for r in roots)


def _job_number(path: Path) -> int:
    name = path.parent.name
    return int(name) if name.isdigit() else 10**9


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return os.environ.get("ERF_GIT_COMMIT") or None


def _write_json(record: dict[str, Any], path: Path) -> None:
    _write_text(json.dumps(record, indent=2, default=str) + "\n", path)


def _write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _on_signal(signum, _frame) -> None:
    STOP.append(signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.dry_run_install:
        for command in install_commands(sys.executable, args.wheels):
            print(" ".join(shlex.quote(c) for c in command))
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    run = Run(args)
    try:
        return run.run()
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        for step in run.steps.values():
            if not step.earlier:
                step.reason = step.reason or "not started: the run stopped before it"
        with contextlib.suppress(OSError):
            run.write()
        return 1


if __name__ == "__main__":
    sys.exit(main())
