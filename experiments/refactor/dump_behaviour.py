#!/usr/bin/env python3
"""Dump erf's user-visible behaviour as normalised text, to compare two versions byte for byte.

    python experiments/refactor/dump_behaviour.py --python /path/to/python \
        --pythonpath /path/to/checkout --out DIR [--cases PATTERN ...] [--jobs N]

Standalone: the standard library only, and erf only through its command line (``python -m
erf.run``, ``python -m erf.report``, ``python -m erf ...``), so the same script runs against any
version of the package. PYTHONPATH is set to the checkout (first, ahead of an editable install
of another checkout in the venv); the script checks that ``import erf`` resolves there and stops
otherwise.

Every case runs in its own temporary folder <tmp> (the working directory; the output folder
is <tmp>/run, given as ``hydra.run.dir`` / ``hydra.sweep.dir``), one case at a time. DIR then
holds (see --list for the cases):

- DIR/<case>/step1.txt, step2.txt, ...: each command (normalised), its exit status, its stdout
  and its stderr (separately);
- DIR/<case>/files/ and manifest.txt (for a case of several steps: DIR/<case>/stepN/files/ and
  stepN/manifest.txt, taken after each step, as a report step rewrites the sweep's files):
  every text file under the run folder (csv, md, json, tex, txt, yaml, html, log), normalised,
  Hydra's ``.hydra/`` folders left out; for each .npz a ``<name>.npz.txt`` with each array's
  name, dtype, shape and the sha256 of its bytes (read with the given python's numpy), and the
  JSON header array as normalised text; the manifest lists every file and folder, with the
  sha256 of each other binary file (figures, .pt), except those whose bytes change from run to
  run (VOLATILE_BINARIES);
- DIR/cli/<case>.txt and DIR/errors/<case>.txt: commands that only print, and configurations
  that must be refused: the command, exit status, stdout, stderr and the files the command left
  in <tmp> (a refused config must leave none).

What is normalised, and why. Found by dumping the same checkout twice and diffing, and by what
differs between two checkouts of the same behaviour:

- paths: the run folder -> <RUN>, its temporary parent -> <TMP>, the venv (sys.prefix and
  sys.base_prefix) -> <VENV>, the checkout -> <SRC>, the home folder -> <HOME>; the checkout's
  git commit -> <GIT>; the host name -> <HOST>;
- timestamps (2026-12-07 05:28:24, 2026-12-07_05-28-24, Hydra's log prefix
  [2026-12-07 05:28:24,866], "built ... UTC" of the report pages) -> <TIME>, dates -> <DATE>;
- by key name in JSON (the value, in the original text: formatting and key order are still
  compared), by column name in CSV, Markdown, HTML and console tables, and in "key: value"
  lines and HTML key-value rows (VOLATILE_KEYS, VOLATILE_KEY_PATTERNS) -> <V>: wall times and
  every *_time_s, the benchmark's timings, images/s and speed ratios (vs_*, its "ratios" map),
  pid, host, machine / hardware (CPU model and cores), load averages, erf / torch / Python
  versions, the git commit, and two hashes of code: code_sha256 (of the source file that
  defines model._target_, e.g. erf/nets/luo.py: a refactor may edit it without changing any
  result) and settings_fingerprint (a hash of the settings, which include that code hash; the
  settings themselves are compared in full as ``config`` in metrics.json);
- the size and sha256 of .npz files in metrics.json's ``files`` map, and the header array's
  dtype (<U1016: its length): the header holds the wall time (the arrays are compared through
  their own hashes);
- in free text (stdout, stderr, logs, report pages): numbers with a unit of time (``in 0.0s``,
  ``3.2 s``) -> <DUR>, throughput (``12 img/s``) -> <RATE>, ``pid N``, file sizes shown by
  the report pages ("(9.9 kB)": a metrics.json's size moves with its wall time's digits) ->
  (<SIZE>), the benchmark's "ratios:" line;
- report.html's embedded figures -> a sha256 of their base64 text (stable between runs);
- dropped from stdout / stderr / logs: progress bars (tqdm segments and their carriage
  returns), and matplotlib's font-fallback warnings (they depend on the machine's fonts and
  font cache, not on erf).

The environment is fixed too: PYTHONPATH=<checkout>, PYTHONHASHSEED=0, COLUMNS=120, TZ=UTC,
LC_ALL=C.UTF-8, MPLBACKEND=Agg, no HYDRA_* / ERF_* variables; bytecode goes to
<tempdir>/erfdump-pycache (PYTHONPYCACHEPREFIX), never into the checkout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------

# A step is one command line: "MODULE ARG ARG ..." (no argument holds a space), run as
# ``python -m MODULE ARG ...``; {RUN} is the case's output folder, {TMP} its parent (the
# working directory). RUN_DIR / SWEEP_DIR point Hydra there.
RUN_DIR = "hydra.run.dir={RUN}"
SWEEP_DIR = "hydra.sweep.dir={RUN}"

# A small Luo net: 3 random ReLU convs of 4 channels on 16x16 inputs, 8 samples. Its modules
# are 0..5 (conv, relu, conv, relu, ...): probe.target='4' (quoted: a bare 4 is an integer,
# refused) is the last conv.
LUO = (
    "model.depth=3 model.channels=4 model.init=random model.activation=relu "
    "inputs.size=[16,16] probe.n_samples=8 probe.batch_size=4"
)


def _measure(extra: str) -> list[str]:
    return [f"erf.run {LUO} {extra} {RUN_DIR}"]


# name -> its steps, run in order in one temporary folder.
CASES: dict[str, list[str]] = {
    # 1. single measurements on the small Luo net: every reduction, normalise, seeding, draws,
    # the Luo protocol, the OpenERF preset, and a few other code paths
    "measure_reduce_abs": _measure("probe.reduce=abs"),
    "measure_reduce_relu": _measure("probe.reduce=relu"),
    "measure_reduce_square": _measure("probe.reduce=square"),
    "measure_reduce_clamp_after_mean": _measure("probe.reduce=clamp_after_mean"),
    "measure_reduce_clamp_per_image": _measure("probe.reduce=clamp_per_image"),
    "measure_normalise_sum": _measure("probe.normalise=sum"),
    "measure_seeding_channel": _measure("probe.seeding=channel probe.channel=0"),
    "measure_channel_only": _measure("probe.channel=1"),
    "measure_seeding_channel_mean": _measure("probe.seeding=channel_mean"),
    "measure_seeding_relu_gated": _measure("probe.seeding=relu_gated probe.target='4'"),
    "measure_seeding_per_channel_normalised": _measure("probe.seeding=per_channel_normalised"),
    "measure_draws3": _measure("probe.draws=3"),
    "measure_draws3_equal": _measure("probe.draws=3 probe.draw_weight=equal"),
    "measure_protocol_luo": _measure("probe.protocol=luo probe.n_samples=2 probe.draws=2"),
    "measure_openerf": _measure("probe=openerf"),
    "measure_strided_crop": _measure("model.stride=[2,1,1] probe.crop=auto"),
    "measure_profile_layers": _measure("profile.layers=[1,5]"),
    "measure_uniform_inputs_float64": _measure("inputs=uniform probe.dtype=float64"),
    "measure_uniform_linear_log": [
        "erf.run model.depth=4 model.channels=1 inputs.size=[18,18] probe.n_samples=2 "
        f"probe.batch_size=2 plot.scale=log probe.bootstrap_groups=0 {RUN_DIR}"
    ],
    "measure_residual_stack": [
        "erf.run model=residual_stack model.blocks=2 model.channels=2 inputs.size=[16,16] "
        f"probe.n_samples=4 probe.batch_size=2 fit.bootstrap=20 {RUN_DIR}"
    ],
    # an input smaller than the TRF: trf_clipped, a warning in metrics.json and on the figures
    "measure_clipped_trf": [
        "erf.run model.depth=12 model.channels=1 inputs.size=[12,12] probe.n_samples=2 "
        f"probe.batch_size=2 fit.bootstrap=0 {RUN_DIR}"
    ],
    # 2. a tiny depth sweep, then the report on its folder (default, then other options); the
    # same through the erf command with a plain multirun
    "depth_sweep_tiny": [
        f"erf.run experiment=depth_sweep scale=tiny {SWEEP_DIR}",
        "erf.report {RUN}",
        "erf.report {RUN} --group-by init --x depth",
    ],
    "multirun_cli": [
        "erf run -m model.depth=2,4 model.channels=2 inputs.size=[16,16] probe.n_samples=2 "
        f"probe.batch_size=2 model.init=uniform,random {SWEEP_DIR}",
        "erf report {RUN} --group-by init",
    ],
    # 3. the other experiments, at scale=tiny or with the tests' small overrides
    "activation_sweep_tiny": [f"erf.run experiment=activation_sweep scale=tiny {SWEEP_DIR}"],
    "subsample_dilation_tiny": [f"erf.run experiment=subsample_dilation scale=tiny {SWEEP_DIR}"],
    "growth_tiny": [
        f"erf.run experiment=growth scale=tiny model.activation=relu {SWEEP_DIR}",
        "erf.report {RUN} --study growth --group-by init activation protocol",
    ],
    "growth_reductions_tiny": [f"erf.run experiment=growth_reductions scale=tiny {SWEEP_DIR}"],
    "dropout_skip_tiny": [f"erf.run experiment=dropout_skip scale=tiny {SWEEP_DIR}"],
    "skip_scale_tiny": [f"erf.run experiment=skip_scale scale=tiny {SWEEP_DIR}"],
    "init_sweep_tiny": [f"erf.run experiment=init_sweep scale=tiny {SWEEP_DIR}"],
    "activation_saturation_tiny": [
        "erf.run experiment=activation_saturation scale=tiny model.activation=tanh,relu "
        f"model.weight_scale=1,4 {SWEEP_DIR}"
    ],
    "activation_settings_tiny": [
        f"erf.run experiment=activation_settings scale=tiny model.depth=2 {SWEEP_DIR}"
    ],
    "cross_arch_tiny": [
        f"erf.run experiment=cross_arch scale=tiny {SWEEP_DIR}",
        "erf.report {RUN} --study cross_arch --x label",
    ],
    "trained_vs_untrained_tiny": [
        f"erf.run experiment=trained_vs_untrained scale=tiny train.threads=1 {SWEEP_DIR}",
        "erf train-summary {RUN}",
    ],
    "benchmark_small": [
        "erf.run experiment=benchmark inputs.size=[32,32] probe.n_samples=2 probe.batch_size=2 "
        "benchmark.repeats=1 benchmark.warmup=0 benchmark.threads=1 "
        "benchmark.methods=[probe,per_image,floor,multi] benchmark.multi_targets=[layer1,layer2] "
        f"{RUN_DIR}"
    ],
    "calibration_small": [
        "erf.run experiment=calibration calibration.repetitions=6 "
        "calibration.reference_samples=256 calibration.cases=[box_depth4_n64] model.depth=2 "
        "model.channels=4 inputs.size=[9,9] probe.n_samples=16 probe.batch_size=16 "
        f"fit.bootstrap=20 {RUN_DIR}"
    ],
    "layer_profile_resnet18": [
        "erf.run experiment=layer_profile model.name=resnet18 inputs.size=[64,64] "
        f"probe.n_samples=2 probe.batch_size=2 fit.bootstrap=20 {RUN_DIR}"
    ],
    "real_models_small": [
        "erf.run experiment=real_models model.name=resnet18,vgg11 inputs.size=[64,64] "
        f"probe.n_samples=2 fit.bootstrap=20 {SWEEP_DIR}"
    ],
    "paper_figures_tiny": [
        f"erf.run experiment=paper_figures scale=tiny suite.experiments=[dropout_skip] {RUN_DIR}"
    ],
}

# 4. commands that print (cli/) and configurations that must be refused (errors/): one step
# each, recorded in one file per case with the files it left in {TMP} (a refused config must
# leave none).
CLI: dict[str, str] = {
    "erf_help": "erf --help",
    "erf_no_args": "erf",
    "erf_version": "erf --version",
    "erf_experiments": "erf experiments",
    "erf_unknown_command": "erf mesure experiment=depth_sweep",
    "erf_run_help": "erf run --help",
    "erf_layers_help": "erf layers --help",
    "erf_report_help": "erf report --help",
    "erf_train_summary_help": "erf train-summary --help",
    "erf_layers_conv_stack": "erf layers model.depth=3 model.channels=2 inputs.size=[16,16]",
    "erf_layers_resnet18": "erf layers model=torchvision model.name=resnet18 inputs.size=[64,64]",
    "run_cfg_job": f"erf.run --cfg job {LUO} probe=openerf",
    "run_cfg_job_experiment": "erf.run --cfg job experiment=growth scale=tiny",
    "run_cfg_hydra_job_name": "erf run --cfg hydra -p hydra.job.name",
    "report_missing_folder": "erf.report {RUN}/nothing_here",
    "report_empty_folder": "erf.report {TMP}",
    "train_summary_empty_folder": "erf train-summary {TMP}",
}

# name -> the bad overrides of ``python -m erf.run`` (see _error_case for what is added)
BAD: dict[str, str] = {
    # probe.* values (erf/app/validate.py RULES, erf.probe.options.seeding_problem)
    "probe_n_samples_0": "probe.n_samples=0",
    "probe_n_samples_huge": "probe.n_samples=1000000000",
    "probe_batch_size_word": "probe.batch_size=big",
    "probe_reduce_mean": "probe.reduce=mean",
    "probe_reduce_signed_clamp": "probe.reduce=signed_clamp",
    "probe_seeding_bad": "probe.seeding=everything",
    "probe_seeding_channel_no_channel": "probe.seeding=channel",
    "probe_channel_with_channel_mean": "probe.seeding=channel_mean probe.channel=0",
    "probe_channel_negative": "probe.channel=-1",
    "probe_pcn_clamp_after_mean": (
        "probe.seeding=per_channel_normalised probe.reduce=clamp_after_mean"
    ),
    "probe_normalise_max": "probe.normalise=max",
    "probe_dtype_float16": "probe.dtype=float16",
    "probe_draws_0": "probe.draws=0",
    "probe_draws_with_crop_on": "probe.draws=2 probe.crop=on",
    "probe_protocol_bad": "probe.protocol=paper",
    "probe_runs_0": "probe.protocol=luo probe.runs=0",
    "probe_position_bad": "probe.position=middle",
    "probe_position_outside": "probe.position=[99,99]",
    "probe_layout_bad": "probe.layout=HWC",
    "probe_target_unknown": "probe.target=layers.99",
    "probe_target_int": "probe.target=4",
    # unknown keys, groups and required values
    "unknown_key_probe": "probe.n_sampels=4",
    "unknown_key_added": "+probe.n_sampels=4",
    "unknown_key_model": "model.depht=3",
    "unknown_top_level_key": "nonsense=1",
    "bad_model_name": "model=resnet",
    "bad_model_torchvision_name": "model=torchvision model.name=resnet_nope",
    "bad_probe_preset": "probe=hyperopt",
    "bad_experiment": "experiment=depth_sweeps",
    "override_syntax": "probe.n_samples=[1,",
    "delete_model": "~model",
    "custom_without_target": "model=custom",
    "imagefolder_without_root": "inputs=imagefolder",
    "imagefolder_missing_root": "inputs=imagefolder inputs.root={TMP}/no_such_folder",
    # model.* values
    "model_depth_0": "model.depth=0",
    "model_depth_kanji": "model.depth=三",
    "model_kernel_even": "model.kernel_size=4",
    "model_activation_swish": "model.activation=swish",
    "model_weight_std_inf": "model.weight_std=inf",
    "model_too_many_weights": "model.channels=65536 model.kernel_size=25",
    # other sections, launchers and the output folder
    "plot_format_gif": "plot.format=gif",
    "fit_ci_level_1": "fit.ci_level=1",
    "launcher_slurm": "hydra/launcher=slurm",
    "run_dir_is_file": "hydra.run.dir={TMP}/afile",
    "profile_layers_bad": "profile.layers=5",
    # experiment keys
    "calibration_cases_bad": "experiment=calibration calibration.cases=[box_depth5]",
    "calibration_photos": "experiment=calibration inputs=photos calibration.repetitions=2",
    "benchmark_methods_bad": "experiment=benchmark benchmark.methods=[probe,turbo]",
    "benchmark_batch_auto": "experiment=benchmark probe.batch_size=auto inputs.size=[32,32]",
    # train.* and data.* values (erf/app/train_rules.py)
    "train_without_data": "train=default",
    "train_lr_inf": "setting=classification train.lr=inf",
    "train_optimizer_bad": "setting=classification train.optimizer=lbfgs",
    "train_momentum_1": "setting=classification train.momentum=1",
    "data_classes_bad": "setting=segmentation data.classes=9",
    "data_cifar10_missing": "setting=classification data=cifar10 data.root={TMP}/cifar",
    "inputs_dataset_outside_training": "inputs=dataset",
    "probe_protocol_luo_pretrained": (
        "model=torchvision model.name=resnet18 model.weights=DEFAULT probe.protocol=luo"
    ),
}
# Were a bad config accepted after all, the job should be small: the default conv stack gets
# small sizes (the keys the case does not set itself), a training setting scale=tiny.
SMALL = "model.depth=2 model.channels=1 inputs.size=[16,16] probe.n_samples=2 probe.batch_size=2"


def _error_case(args: str) -> str:
    words = args.split()
    keys = {w.lstrip("+~").split("=")[0] for w in words}
    if "setting" in keys:
        words.append("scale=tiny")
    elif not keys & {"model", "experiment", "setting"}:
        words += [w for w in SMALL.split() if w.split("=")[0] not in keys]
    if "hydra.run.dir" not in keys:
        words.append(RUN_DIR)
    return " ".join(["erf.run", *words])


ERRORS: dict[str, str] = {name: _error_case(args) for name, args in BAD.items()}
# Every value of a sweep is checked before the first job (and against the sweep folder).
ERRORS["sweep_value_bad"] = f"erf.run -m model.depth=2,0 {SMALL.split(maxsplit=1)[1]} {SWEEP_DIR}"
# errors/sweep_resume_mismatch (resume_mismatch_case): a sweep, then resumed with another
# setting.

# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

TEXT_SUFFIXES = {".csv", ".md", ".json", ".tex", ".txt", ".yaml", ".yml", ".html", ".log"}

# JSON keys / table columns whose values change from run to run, or between two checkouts of
# the same behaviour. Exact names, then patterns.
_TIME = "wall_time_s time_s seconds elapsed elapsed_s duration duration_s timestamp"
_SPEED = "best_s median_s mean_s images_per_s throughput speedup"  # the benchmark's columns
_MACHINE = "host hostname pid load_avg loadavg load_average machine hardware"
_CODE = "erf_version torch_version python python_version git_commit code_sha256"
VOLATILE_KEYS = {*f"{_TIME} {_SPEED} {_MACHINE} {_CODE} settings_fingerprint".split()}
VOLATILE_KEY_PATTERNS = [
    re.compile(p)
    for p in (
        r".*_time_s$",
        r".*wall_time.*",
        r".*_seconds$",
        r".*_per_s$",
        r".*_version$",
        r"^(time|wall|elapsed|duration).*",
        r".*load_?av.*",
        r"^vs_.*",  # the benchmark's speed ratios (vs_per_image, vs_floor, vs_probe) ...
        r"^[a-z_]+/[a-z_]+$",  # ... and its "ratios" map (probe/per_image, multi/separate)
    )
]


def volatile(key: str) -> bool:
    return key in VOLATILE_KEYS or any(p.fullmatch(key) for p in VOLATILE_KEY_PATTERNS)


TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[ T_]\d{2}[:-]\d{2}[:-]\d{2}(?:[.,]\d+)?(?: ?UTC|Z|[+-]\d{2}:?\d{2})?"
)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# numbers with a unit of time or a throughput, in free text
DURATION = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?: ?(?:s|ms|µs|us|min|sec|seconds))(?![\w/])"
)
THROUGHPUT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)? ?(?:img|images|it|samples)/s\b")
PID = re.compile(r"\bpid[ =:]*\d+")
# file sizes in the report pages' job listings: a metrics.json or .npz holds the wall time, so
# its size moves with the digits of that number
SIZE = re.compile(r"\(\d+(?:\.\d+)? ?(?:B|bytes|kB|KB|KiB|MB|MiB|GB|GiB)\)")
TQDM = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\|\s*\d+/\d+ \[|it/s\]|img/s\]|s/it\]|s/img\]")
# Third-party noise in the logs: matplotlib's font fallback messages depend on the fonts and
# font cache of the machine, not on erf.
NOISE = re.compile(r"\[matplotlib\.font_manager\]|findfont: Font family")
DATA_URI = re.compile(r"data:image/([a-z+]+);base64,[A-Za-z0-9+/=]+")


class Normaliser:
    """Replaces the run-specific parts of a text (see the module docstring)."""

    def __init__(self, run: Path, tmp: Path, src: Path, venv: list[str], commit: str | None):
        pairs = []
        for path, tag in ((run, "<RUN>"), (tmp, "<TMP>")):
            pairs += [(str(path), tag), (os.path.realpath(path), tag)]
        for v in venv:
            pairs += [(v, "<VENV>"), (os.path.realpath(v), "<VENV>")]
        pairs += [(str(src), "<SRC>"), (os.path.realpath(src), "<SRC>")]
        pairs += [(str(Path.home()), "<HOME>")]
        # longest first: a venv inside the checkout must become <VENV>, not <SRC>/.venv
        self.pairs = sorted({p for p in pairs if p[0] and p[0] != "/"}, key=lambda p: -len(p[0]))
        self.commit = commit
        self.host = socket.gethostname()

    def text(self, s: str) -> str:
        for old, new in self.pairs:
            s = s.replace(old, new)
        if self.commit:
            s = s.replace(self.commit, "<GIT>")
        s = TIMESTAMP.sub("<TIME>", s)
        s = DATE.sub("<DATE>", s)
        s = THROUGHPUT.sub("<RATE>", s)
        s = DURATION.sub("<DUR>", s)
        s = PID.sub("pid <PID>", s)
        s = SIZE.sub("(<SIZE>)", s)
        if len(self.host) > 3:
            s = re.sub(rf"\b{re.escape(self.host)}\b", "<HOST>", s)
        s = _KEY_LINE.sub(lambda m: m.group(1) + ("<V>" if volatile(m.group(2)) else m.group(3)), s)
        return s

    def stream(self, s: str) -> str:
        """stdout / stderr: without progress bars, then as text."""
        lines = []
        for line in s.replace("\r\n", "\n").split("\n"):
            kept = [p.rstrip() for p in line.split("\r") if p.strip() and not TQDM.search(p)]
            kept = [p for p in kept if not NOISE.search(p)]
            if kept:
                lines.append(" ".join(kept))
            elif not line.strip():
                lines.append("")  # an empty line stays; a line of progress bars goes
        return self.text(normalise_console_tables("\n".join(lines)))


def normalise_console_tables(s: str) -> str:
    """Whitespace-aligned tables printed to the console (the benchmark's): a header line of
    names, at least one volatile, then rows; the volatile columns' values -> <V>, every row
    re-joined with two spaces (the alignment follows the widths of those values). A
    ``ratios: ...`` line of speed ratios gets its numbers replaced."""
    lines = s.split("\n")
    cols: list[int] = []
    for i, line in enumerate(lines):
        words = line.split()
        header = len(words) >= 4 and all(re.fullmatch(r"[a-z_][a-z0-9_]*", w) for w in words)
        if header and sum("_" in w for w in words) >= 2:
            cols = [j for j, w in enumerate(words) if volatile(w)]
            if cols:
                lines[i] = "  ".join(words)
            continue
        if line.startswith("ratios:"):
            lines[i] = re.sub(r"\d+(?:\.\d+)?x\b", "<V>x", line)
            cols = []
            continue
        if cols and words:
            lines[i] = "  ".join("<V>" if j in cols else w for j, w in enumerate(words))
            continue
        cols = []
    return "\n".join(lines)


# "- key: value" / "key: value" lines of the report pages and logs (provenance lists).
_KEY_LINE = re.compile(r"(?m)^(\s*(?:[-*] )?`?([A-Za-z_][\w.]*)`?: )(.*)$")

_JSON_SCALAR = r'(-?\d[\d.eE+-]*|"(?:[^"\\]|\\.)*"|null|true|false|NaN|-?Infinity)'


def normalise_json(s: str) -> str:
    """Volatile keys' scalar values -> "<V>", in the original text (formatting kept)."""

    def sub(m: re.Match) -> str:
        return m.group(1) + ('"<V>"' if volatile(m.group(2)) else m.group(3))

    s = re.sub(r'("((?:[^"\\]|\\.)*)"\s*:\s*)' + _JSON_SCALAR, sub, s)
    # sizes and hashes of .npz files in a "files" map (their header holds the wall time)
    s = re.sub(
        r'("[^"]*\.npz"\s*:\s*\{\s*"bytes"\s*:\s*)\d+(\s*,\s*"sha256"\s*:\s*)"[0-9a-f]+"',
        r'\1"<V>"\2"<V>"',
        s,
    )
    return s


def normalise_csv(s: str) -> str:
    """Volatile columns' cells -> <V> (rows rewritten with the csv module only when a column
    is volatile; a marker says when that rewrite would not reproduce the original bytes)."""
    try:
        rows = list(csv.reader(io.StringIO(s, newline="")))
    except csv.Error:
        return s
    if not rows:
        return s
    cols = [i for i, name in enumerate(rows[0]) if volatile(name.strip())]
    if not cols:
        return s
    terminator = "\r\n" if "\r\n" in s else "\n"

    def write(table):
        out = io.StringIO()
        csv.writer(out, lineterminator=terminator).writerows(table)
        return out.getvalue()

    marker = "" if write(rows) == s else "# (re-serialised: quoting or line ends differ)\n"
    for row in rows[1:]:
        for i in cols:
            if i < len(row) and row[i] != "":
                row[i] = "<V>"
    return marker + write(rows)


_MD_SPLIT = re.compile(r"(?<!\\)\|")


def normalise_md_tables(s: str) -> str:
    """Markdown pipe tables: cells of volatile columns -> <V>."""
    lines = s.split("\n")
    cols: list[int] = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|"):
            cols = []
            continue
        cells = _MD_SPLIT.split(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"\s*\|[\s:|-]+\|?\s*", nxt) and "-" in nxt:  # a header row
            cols = [j for j, c in enumerate(cells) if volatile(c.strip().strip("`*"))]
            continue
        if cols and not re.fullmatch(r"\s*\|[\s:|-]+\|?\s*", line):
            for j in cols:
                if j < len(cells) - 1 and cells[j].strip():
                    cells[j] = " <V> "
            lines[i] = "|".join(cells)
    return "\n".join(lines)


_TABLE = re.compile(r"<table.*?</table>", re.S)
_ROW = re.compile(r"<tr.*?</tr>", re.S)
_CELL = re.compile(r"(<t([hd])[^>]*>)(.*?)(</t\2>)", re.S)


def normalise_html_tables(s: str) -> str:
    """HTML tables: cells of volatile columns (named by the first row's <th>) -> <V>; and
    two-column key tables (<th>key</th><td>value</td>) with a volatile key."""

    def table(m: re.Match) -> str:
        rows = _ROW.findall(m.group(0))
        if not rows:
            return m.group(0)
        head = _CELL.findall(rows[0])
        cols = []
        if all(c[1] == "h" for c in head):  # a header row; else a table of key-value rows
            cols = [j for j, c in enumerate(head) if volatile(_plain(c[2]))]
        out = m.group(0)
        for row in rows[1:] if cols else rows:
            cells = list(_CELL.finditer(row))
            new = row
            if cols:
                for j in sorted(cols, reverse=True):
                    if j < len(cells) and cells[j].group(2) == "d":
                        c = cells[j]
                        new = new[: c.start(3)] + "<V>" + new[c.end(3) :]
            elif len(cells) == 2 and cells[0].group(2) == "h" and volatile(_plain(cells[0][3])):
                c = cells[1]
                new = new[: c.start(3)] + "<V>" + new[c.end(3) :]
            out = out.replace(row, new, 1)
        return out

    return _TABLE.sub(table, s)


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip()


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def subprocess_env(pythonpath: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "ERF_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        PYTHONPATH=str(pythonpath),
        PYTHONHASHSEED="0",
        PYTHONIOENCODING="utf-8",
        PYTHONDONTWRITEBYTECODE="",
        PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "erfdump-pycache"),
        COLUMNS="120",
        LINES="50",
        TERM="dumb",
        TZ="UTC",
        LC_ALL="C.UTF-8",
        MPLBACKEND="Agg",
    )
    return env


