"""The package's shape: layered rooms, no import cycles, no private imports, small modules.

Every module of ``erf`` is parsed with ``ast`` (not imported): every ``import`` counts, inside
functions and ``TYPE_CHECKING`` blocks too; relative imports are resolved; ``from erf.x import
y`` where ``y`` is a submodule is an import of ``erf.x.y``. The parent packages that Python
imports along the way (``erf``, ``erf.x``) are not counted; an explicit ``import erf`` is.

Layers (a module may import its own room, any layer-0 module, and the rooms ARCHITECTURE.md's
"may import" column names for its room: ``MAY_IMPORT``; all of them strictly lower):

    0  erf.result, erf.device, erf.version, erf.normalization, erf.checks, erf.settings,
       erf.reductions
    1  erf.rf, erf.nets (each only layer 0)
    2  erf.analysis (rf)
    3  erf.probe, erf.training (rf, analysis; not each other, not nets)
    4  erf.io (rf, analysis)
    5  erf.studies (rf, analysis, io): one module per study, its statistics, files and figures
       erf.monitor (rf, analysis, probe, io): ERFMonitor, the probe's measuring core with the
       monitor's files (the training jobs use it; the public API re-exports it)
    6  erf.app: the only room that reads Hydra config
    7  erf: the entry modules (erf.run, erf.report, erf.layers, erf.trainjob, erf.cli,
       erf.__main__), which import only erf.app, erf.io and each other, and erf/__init__.py,
       the public API, which re-exports from the layers below 5 and erf.monitor (not the
       studies)

Only erf.app and the entry modules may import hydra or omegaconf; no module has more than
MAX_LINES lines and no function more than MAX_FUNCTION_LINES.

ALLOWED lists known violations (none now), each as the exact line this test reports. The
test fails on a violation that is not listed and on a listed one that no longer occurs, so the
list can only shrink: remove an entry when its violation is gone.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable
from pathlib import Path

from helpers.files import write_tree

import erf

PACKAGE_DIR = Path(erf.__file__).resolve().parent
MAX_LINES = 900

LAYERS = {
    "erf.result": 0,
    "erf.device": 0,
    "erf.version": 0,
    "erf.normalization": 0,
    "erf.checks": 0,
    "erf.settings": 0,
    "erf.reductions": 0,
    "erf.rf": 1,
    "erf.nets": 1,
    "erf.analysis": 2,
    "erf.probe": 3,
    "erf.training": 3,
    "erf.io": 4,
    "erf.studies": 5,
    "erf.monitor": 5,
    "erf.app": 6,
    "erf": 7,
}
# ARCHITECTURE.md's "may import" column, room by room; the layer-0 modules are open to all.
# erf.studies (one module per study, a registry; erf/studies/__init__.py) sits between io and
# app: it may import io, analysis and rf; app may import it; io and below may not.
MAY_IMPORT = {
    "erf.rf": set(),
    "erf.nets": set(),
    "erf.analysis": {"erf.rf"},
    "erf.probe": {"erf.rf", "erf.analysis"},
    "erf.training": {"erf.rf", "erf.analysis"},
    "erf.io": {"erf.rf", "erf.analysis"},
    "erf.studies": {"erf.rf", "erf.analysis", "erf.io"},
    "erf.monitor": {"erf.rf", "erf.analysis", "erf.probe", "erf.io"},
    "erf.app": {
        "erf.rf", "erf.nets", "erf.analysis", "erf.probe", "erf.training", "erf.io", "erf.studies",
        "erf.monitor",
    },
}  # fmt: skip
ENTRY_MODULES = {
    "erf.run",
    "erf.report",
    "erf.layers",
    "erf.trainjob",
    "erf.cli",
    "erf.__main__",
}
ENTRY_MAY_IMPORT = {"erf.app", "erf.io", "erf"}
PUBLIC_API_BELOW = 5  # erf/__init__.py re-exports from layers 0-4 ...
PUBLIC_API_ALSO = {"erf.monitor"}  # ... and the monitor (ERFMonitor), not the studies
CONFIG_LIBRARIES = {"hydra", "omegaconf"}
CONFIG_ROOMS = {"erf.app"}

MAX_FUNCTION_LINES = 80  # ARCHITECTURE.md: split a function before ~80 lines
# No cycle, private import, oversize module or layer breach; these functions were over the
# limit when it came in (docstrings included) and may only leave the list.
ALLOWED: set[str] = {
    f"function: {name} has more than {MAX_FUNCTION_LINES} lines"
    for name in (
        "erf.analysis.summary.erf_metrics",
        "erf.io.heatmaps.draw_erf",
        "erf.probe.bench.run_benchmark",
        "erf.probe.draws.measure_erf_draws",
        "erf.probe.measure.probe_units",
        "erf.rf.builder._enter_builtin_rules",
        "erf.training.loop.fit",
    )
}


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package_dir``."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(module: str, path: Path) -> Iterable[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement of a module.
    Relative imports are resolved against ``module``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield base, alias.name


def import_graph(package_dir: Path) -> tuple[dict[str, set[str]], list[str], set[str]]:
    """(edges between the package's modules, private-name imports, external imports)
    where external imports are ``"module imports library"`` lines (top-level names)."""
    modules = module_names(package_dir)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private, external = [], set()
    for module, path in modules.items():
        for base, name in _imports(module, path):
            target = f"{base}.{name}" if name and f"{base}.{name}" in modules else base
            while target and target not in modules:  # ``import erf.a.b.func``-style names
                target = target.rpartition(".")[0]
            if not target:
                external.add(f"{module} imports {base.split('.')[0]}")
                continue
            if target == module:
                continue
            edges[module].add(target)
            if name and name.startswith("_") and not name.startswith("__"):
                what = target if target == f"{base}.{name}" else f"{target}.{name}"
                private.append(f"private: {module} imports {what}")
    return edges, sorted(set(private)), external


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def room(module: str) -> str | None:
    """The room of a module: the longest entry of LAYERS that is the module or a package
    above it; the entry modules and erf/__init__.py are room ``erf``."""
    if module in ENTRY_MODULES or module == "erf":
        return "erf"
    rooms = [r for r in LAYERS if r != "erf" and (module == r or module.startswith(r + "."))]
    return max(rooms, key=len) if rooms else None


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for module in sorted(edges):
        own = room(module)
        if own is None:
            out.append(f"layer: {module} is in no room of the layer table")
            continue
        for target in sorted(edges[module]):
            other = room(target)
            if other is None:
                continue  # a module in no room is reported once, above
            mine, theirs = LAYERS[own], LAYERS[other]
            if module == "erf":  # the public API: re-exports from below erf.app
                allowed = theirs < PUBLIC_API_BELOW or other in PUBLIC_API_ALSO
            elif module in ENTRY_MODULES:
                allowed = other in ENTRY_MAY_IMPORT
            else:
                allowed = other == own or theirs == 0 or other in MAY_IMPORT.get(own, ())
            if not allowed:
                where = f"({own}, layer {mine}) imports {target} ({other}, layer {theirs})"
                out.append(f"layer: {module} {where}")
    return out


def config_violations(external: set[str]) -> list[str]:
    out = []
    for line in sorted(external):
        module, _, library = line.partition(" imports ")
        in_config_room = room(module) in CONFIG_ROOMS or module in ENTRY_MODULES
        if library in CONFIG_LIBRARIES and not in_config_room:
            out.append(f"config: {line}")
    return out


def size_violations(package_dir: Path) -> list[str]:
    out = []
    for module, path in module_names(package_dir).items():
        if len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES:
            out.append(f"size: {module} has more than {MAX_LINES} lines")
    return sorted(out)


def function_violations(package_dir: Path) -> list[str]:
    """Functions (and methods, as ``module.Class.method``) longer than MAX_FUNCTION_LINES."""
    out = []
    for module, path in module_names(package_dir).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _functions(tree, module):
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                out.append(f"function: {name} has more than {MAX_FUNCTION_LINES} lines")
    return sorted(out)


def _functions(tree: ast.AST, prefix: str) -> Iterable[tuple[ast.AST, str]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}.{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield node, name
            yield from _functions(node, name)


def violations(package_dir: Path) -> set[str]:
    edges, private, external = import_graph(package_dir)
    return {
        *(f"cycle: {' <-> '.join(c)}" for c in cycles(edges)),
        *private,
        *size_violations(package_dir),
        *function_violations(package_dir),
        *layer_violations(edges),
        *config_violations(external),
    }


def _details(lines: Iterable[str], package_dir: Path) -> str:
    """The lines, with the line counts of oversize modules."""
    modules = module_names(package_dir)
    out = []
    for line in sorted(lines):
        if line.startswith("size: "):
            path = modules[line.split()[1]]
            line += f" ({len(path.read_text(encoding='utf-8').splitlines())})"
        out.append(f"  {line}")
    return "\n".join(out)


def test_no_violation_outside_the_allow_list():
    new = violations(PACKAGE_DIR) - ALLOWED
    assert not new, "architecture violations (fix them; do not extend ALLOWED):\n" + _details(
        new, PACKAGE_DIR
    )


def test_every_allow_list_entry_still_occurs():
    gone = ALLOWED - violations(PACKAGE_DIR)
    assert not gone, "fixed, so remove from ALLOWED in tests/test_architecture.py:\n" + "\n".join(
        f"  {line}" for line in sorted(gone)
    )


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    return write_tree(tmp_path / "erf", files)


def test_the_checker_resolves_relative_submodule_and_function_level_imports(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "from erf.nets import net\n",
            "result.py": "",
            "nets/__init__.py": "from . import net\n",
            "nets/net.py": "def f():\n    from ..analysis import stats\n    return stats\n",
            "analysis/__init__.py": "",
            "analysis/stats.py": "from ..nets.net import _helper\nimport hydra\n",
            "app/__init__.py": "",
            "app/run.py": "import erf\nfrom omegaconf import DictConfig\n",
            "cli.py": "from erf.app import run\n",
            "extra.py": "",
        },
    )
    edges, private, _ = import_graph(root)
    assert edges["erf"] == {"erf.nets.net"}
    assert edges["erf.nets"] == {"erf.nets.net"}
    assert edges["erf.nets.net"] == {"erf.analysis.stats"}  # inside a function, relative
    assert edges["erf.cli"] == {"erf.app.run"}  # a submodule named in ``from ... import``
    assert private == ["private: erf.analysis.stats imports erf.nets.net._helper"]
    assert violations(root) == {
        "cycle: erf.analysis.stats <-> erf.nets.net",
        "private: erf.analysis.stats imports erf.nets.net._helper",
        "layer: erf.nets.net (erf.nets, layer 1) imports erf.analysis.stats "
        "(erf.analysis, layer 2)",
        # lower, but not in ARCHITECTURE.md's "may import" column for analysis (rf, result)
        "layer: erf.analysis.stats (erf.analysis, layer 2) imports erf.nets.net "
        "(erf.nets, layer 1)",
        "layer: erf.extra is in no room of the layer table",
        "layer: erf.app.run (erf.app, layer 6) imports erf (erf, layer 7)",
        "config: erf.analysis.stats imports hydra",
    }


def test_a_function_over_the_limit_is_reported_by_its_dotted_name(tmp_path):
    body = "x = 0\n" * (MAX_FUNCTION_LINES - 2)  # def line + body + return = the limit
    fits = "def fits():\n" + textwrap.indent(body + "return x\n", "    ")
    grows = "    def grows(self):\n" + textwrap.indent(body + "y = 1\nreturn y\n", "        ")
    root = _package(tmp_path, {"__init__.py": "", "result.py": f"{fits}\n\nclass Box:\n{grows}"})
    assert function_violations(root) == [
        f"function: erf.result.Box.grows has more than {MAX_FUNCTION_LINES} lines"
    ]
