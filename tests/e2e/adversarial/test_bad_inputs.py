"""Bad inputs to ``python -m erf.run``: each fails in ONE line naming the key or value, with no
traceback, and (where the preflight can tell) before Hydra creates any folder (exit 2).

``CASES`` is the table of what is tried (the closing note counts it): the case, the overrides,
the exit status, the start of the last stderr line, whether a folder may be left behind, and
what the run did before this branch. A job that can only refuse once the model or data exists
(an unknown ``probe.target`` of a timm model, a corrupt image) exits 2 and removes the folder
Hydra made for it when it wrote nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.cli import last_line
from helpers.inprocess import run_module_here
from PIL import Image

TINY = ["model.depth=2", "model.channels=2", "inputs.size=[16,16]", "probe.n_samples=2",
        "probe.batch_size=2"]  # fmt: skip

# (case, overrides, exit status, start of the one error line, before this branch)
CASES: list[tuple[str, list[str], int, str, str]] = [
    (
        "non-ASCII number",
        ["model.depth=三"],
        2,
        "error: model.depth=三 is not allowed: expected an integer",
        "traceback, exit 1",
    ),
    (
        "unclosed list",
        ["probe.n_samples=[1,"],
        2,
        "error: cannot parse the override 'probe.n_samples=[1,'",
        "traceback, exit 1",
    ),
    (
        "custom model without _target_",
        ["model=custom"],
        2,
        "error: model._target_ is required",
        "traceback, exit 1",
    ),
    (
        "imagefolder without root",
        ["inputs=imagefolder"],
        2,
        "error: inputs.root is required",
        "traceback, exit 1, folder left",
    ),
    (
        "model group deleted",
        ["~model"],
        2,
        "error: no model: the model config is required (~model removed it)",
        "exit 1",
    ),
    (
        "slurm launcher without SLURM",
        ["hydra/launcher=slurm", "model.depth=1,2", "-m"],
        2,
        "error: hydra/launcher=slurm submits to SLURM, but this machine has no srun",
        "traceback, exit 1",
    ),
    (
        "+ bypassed the typo check",
        ["+probe.n_sampels=4"],
        2,
        "error: unknown key probe.n_sampels (did you mean probe.n_samples?)",
        "accepted, exit 0",
    ),
    (
        "infinite weight std",
        ["model.init=random", "model.weight_std=inf"],
        2,
        "error: model.weight_std=inf is not allowed: expected a finite number",
        "accepted, exit 0",
    ),
    (
        "infinite learning rate",
        ["setting=classification", "train.lr=inf"],
        2,
        "error: train.lr=inf is not allowed: expected a finite number",
        "accepted",
    ),
    (
        "bad value late in a sweep",
        ["model.depth=1,2,-1", "-m"],
        2,
        "error: model.depth=-1 is not allowed",
        "refused up front already",
    ),
    (
        "absurd input size",
        ["inputs.size=[100000,100000]"],
        2,
        "error: inputs.size=[100000,100000] is not allowed",
        "exit 1 after allocating, folder left",
    ),
    (
        "absurd sample count",
        ["probe.n_samples=1000000000000"],
        2,
        "error: probe.n_samples=1000000000000 is not allowed: expected an integer >= 1 (at most ",
        "ran until killed",
    ),
    (
        "unknown target of our own net",
        ["probe.target=1x"],
        2,
        "error: probe.target=1x: model has no module named '1x' (did you mean 1?)",
        "exit 1 after the folder, no suggestion",
    ),
    (
        "NaN gradients with on_nonfinite=raise",
        [
            "model.depth=30",
            "model.init=random",
            "model.weight_std=1e30",
            "probe.on_nonfinite=raise",
        ],
        1,
        "error: probe.on_nonfinite=raise stopped the run: 2 sample(s) gave NaN/Inf gradients",
        "FloatingPointError traceback",
    ),
]


@pytest.mark.parametrize(
    "overrides, status, message", [c[1:4] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_fails_in_one_line_before_any_folder(tmp_path, overrides, status, message):
    run_dir = tmp_path / "run"
    where = "hydra.sweep.dir" if "-m" in overrides else "hydra.run.dir"
    flags = [o for o in overrides if o == "-m"]
    other_model = any(o.startswith(("model=", "~model", "setting=")) for o in overrides)
    base = TINY[2:] if other_model else TINY  # model.* keys only where the conv stack is kept
    args = [*base, *(o for o in overrides if o != "-m"), f"{where}={run_dir}", *flags]
    proc = run_module_here("erf.run", *args, check=False)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    assert last_line(proc.stderr).startswith(message), proc.stderr
    if status == 2:
        assert proc.stderr.strip().count("\n") == 0, proc.stderr  # the only line
        assert not run_dir.exists()
    else:
        assert not (run_dir / "metrics.json").exists()


def test_a_non_ascii_label_is_a_text_and_is_kept(tmp_path):
    import json

    proc = run_module_here(
        "erf.run", *TINY, "label=日本語", f"hydra.run.dir={tmp_path}", check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["label"] == "日本語"


@pytest.mark.parametrize("kind", ["file", "file_parent", "read_only"])
def test_an_output_folder_that_cannot_be_made_is_refused_before_hydra(tmp_path, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    folder = {"file": blocker, "file_parent": blocker / "run", "read_only": "/sys/erf-out"}[kind]
    proc = run_module_here("erf.run", *TINY, f"hydra.run.dir={folder}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert line.startswith(f"error: hydra.run.dir={folder}: ") and "\n" not in line
    assert ("is a file, not a folder" in line) or ("cannot create a folder in /sys" in line)


def test_a_sweep_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    proc = run_module_here(
        "erf.run", *TINY, "model.depth=1,2", f"hydra.sweep.dir={blocker}", "-m", check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: hydra.sweep.dir={blocker}: {blocker} is a file, not a folder"
    )


def _images(root, n=3, corrupt=None):
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
            root / "a" / f"{i}.jpg"
        )
    if corrupt is not None:
        data = (root / "a" / "0.jpg").read_bytes()
        (root / "a" / corrupt).write_bytes(data[: len(data) // 3])  # a truncated JPEG
    return root


def test_a_truncated_jpeg_fails_in_one_line_naming_the_file_and_leaves_no_folder(tmp_path):
    root = _images(tmp_path / "images", n=2, corrupt="bad.jpg")
    run_dir = tmp_path / "run"
    proc = run_module_here(
        "erf.run", *TINY, "inputs=imagefolder", f"inputs.root={root}", "inputs.channels=3",
        "model.in_channels=3", "probe.n_samples=3", "probe.batch_size=3",
        f"hydra.run.dir={run_dir}", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = last_line(proc.stderr)
    assert line.startswith(f"error: inputs.root={root}: cannot read image ") and "bad.jpg" in line
    assert not run_dir.exists()


def test_fewer_images_than_samples_is_refused_not_silently_fewer(tmp_path):
    root = _images(tmp_path / "images", n=3)
    run_dir = tmp_path / "run"
    proc = run_module_here(
        "erf.run", *TINY, "inputs=imagefolder", f"inputs.root={root}", "inputs.channels=3",
        "model.in_channels=3", "probe.n_samples=8", f"hydra.run.dir={run_dir}", check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == (
        f"error: inputs.root={root} has 3 images but probe.n_samples=8: "
        "set probe.n_samples=3 or fewer, or add images"
    )
    assert not run_dir.exists()


def test_a_label_with_dots_and_slashes_names_one_folder_per_job_inside_the_sweep(tmp_path):
    # before: both jobs were written into sweep/escaped, the first overwritten without a word
    sweep = tmp_path / "a" / "sweep"
    proc = run_module_here(
        "erf.run", "experiment=dropout_skip", "scale=tiny", "variant=plain,residual",
        "label=../../../escaped", f"hydra.sweep.dir={sweep}", check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("metrics.json")) == ["metrics.json"] * 2
    jobs = sorted(p.parent.relative_to(sweep).as_posix() for p in sweep.rglob("metrics.json"))
    assert jobs == ["0_.._.._.._escaped", "1_.._.._.._escaped"]
    assert "../../../escaped" in (sweep / "summary.csv").read_text()  # the label, as given