def run_step(python: str, step: str, run: Path, tmp: Path, env, timeout: float):
    """Run ``python -m STEP`` in ``tmp``: (its arguments, exit status, stdout, stderr, seconds)."""
    args = [a.replace("{RUN}", str(run)).replace("{TMP}", str(tmp)) for a in step.split()]
    argv = [python, "-m", *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            encoding="utf-8",
            errors="replace",
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", _text(exc.stdout), _text(exc.stderr)
    return args, rc, out, err, time.monotonic() - t0


def _text(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


def step_record(norm: Normaliser, args, rc, out, err) -> str:
    cmd = " ".join(["python -m", *args])
    return (
        f"command: {norm.text(cmd)}\nexit: {rc}\n--- stdout\n{norm.stream(out)}\n"
        f"--- stderr\n{norm.stream(err)}\n"
    )


NPZ_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
out = {}
for path in sys.argv[1:]:
    entries = []
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            a = z[k]
            e = {"name": k, "dtype": str(a.dtype), "shape": list(a.shape)}
            if a.dtype.kind == "U" and a.ndim == 0:
                e["text"] = str(a)
            else:
                e["sha256"] = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
            entries.append(e)
    out[path] = entries
print(json.dumps(out))
"""


def npz_texts(python: str, env, paths: list[Path]) -> dict[str, str]:
    """One text per .npz: each array's name, dtype, shape and sha256 (a JSON header: its text,
    with volatile keys normalised)."""
    if not paths:
        return {}
    proc = subprocess.run(
        [python, "-c", NPZ_SCRIPT, *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {str(p): f"cannot read: {proc.stderr.strip().splitlines()[-1:]}\n" for p in paths}
    texts = {}
    for path, entries in json.loads(proc.stdout).items():
        lines = []
        for e in entries:
            if "text" in e:  # its dtype (<U1016) is the text's length, which the wall time sets
                lines.append(f"{e['name']}: text\n{normalise_json(e['text'])}")
            else:
                lines.append(f"{e['name']}: {e['dtype']} {e['shape']} sha256={e['sha256']}")
        texts[path] = "\n".join(lines) + "\n"
    return texts


def snapshot(run: Path, dest: Path, norm: Normaliser, python: str, env) -> None:
    """Copy the run folder's text outputs into dest/files (normalised), the .npz digests, and
    write dest/manifest.txt."""
    files_dir = dest / "files"
    manifest = []
    npz = []
    if not run.exists():
        (dest / "manifest.txt").write_text("(no run folder)\n")
        return
    for path in sorted(run.rglob("*")):
        rel = path.relative_to(run)
        if ".hydra" in rel.parts[:-1]:
            continue
        if path.is_dir():
            manifest.append(f"{rel}/")
            continue
        if ".hydra" in rel.parts:
            continue
        suffix = path.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            manifest.append(str(rel))
            raw = path.read_text(encoding="utf-8", errors="replace")
            target = files_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(normalise_file(raw, suffix, norm), encoding="utf-8")
        elif suffix == ".npz":
            manifest.append(str(rel))
            npz.append(path)
        else:
            manifest.append(f"{rel} sha256={_sha256(path)}")
    for path, text in npz_texts(python, env, npz).items():
        target = files_dir / (str(Path(path).relative_to(run)) + ".txt")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(norm.text(text), encoding="utf-8")
    (dest / "manifest.txt").write_text(norm.text("\n".join(manifest) + "\n"), encoding="utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def normalise_file(raw: str, suffix: str, norm: Normaliser) -> str:
    if suffix == ".json":
        return norm.text(normalise_json(raw))
    if suffix == ".csv":
        return norm.text(normalise_csv(raw))
    if suffix == ".md":
        return norm.text(normalise_md_tables(raw))
    if suffix == ".html":
        s = DATA_URI.sub(lambda m: f"data:image/{m.group(1)};base64,<{_b64_digest(m)}>", raw)
        return norm.text(normalise_html_tables(s))
    if suffix == ".log":
        return norm.stream(raw)
    return norm.text(raw)


def _b64_digest(m: re.Match) -> str:
    data = m.group(0).split(",", 1)[1]
    return f"sha256 {hashlib.sha256(data.encode()).hexdigest()[:16]}"


# Binary files whose bytes change between two runs of the same code: their sha256 is left out
# of the manifest (fnmatch patterns on the file name). benchmark.png plots the timings. Every
# other figure and the trained weights (model.pt) were bitwise stable between two dumps.
VOLATILE_BINARIES = ["benchmark.png"]


def finish_manifest(dest: Path) -> None:
    path = dest / "manifest.txt"
    if not path.exists():
        return
    lines = []
    for line in path.read_text().splitlines():
        name, _, digest = line.partition(" sha256=")
        if digest and any(fnmatch.fnmatch(Path(name).name, p) for p in VOLATILE_BINARIES):
            line = f"{name} sha256=<V>"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def run_case(name, steps, args, env, out_dir: Path, ctx) -> tuple[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"erfdump-{name}-"))
    run = tmp / "run"
    norm = Normaliser(run, tmp, args.pythonpath, ctx["venv"], ctx["commit"])
    dest = out_dir / name
    dest.mkdir(parents=True, exist_ok=True)
    total = 0.0
    many = len(steps) > 1
    for i, step in enumerate(steps, 1):
        a, rc, out, err, dt = run_step(args.python, step, run, tmp, env, args.timeout)
        total += dt
        (dest / f"step{i}.txt").write_text(step_record(norm, a, rc, out, err), encoding="utf-8")
        if many:
            snapshot(run, dest / f"step{i}", norm, args.python, env)
            finish_manifest(dest / f"step{i}")
    if not many:
        snapshot(run, dest, norm, args.python, env)
        finish_manifest(dest)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return name, total


def run_single(group: str, name, step, args, env, out_dir: Path, ctx) -> tuple[str, float]:
    """A one-step case whose whole record is one file: out_dir/group/name.txt."""
    tmp = Path(tempfile.mkdtemp(prefix=f"erfdump-{name}-"))
    run = tmp / "run"
    if name == "run_dir_is_file":
        (tmp / "afile").write_text("not a folder\n")
    norm = Normaliser(run, tmp, args.pythonpath, ctx["venv"], ctx["commit"])
    timeout = min(args.timeout, 120)  # a refused config takes seconds; an accepted one is small
    a, rc, out, err, dt = run_step(args.python, step, run, tmp, env, timeout)
    record = step_record(norm, a, rc, out, err)
    made = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
    record += "--- files made\n" + norm.text("\n".join(made)) + "\n"
    dest = out_dir / group
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{name}.txt").write_text(record, encoding="utf-8")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return f"{group}/{name}", dt


def resume_mismatch_case(args, env, out_dir: Path, ctx) -> tuple[str, float]:
    """A sweep folder made with one setting, resumed with another: refused in one line."""
    tmp = Path(tempfile.mkdtemp(prefix="erfdump-resume-"))
    run = tmp / "run"
    norm = Normaliser(run, tmp, args.pythonpath, ctx["venv"], ctx["commit"])
    rest = "model.channels=1 inputs.size=[8,8] probe.n_samples=1 probe.batch_size=1"
    first_step = f"erf.run -m model.depth=2 {rest} fit.bootstrap=0 {SWEEP_DIR}"
    second_step = f"erf.run -m model.depth=3 {rest} fit.bootstrap=0 resume=true {SWEEP_DIR}"
    first = run_step(args.python, first_step, run, tmp, env, args.timeout)
    second = run_step(args.python, second_step, run, tmp, env, args.timeout)
    record = step_record(norm, *first[:4]) + step_record(norm, *second[:4])
    dest = out_dir / "errors"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "sweep_resume_mismatch.txt").write_text(record, encoding="utf-8")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return "errors/sweep_resume_mismatch", first[4] + second[4]


def context(args, env) -> dict:
    """Check that ``import erf`` resolves inside the checkout; the venv's prefixes; the commit."""
    probe = subprocess.run(
        [
            args.python,
            "-c",
            "import json, sys, erf; print(json.dumps([erf.__file__, sys.prefix, sys.base_prefix]))",
        ],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        sys.exit(f"cannot import erf with {args.python}:\n{probe.stderr}")
    erf_file, prefix, base_prefix = json.loads(probe.stdout)
    expected = os.path.realpath(args.pythonpath / "erf" / "__init__.py")
    if os.path.realpath(erf_file) != expected:
        sys.exit(f"import erf gives {erf_file}, not {expected}: check --pythonpath")
    commit = subprocess.run(
        ["git", "-C", str(args.pythonpath), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {"erf_file": erf_file, "venv": [prefix, base_prefix], "commit": commit or None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the interpreter (a venv's bin/python)")
    parser.add_argument("--pythonpath", required=True, type=Path, help="the checkout to test")
    parser.add_argument("--out", required=True, type=Path, help="the folder to write (replaced)")
    parser.add_argument("--cases", nargs="*", default=None, help="fnmatch patterns of cases")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="cli/error cases at once (they only compose configs); default 2",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    args.pythonpath = args.pythonpath.resolve()

    singles = [("cli", n, s) for n, s in CLI.items()]
    singles += [("errors", n, s) for n, s in ERRORS.items()]
    names = [*CASES, *(f"{g}/{n}" for g, n, _ in singles), "errors/sweep_resume_mismatch"]
    if args.list:
        print("\n".join(names))
        return 0

    def wanted(name: str) -> bool:
        return args.cases is None or any(fnmatch.fnmatch(name, p) for p in args.cases)

    env = subprocess_env(args.pythonpath)
    ctx = context(args, env)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_single, g, n, s, args, env, args.out, ctx)
            for g, n, s in singles
            if wanted(f"{g}/{n}")
        ]
        if wanted("errors/sweep_resume_mismatch"):
            futures.append(pool.submit(resume_mismatch_case, args, env, args.out, ctx))
        for f in concurrent.futures.as_completed(futures):
            name, dt = f.result()
            timings[name] = dt
    for name, steps in CASES.items():  # one at a time: these measure
        if wanted(name):
            _, dt = run_case(name, steps, args, env, args.out, ctx)
            timings[name] = dt
            print(f"{dt:6.1f} s  {name}", flush=True)
    n_files = sum(1 for p in args.out.rglob("*") if p.is_file())
    total = time.monotonic() - t0
    print(f"{len(timings)} cases, {n_files} files in {args.out}, {total:.0f} s", flush=True)
    # Timings live outside the dump (they differ between runs): next to it.
    timing_file = args.out.parent / (args.out.name + ".timings.txt")
    timing_file.write_text(
        "".join(f"{dt:7.1f} s  {n}\n" for n, dt in sorted(timings.items(), key=lambda x: -x[1]))
        + f"total {total:.0f} s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
