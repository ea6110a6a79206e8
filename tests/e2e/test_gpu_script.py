"""experiments/gpu/run.sh, rehearsed on the CPU: every step the GPU run takes, at tiny sizes.

The GPU machine is lent for minutes; these tests make sure its one command cannot fail on a
typo: the benchmark at two sizes, the many-draws pass, the Luo suite, the summary table, the
archive, the budget (a step that does not fit is not started; a step past its timeout is
stopped) and the install commands (printed, not run: the project is importable here).
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import torch
from helpers.paths import REPO

SCRIPT = REPO / "experiments" / "gpu" / "run.sh"
HELPER = REPO / "experiments" / "gpu" / "run_all.py"
STATUS = re.compile(r"\s(met|not met|not run)( \(.*\))?$")
GOAL = re.compile(r"\s(>=|<=|<) \S")


def _run(*args, env=None, timeout=300):
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
        timeout=timeout,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def _table(stdout):
    """The target lines of the summary table: {label: status}."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("target "))
    rows = {}
    for line in lines[start + 1 :]:
        match = STATUS.search(line)
        if not match or not GOAL.search(line):
            break
        rows[line[: match.start()].rsplit("  ", 2)[0].strip()] = match.group(1)
    return rows


def _helper():
    spec = importlib.util.spec_from_file_location("gpu_run_all", HELPER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_shell_scripts_parse():
    for name in ("run.sh", "fetch_wheels.sh"):
        subprocess.run(["bash", "-n", str(SCRIPT.parent / name)], check=True)


@pytest.mark.slow
def test_cpu_tiny_rehearsal_runs_every_step_and_packs_everything(tmp_path):
    out = tmp_path / "out"
    proc = _run("--cpu", "--tiny", "--skip-install", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    run = json.loads((out / "run.json").read_text())
    status = {s["name"]: s["status"] for s in run["steps"]}
    assert status == {
        "install": "skipped",
        "bench224": "ok",
        "bench1024": "ok",
        "draws": "ok",
        "suite": "ok",
        "compile": "ok",
    }
    assert run["hardware"]["device"] == "cpu" and run["hardware"]["torch"]
    assert run["budget_s"] == 480 and run["git_commit"]
    assert all(s["wall_time_s"] > 0 for s in run["steps"] if s["status"] == "ok")
    # every target was measured (met or not: the sizes are too small to mean anything)
    assert [t["status"] for t in run["targets"]].count("not run") == 0
    assert len(run["targets"]) == 9

    for folder in ("cpu_resnet18_32", "cpu_resnet18_64", "cpu_resnet18_32_compile"):
        for name in ("benchmark.csv", "benchmark.json", "benchmark.png"):
            assert (out / "benchmarks" / folder / name).stat().st_size > 0
    small = json.loads((out / "benchmarks" / "cpu_resnet18_32" / "benchmark.json").read_text())
    assert {r["method"] for r in small["rows"]} == {"probe", "per_image", "floor", "fast"}
    large = json.loads((out / "benchmarks" / "cpu_resnet18_64" / "benchmark.json").read_text())
    assert (large["input_h"], {r["method"] for r in large["rows"]}) == (
        64,
        {"probe", "per_image", "fast"},
    )
    draws = json.loads((out / "benchmarks" / "cpu_draws.json").read_text())
    assert sorted(j["draws"] for j in draws["jobs"]) == [1, 1, 3, 3]
    assert draws["ratio"] == draws["many_draws_s"] / draws["one_draw_s"] > 0
    suite = json.loads((out / "luo2016" / "suite_cpu.json").read_text())
    assert [e["name"] for e in suite["experiments"]] == ["depth_sweep"]
    assert suite["scale"] == "tiny" and suite["experiments"][0]["returncode"] == 0
    assert list((out / "luo2016" / "figures").glob("depth_sweep__*.png"))

    # the key files beside the archive, and everything inside it
    for name in ("run.json", "summary.txt", "cpu_resnet18_32.json", "cpu_resnet18_64.json",
                 "cpu_draws.json", "suite_cpu.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0
    archive = out / "gpu_results.tar.gz"
    assert archive.stat().st_size < 16 * 2**20
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    packed = [
        "run.json",
        "benchmarks/cpu_resnet18_32/benchmark.json",
        "benchmarks/cpu_resnet18_64/benchmark.csv",
        "benchmarks/cpu_draws.json",
        "luo2016/suite_cpu.json",
        "luo2016/depth_sweep/summary.csv",
        "logs/suite.log",
    ]
    assert set(packed) <= names
    assert run["archive"]["left_out"] == []

    table = _table(proc.stdout)
    assert len(table) == 9 and "not run" not in table.values()
    assert set(table.values()) <= {"met", "not met"}
    assert (out / "summary.txt").read_text().count("\n") >= 11

    # run again into the same folder, the suite only: it resumes, the other steps keep the
    # first run's results, and the suite's time no longer counts for the target
    proc = _run("--cpu", "--tiny", "--skip-install", "--steps", "suite", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rerun = json.loads((out / "run.json").read_text())
    steps = {s["name"]: s for s in rerun["steps"]}
    assert "resume=true" in steps["suite"]["command"] and "earlier_run" not in steps["suite"]
    assert steps["bench224"]["earlier_run"] and steps["bench224"]["status"] == "ok"
    assert rerun["targets"][:8] == run["targets"][:8]
    assert rerun["targets"][8]["status"] == "not run"
    assert rerun["targets"][8]["note"] == "resumed: needs one uninterrupted run"


@pytest.mark.slow
def test_a_tiny_budget_stops_cleanly_after_the_first_step(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    # 1000 s: the first step may take 1000 - 10 (finish) - 10 (grace) = 980 s, far above its
    # work on any machine; after it (a second at least), less than the 979 s every step asks
    # for is left, so the run stops between steps. No wall-clock race on a loaded machine.
    proc = _run("--cpu", "--tiny", "--skip-install", "--budget", "1000", "--min-step", "979",
                "--out", str(out), "--work", str(work))  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    status = {s["name"]: s["status"] for s in run["steps"]}
    assert status["bench224"] == "ok"
    later = ("bench1024", "draws", "suite", "compile")
    assert [status[name] for name in later] == ["not run"] * 4
    reasons = {s["name"]: s.get("reason", "") for s in run["steps"]}
    assert reasons["bench1024"].startswith("budget:")
    assert all("budget exhausted" in reasons[name] for name in later[1:])
    assert "stop: bench1024 and after not run" in proc.stdout

    # --out holds only the archive and the key files; the steps wrote under --work
    assert sorted(p.name for p in out.iterdir()) == [
        "cpu_resnet18_32.json", "gpu_results.tar.gz", "run.json", "summary.txt",
    ]  # fmt: skip
    assert (work / "benchmarks" / "cpu_resnet18_32" / "benchmark.json").exists()
    with tarfile.open(out / "gpu_results.tar.gz") as tar:
        assert "benchmarks/cpu_resnet18_32/benchmark.csv" in tar.getnames()
    table = _table(proc.stdout)
    assert list(table.values())[5:] == ["not run"] * 4
    assert "not run" not in list(table.values())[:5]


def test_a_step_past_its_timeout_is_stopped_and_killed_if_it_ignores_sigterm(tmp_path):
    helper = _helper()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    ]
    # wall < 55: stopped, not ended by its own 60 s sleep (a limit far above the 1 s + grace
    # the stop takes, so a loaded machine does not break it)
    status, code, wall = helper.run_process(sleeper, tmp_path / "a.log", 1, {}, grace=5)
    assert (status, code) == ("timed out", -15) and wall < 55
    status, code, wall = helper.run_process(stubborn, tmp_path / "b.log", 1, {}, grace=1)
    assert (status, code) == ("timed out", -9) and wall < 55
    status, code, _ = helper.run_process([sys.executable, "-c", "raise SystemExit(3)"],
                                         tmp_path / "c.log", 10, {}, grace=1)  # fmt: skip
    assert (status, code) == ("failed", 3)


def test_a_bad_option_is_one_line(tmp_path):
    proc = _run("--steps", "bench224,warp", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: --steps: unknown ['warp']; choose from "
        "install,bench224,bench1024,draws,suite,compile (see --help)"
    ]


def test_the_install_commands_are_offline_and_nothing_before_them_needs_hydra(tmp_path):
    wheels = tmp_path / "wheels"
    proc = _run("--dry-run-install", "--wheels", str(wheels))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{sys.executable} -m pip install --no-index --find-links {wheels} "
        "hydra-core omegaconf antlr4-python3-runtime",
        f"{sys.executable} -m pip install --no-deps --no-build-isolation {REPO}",
    ]

    # hydra, omegaconf and antlr4 made unimportable: the script gets as far as the install
    # step and stops there with one line naming the missing wheels (pip is never started)
    blocker = tmp_path / "blocker"
    for name in ("hydra", "omegaconf", "antlr4"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} blocked')\n")
    wheels.mkdir()
    out = tmp_path / "out"
    proc = _run("--cpu", "--steps", "install,bench224", "--wheels", str(wheels),
                "--out", str(out), env={"PYTHONPATH": str(blocker)})  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    install, bench = run["steps"]
    assert install["status"] == "failed" and bench["status"] == "not run"
    assert install["reason"].startswith(
        "no wheel for hydra-core, omegaconf, antlr4-python3-runtime in "
    )
    assert "install: failed: no wheel for" in proc.stdout


def test_without_cuda_the_gpu_run_stops_with_one_line_before_any_step(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    proc = _run("--tiny", "--skip-install", "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: CUDA is not available to {sys.executable} (torch {torch.__version__}, "
        f"CUDA build {torch.version.cuda}): rehearse with --cpu"
    ]
    run = json.loads((out / "run.json").read_text())
    assert {s["status"] for s in run["steps"]} == {"not run"}
    assert (out / "gpu_results.tar.gz").exists()


def test_the_archive_leaves_out_the_largest_maps_when_it_would_exceed_16_mib(tmp_path):
    helper = _helper()
    work = tmp_path / "work"
    (work / "luo2016" / "growth" / "0").mkdir(parents=True)
    (work / "luo2016" / "growth" / "0" / "draws.npz").write_bytes(os.urandom(12 * 2**20))
    (work / "luo2016" / "growth" / "0" / "erf.npz").write_bytes(os.urandom(6 * 2**20))
    (work / "luo2016" / "growth" / "0" / "metrics.json").write_text("{}")
    run = helper.Run(helper.parse_args(["--cpu", "--out", str(tmp_path / "out"),
                                        "--work", str(work)]))  # fmt: skip
    run.pack()
    assert run.archive["left_out"] == ["luo2016/growth/0/draws.npz"]
    archive = tmp_path / "out" / "gpu_results.tar.gz"
    assert archive.stat().st_size <= 15 * 2**20
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "luo2016/growth/0/erf.npz", "luo2016/growth/0/metrics.json",
        ]  # fmt: skip


def test_the_full_size_gpu_commands_pass_erfs_own_validation(tmp_path):
    from erf.app.validate import preflight

    helper = _helper()
    run = helper.Run(helper.parse_args(["--out", str(tmp_path)]))
    for name in ("bench224", "bench1024", "draws", "suite", "compile"):
        command, _ = run.command(name)
        assert command[:3] == [sys.executable, "-m", "erf.run"] and "device=cuda" in command
        preflight([a for a in command[3:] if not a.startswith("-")])  # raises on a bad value
    for study in run.sizes["suite_experiments"] or _paper_studies():
        preflight([f"experiment={study}", "scale=paper", "device=cuda"])


def _paper_studies():
    import yaml

    from erf.app.config import EXPERIMENT_DIR

    return yaml.safe_load((EXPERIMENT_DIR / "paper_figures.yaml").read_text())["suite"][
        "experiments"
    ]
