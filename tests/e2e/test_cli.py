"""The ``erf`` command (``python -m erf``): usage, the experiment listing, clean one-line
errors, and each subcommand doing what its ``python -m erf.<module>`` twin does.

What only a process shows runs in one (what it imports, its exit status and streams for an
unknown command and a refused value); the subcommands' work runs in this process."""

import csv
import sys

import pytest
from helpers.cli import run_command, run_erf
from helpers.inprocess import run_erf_here

import erf
from erf.cli import COMMANDS, main

TINY = [
    "model.depth=2",
    "model.channels=2",
    "inputs.size=[16,16]",
    "probe.n_samples=2",
    "probe.batch_size=2",
]


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["experiments"]])
def test_help_version_and_the_listing_do_not_import_torch(args):
    """What the process imports is the point: ``python -X importtime`` lists every module."""
    proc = run_command([sys.executable, "-X", "importtime", "-m", "erf", *args])
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "erf.cli" in imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


def test_help_lists_every_subcommand_with_an_example():
    proc = run_erf_here("--help")
    for command in ("run", "layers", "report", "train-summary", "experiments"):
        assert f"\n  {command} " in proc.stdout
    assert "erf run experiment=depth_sweep" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize("argv", [[], ["-h"], ["--help"]])
def test_no_command_or_h_prints_the_usage(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: erf <command>")
    assert all(f"\n  {command} " in out for command in COMMANDS)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["erf", erf.__version__]


def test_experiments_lists_each_experiment_with_its_description():
    proc = run_erf_here("experiments")
    rows = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert {"depth_sweep", "growth", "paper_figures", "trained_vs_untrained"} <= set(rows)
    assert rows["depth_sweep"].startswith("Luo et al. 2016, §3.1")


def test_an_unknown_command_is_one_line_with_the_choices_and_exit_2():
    proc = run_erf("mesure", "experiment=depth_sweep", check=False)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "unknown command 'mesure'" in line
    assert "run, layers, report, train-summary, experiments" in line
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report"], "the following arguments are required: sweep_dir (see: erf report --help)"),
        (["report", "/no/such/sweep"], "/no/such/sweep is not a directory"),
        (["report", ".", "--bogus"], "unrecognized arguments: --bogus"),
        (["train-summary", "/no/such/sweep"], "no finished training jobs"),
        (["experiments", "extra"], "erf experiments takes no arguments"),
    ],
)
def test_argument_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err)


def test_layers_lists_a_tiny_models_layers_with_their_trf():
    proc = run_erf_here("layers", "model.depth=3", "model.channels=2", "inputs.size=[16,16]")
    assert "TRF" in proc.stdout.splitlines()[0]
    assert "probe.target=auto picks" in proc.stdout


def test_run_keeps_hydras_flags_and_job_name():
    proc = run_erf_here("run", "--cfg", "hydra", "-p", "hydra.job.name")
    assert proc.stdout.strip() == "run"


def test_run_rejects_a_bad_value_in_one_line_with_exit_2():
    proc = run_erf("run", "model.depth=0", check=False)
    assert proc.returncode == 2
    assert "model.depth=0 is not allowed" in _one_error_line(proc.stderr)


@pytest.fixture(scope="module")
def tiny_multirun(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("cli") / "sweep"
    proc = run_erf_here(
        "run", "-m", *TINY, "model.init=uniform,random", f"hydra.sweep.dir={sweep_dir}"
    )
    return sweep_dir, proc


def test_run_multirun_writes_one_job_per_point(tiny_multirun):
    sweep_dir, _ = tiny_multirun
    jobs = sorted(p.parent.name for p in sweep_dir.glob("*/metrics.json"))
    assert len(jobs) == 2


def test_report_rebuilds_the_summary_of_a_sweep(tiny_multirun):
    sweep_dir, _ = tiny_multirun
    proc = run_erf_here("report", str(sweep_dir), "--group-by", "init")
    assert proc.stdout.strip().splitlines()[-1] == f"results: {sweep_dir}"
    with open(sweep_dir / "summary.csv") as f:
        assert sorted(r["init"] for r in csv.DictReader(f)) == ["random", "uniform"]
