"""The wheel is a working install: built from a copy of the sources, installed into a fresh
virtual environment (no network, no editable install, no source tree on the path), its
``erf`` command runs a sweep from an unrelated folder with the configs the wheel carries.

The fresh environment gets the dependencies (torch, hydra-core, ...) from this interpreter's
site-packages through a ``.pth`` file. Python only appends such a line to ``sys.path``; the
``.pth`` files inside that folder (an editable install's finder among them) are not run, so
``import erf`` can only find the wheel's copy, which the tests check.
"""

import importlib.util
import os
import shutil
import site
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from helpers.cli import last_line, run_command, run_erf, run_module
from helpers.paths import REPO

pytestmark = pytest.mark.slow


def _can_build_offline() -> bool:
    """Whether this interpreter can build the wheel without fetching a build backend:
    setuptools with bdist_wheel built in (70.1 and later), or with the wheel package."""
    try:
        found = version("setuptools")
    except PackageNotFoundError:
        return False
    major, minor = (int(part) for part in found.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _clean_env() -> dict[str, str]:
    """This environment without anything that would put the sources on the path."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _dependency_dirs() -> list[str]:
    """Where this interpreter's packages live (site-packages, user site)."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    source = REPO.resolve()
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir() and Path(d).resolve() != source]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not _can_build_offline():
        pytest.skip("building the wheel offline needs setuptools>=70.1 (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build leaves build/ and *.egg-info in the checkout, and a
    # stale build/lib could put deleted modules into the wheel.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "erf", src / "erf", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    run_module(
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        str(dist),
        str(src),
        cwd=tmp,
        env=_clean_env(),
        timeout=300,
    )
    (wheel,) = dist.glob("erf_lab-*.whl")
    venv = tmp / "venv"
    run_module("venv", "--without-pip", str(venv))
    python = _python(venv)
    run_module(
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        str(wheel),
        cwd=tmp,
        env=_clean_env(),
        timeout=300,
    )
    purelib = run_command(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    Path(purelib, "erf_test_dependencies.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    erf = [str(venv / ("Scripts/erf.exe" if os.name == "nt" else "bin/erf"))]
    return {"tmp": tmp, "wheel": wheel, "python": python, "purelib": Path(purelib), "erf": erf}


def test_the_wheel_holds_every_module_and_config_and_the_erf_command(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    configs = {p.relative_to(REPO).as_posix() for p in (REPO / "erf/configs").rglob("*.yaml")}
    modules = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "erf").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert len(configs) > 30
    assert configs <= names, sorted(configs - names)
    assert "erf/py.typed" in names
    assert modules <= names, sorted(modules - names)
    assert not any(n.startswith("tests/") for n in names)
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(installed["wheel"]).read(entry_points).decode()
    assert "erf = erf.cli:main" in text


def test_erf_is_imported_from_the_installed_wheel_not_the_sources(installed):
    code = (
        "import importlib.metadata as m, erf, erf.app.config as c; "
        "print(erf.__file__); print(c.CONFIG_DIR); print(m.version('erf-lab'))"
    )
    proc = run_command([installed["python"], "-c", code], cwd=installed["tmp"], env=_clean_env())
    module_file, config_dir, version = proc.stdout.split("\n")[:3]
    purelib = installed["purelib"].resolve()
    assert Path(module_file).resolve().is_relative_to(purelib), module_file
    assert Path(config_dir).resolve().is_relative_to(purelib), config_dir
    assert (Path(config_dir) / "experiment/depth_sweep.yaml").is_file()
    assert version


def test_the_installed_command_runs_the_tiny_depth_sweep_from_another_folder(installed):
    tmp, out = installed["tmp"], installed["tmp"] / "out"
    proc = run_erf(
        "run",
        "experiment=depth_sweep",
        "scale=tiny",
        f"hydra.sweep.dir={out}",
        erf=installed["erf"],
        cwd=tmp,
        env=_clean_env(),
    )
    assert last_line(proc.stdout) == f"results: {out}"
    for name in ("summary.csv", "slopes.json", "erf_grid.png", "trf_vs_erf.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(list(out.glob("*/metrics.json"))) == 8  # depths 2, 4 x 2 inits x 2 activations
    assert not (tmp / "outputs").exists()


def test_the_installed_command_lists_experiments_and_prints_help(installed):
    kwargs = {"erf": installed["erf"], "cwd": installed["tmp"], "env": _clean_env()}
    assert "depth_sweep" in run_erf("experiments", **kwargs).stdout.split()
    assert run_erf("--help", **kwargs).stdout.startswith("usage: erf <command>")
