"""A pytest plugin that records where the test suite's time goes, one JSON line per test.

    PYTHONPATH=experiments/test_time pytest -p costs -n 2   # writes $ERF_TEST_COSTS/*.jsonl

Per test (setup, call and teardown together): the wall time, the CPU seconds of the test
process (user + system) and of the processes it started and waited for (``RUSAGE_CHILDREN``),
and how many processes it started (``subprocess.Popen``; not the ``git`` calls that record a
job's commit). ``summarise.py`` turns the lines
into the tables of this folder's README. Not part of the test suite: it only measures it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path

import pytest

_started = {"n": 0}
_popen_init = subprocess.Popen.__init__


def _counting_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    argv = args[0] if args else kwargs.get("args", ())
    program = argv if isinstance(argv, str) else str(next(iter(argv), ""))
    if Path(program.split()[0] if program else "").name != "git":  # provenance's git calls
        _started["n"] += 1
    _popen_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _counting_init  # type: ignore[method-assign]


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _out_file() -> Path:
    folder = Path(os.environ.get("ERF_TEST_COSTS", "test_costs"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.jsonl"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    wall, own = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    children, started = _cpu(resource.RUSAGE_CHILDREN), _started["n"]
    yield
    row = {
        "test": item.nodeid,
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(_cpu(resource.RUSAGE_SELF) - own, 3),
        "child_cpu_s": round(_cpu(resource.RUSAGE_CHILDREN) - children, 3),
        "processes": _started["n"] - started,
    }
    with _out_file().open("a") as f:
        f.write(json.dumps(row) + "\n")
