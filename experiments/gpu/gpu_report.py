"""What the GPU run leaves behind: the hardware it ran on, every target with its measured
value and met / not met / not run, the summary table, ``run.json`` and the archive
``gpu_results.tar.gz``. The functions take the ``Run`` of ``run_all`` (its ``args``,
``sizes``, ``steps``, ``hardware``, ``notes`` and ``archive``). Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_common import REPO, Step, write_json, write_text
from gpu_steps import STEPS

if TYPE_CHECKING:
    from run_all import Run

ARCHIVE = "gpu_results.tar.gz"
ARCHIVE_LIMIT = 15 * 2**20  # the device tool returns files of at most 16 MiB
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
Measured = tuple[str, float | None, str]  # label, value (None: not run), note


# -- the machine and the commit ------------------------------------------------------------


def read_hardware(py: str, cpu: bool, env: dict[str, str]) -> dict[str, Any]:
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
    if cpu:
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
            [py, "-c", code], capture_output=True, text=True, timeout=120, env=env
        )
        info.update(json.loads(proc.stdout.strip().splitlines()[-1]), device="cuda")
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        info["cuda_available"] = False
    return info


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


# -- targets ---------------------------------------------------------------------------------


def measured(run: Run) -> dict[str, Measured]:
    """Each target's label, measured value (None: not run) and a note."""
    out = _benchmark_targets(run)
    out["Luo suite wall time (s)"] = _suite_target(run)
    return out


def _result(run: Run, name: str) -> dict[str, Any]:
    step = run.steps.get(name)
    return step.result if step is not None and step.status == "ok" else {}


def _pick(res: dict[str, Any], *keys: str) -> float | None:
    value: Any = res
    for key in keys:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def _benchmark_targets(run: Run) -> dict[str, Measured]:
    """The targets of bench224, bench1024 and draws."""
    s, pick = run.sizes, _pick
    small, large = _result(run, "bench224"), _result(run, "bench1024")
    draws = _result(run, "draws")
    at_s, at_l = f"{s['model']} {s['small']} px", f"{s['model']} {s['large']} px"
    luo = pick(small, "rows", "fast", "luo_rel_diff")
    return {
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


def _suite_target(run: Run) -> Measured:
    """The suite's wall time: only of one uninterrupted run (a note says why not)."""
    s, value, note = run.sizes, None, ""
    suite = run.steps.get("suite")
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
    studies = "every Luo study" if not s["suite_experiments"] else "Luo: " + s["suite_experiments"]
    return (f"{studies}, scale={s['scale']}", value, note)


def targets(run: Run) -> list[dict[str, Any]]:
    """Each target with its goal, measured value and met / not met / not run."""
    rows = []
    for key, (label, value, note) in measured(run).items():
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


# -- the table, run.json, the archive --------------------------------------------------------


def table(run: Run, rows: list[dict[str, Any]]) -> str:
    """The summary table: one line per target, then compile, the studies and the steps."""
    where = run.hardware.get("device_name") or run.args.device
    kind = "tiny rehearsal, sizes too small to mean anything" if run.args.tiny else "full"
    lines = [f"Targets on {where} ({kind}):"]
    width = max(len(r["target"]) for r in rows)
    lines.append(f"{'target':<{width}}  {'goal':>9}  {'measured':>9}  status")
    for r in rows:
        value = "-" if r["measured"] is None else _fmt(r["measured"], r["unit"])
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(f"{r['target']:<{width}}  {r['goal']:>9}  {value:>9}  {r['status']}{note}")
    compiled = run.steps.get("compile")
    ratio = compiled.result.get("ratios", {}).get("compile/probe") if compiled else None
    if compiled is not None and compiled.status == "ok" and ratio:
        lines.append(f"no target: compile / probe at {run.sizes['small']} px {ratio:.2f}x")
    suite = run.steps.get("suite")
    if suite is not None and suite.result.get("studies"):
        times = ", ".join(f"{n} {v['wall_time_s']:.1f}" for n, v in suite.result["studies"].items())
        lines.append(f"Luo studies, wall time (s): {times}")
    done = [
        f"{s.name} {s.status}" + ("" if s.wall_time_s is None else f" {s.wall_time_s:.0f} s")
        for s in run.steps.values()
    ]
    lines.append("Steps: " + ", ".join(done))
    return "\n".join(lines)


def record(run: Run) -> dict[str, Any]:
    """run.json: the machine, the command, the budget, every step and every target."""
    return {
        "what": "experiments/gpu/run.sh: benchmarks, many-draws timing and the Luo suite",
        "device": run.args.device,
        "tiny": run.args.tiny,
        "hardware": run.hardware,
        "git_commit": _git_commit(),
        "command": " ".join(shlex.quote(a) for a in ["experiments/gpu/run.sh", *sys.argv[1:]]),
        "budget_s": run.args.budget,
        "elapsed_s": round(run.elapsed(), 1),
        "sizes": run.sizes,
        "steps": [s.record() for s in run.steps.values()],
        "targets": targets(run),
        "notes": run.notes,
        "archive": run.archive,
    }


def write(run: Run) -> None:
    """run.json and summary.txt in the work folder and --out, then the archive."""
    rec = record(run)
    text = table(run, rec["targets"])
    for folder in {run.args.work, run.args.out}:
        write_json(rec, folder / "run.json")
        write_text(text + "\n", folder / "summary.txt")
    run.pack()
    rec["archive"] = run.archive
    write_json(rec, run.args.out / "run.json")


def earlier_steps(work: Path) -> dict[str, Step] | None:
    """The steps an earlier run.json in ``work`` recorded (a rerun of one step, e.g. to
    resume the suite, keeps the others' results); None if it is missing or unreadable."""
    try:
        earlier = json.loads((work / "run.json").read_text())["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {r["name"]: Step.from_record(r) for r in earlier if r.get("name") in STEPS}


def pack(work: Path, out: Path) -> dict[str, Any]:
    """Everything in ``work`` into ``out``/gpu_results.tar.gz under the size limit: if it is
    too large, the largest .npz files are left out (named in the returned record)."""
    target = out / ARCHIVE
    skip = {target.resolve(), (work / ".site").resolve()}
    files = [
        p
        for p in sorted(work.rglob("*"))
        if p.is_file() and p.suffix != ".tmp" and not _under(p, skip)
    ]
    left_out: list[str] = []
    candidates = sorted((p for p in files if p.suffix == ".npz"), key=lambda p: -p.stat().st_size)
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
    return {
        "file": ARCHIVE,
        "bytes": target.stat().st_size,
        "files": len(files) - len(left_out),
        "left_out": left_out,
    }


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
