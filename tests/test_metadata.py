"""The project's own metadata agrees with itself: licence, citation, version, typing marker."""

from __future__ import annotations

import ast
import importlib
import re

import pytest
from helpers.paths import REPO

import erf


def _pyproject() -> str:
    return (REPO / "pyproject.toml").read_text()


def test_the_licence_file_is_the_licence_pyproject_declares():
    declared = re.search(r'^license = \{ text = "(\w+)" \}', _pyproject(), re.M).group(1)
    assert declared == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_the_citation_names_the_package_version_and_licence():
    text = (REPO / "CITATION.cff").read_text()
    assert re.search(r'^version: "(.+)"$', text, re.M).group(1) == erf.__version__
    assert re.search(r"^license: (\S+)$", text, re.M).group(1) == "MIT"
    assert "cff-version: 1.2.0" in text


def test_the_package_ships_its_typing_marker():
    assert (REPO / "erf" / "py.typed").is_file()
    package_data = re.search(r"^erf = \[(.*)\]$", _pyproject(), re.M).group(1)
    assert '"py.typed"' in package_data


def test_every_public_name_loads_on_first_use_from_its_module():
    """``import erf`` loads no torch (``erf.__getattr__``); each public name still resolves."""
    for name in erf.__all__:
        value = getattr(erf, name)
        assert name in dir(erf)
        assert getattr(value, "__name__", name) == name or not callable(value), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        erf.nope  # noqa: B018


def test_the_type_checking_imports_name_each_public_name_at_its_home():
    """erf/__init__.py's ``TYPE_CHECKING`` re-exports (what type checkers see) and the lazy
    loader (what runs) must agree: the same names, each the object the loader returns."""
    tree = ast.parse((REPO / "erf" / "__init__.py").read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n.test)
    )
    seen = {
        alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert sorted(seen) == sorted(erf.__all__)
    for name, module in seen.items():
        assert getattr(importlib.import_module(module), name) is getattr(erf, name), name
