"""The rf room's import rules: layer 1 (besides third-party packages it imports only erf.result),
submodules import siblings rather than the package, no cross-module private names, and imports
inside functions only for the optional torchvision."""

import ast
from pathlib import Path

import erf.rf

ROOM = Path(erf.rf.__file__).parent
OPTIONAL = {"torchvision"}  # may be imported inside a function (with a comment saying so)


def imports(path: Path):
    """(module imported, names imported or None, inside a function) for every import."""
    tree = ast.parse(path.read_text())
    inner = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, id(node) in inner
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            yield node.module, [a.name for a in node.names], id(node) in inner


def test_rf_imports_only_erf_result_and_its_own_submodules():
    submodules = {f"erf.rf.{p.stem}" for p in ROOM.glob("*.py") if p.stem != "__init__"}
    for path in sorted(ROOM.glob("*.py")):
        for module, _, _ in imports(path):
            if module == "erf" or module.startswith("erf."):
                assert module == "erf.result" or module in submodules, f"{path.name}: {module}"


def test_no_private_names_across_modules():
    for path in sorted(ROOM.glob("*.py")):
        for module, names, _ in imports(path):
            private = [n for n in names or () if n.startswith("_") and not n.startswith("__")]
            assert not (module.startswith("erf") and private), f"{path.name}: {module} {private}"


def test_imports_inside_functions_only_for_optional_packages():
    for path in sorted(ROOM.glob("*.py")):
        for module, _, inside in imports(path):
            if inside:
                assert module.split(".")[0] in OPTIONAL, f"{path.name}: {module} in a function"
