"""Optional dependencies in tests: skipped without them, except in CI (``CI`` set), where
``make install`` installs the dev extra and a missing one fails the test."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; without it skip the test (fail it in CI), naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is missing (pip install 'erf-lab[{extra}]')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs the dev extra, which has it")
        pytest.skip(message)
