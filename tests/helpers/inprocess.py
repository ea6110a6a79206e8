"""Run a command's entry module in this test process, as ``python -m MODULE ARGS`` would.

Most end-to-end tests check what a command *does* (its files, its printed lines, its exit
status), not that it is a separate process. Starting one costs 4–6 CPU-seconds of imports and
Hydra set-up before it checks anything; running the same entry module here (``runpy``, as
``python -m`` does) costs only the work. Tests of what only a process has (signals, torchrun,
memory limits, the wheel's ``bin/erf``, a cold start's imports) keep ``helpers.cli``.

The run is isolated from the test process the way a process would be, as far as it matters to
erf's commands: ``sys.argv``, the working directory, ``os.environ``, stdout/stderr (captured),
the logging set-up Hydra makes, signal handlers, torch's thread count, default dtype and random
state, numpy's random state, matplotlib's settings, warning filters, Hydra's global state and
the sweep-callback failures list are restored afterwards.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import runpy
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from helpers.cli import last_line
from helpers.paths import REPO

_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s)


@contextlib.contextmanager
def _restored_state(cwd: Path) -> Iterator[None]:
    """Everything a command may change in its process, put back when it ends."""
    import matplotlib

    from erf.app import callbacks

    argv, old_cwd, environ = list(sys.argv), os.getcwd(), dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = {name: (lg.level, list(lg.handlers), lg.propagate)
               for name, lg in logging.root.manager.loggerDict.items()
               if isinstance(lg, logging.Logger)}  # fmt: skip
    disabled = logging.root.manager.disable
    signals = {s: signal.getsignal(s) for s in _SIGNALS}
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch_rng, np_rng, py_rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rc_params = dict(matplotlib.rcParams)
    failures = list(callbacks.FAILURES)
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:], root.level = handlers, level
        for name, (lvl, hs, propagate) in loggers.items():
            lg = logging.getLogger(name)
            lg.level, lg.handlers[:], lg.propagate = lvl, hs, propagate
        logging.disable(disabled)
        for s, handler in signals.items():
            signal.signal(s, handler)
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.set_rng_state(torch_rng)
        torch.use_deterministic_algorithms(deterministic)
        np.random.set_state(np_rng)
        random.setstate(py_rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matplotlib.rcParams.update(rc_params)
        callbacks.FAILURES[:] = failures
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(old_cwd)
        sys.argv[:] = argv


def run_module_here(
    module: str,
    *args: str,
    cwd: Path = REPO,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` run in this process from ``cwd`` (with ``env`` as the whole
    environment when given): a ``CompletedProcess`` with the exit status (``SystemExit``'s
    code; 1 and the traceback on stderr for an uncaught exception, as Python does) and the
    captured stdout and stderr. With ``check``, a non-zero status fails the test with the
    command's output. There is no time limit: the work is the test's own."""
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with _restored_state(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # what torch reads at start-up
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        sys.argv[:] = [module, *map(str, args)]
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = _exit_status(exc, err)
        except Exception:  # noqa: BLE001 - what an uncaught exception does to a process
            traceback.print_exc(file=err)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    proc = subprocess.CompletedProcess(
        ["python", "-m", module, *map(str, args)], code, out.getvalue(), err.getvalue()
    )
    if check:
        assert code == 0, f"{proc.args} exited {code}:\n{proc.stdout}{proc.stderr}"
    return proc


def _exit_status(exc: SystemExit, err: io.StringIO) -> int:
    """The status a process exits with for ``SystemExit(code)``: None is 0, an int is itself,
    anything else is printed to stderr and is 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=err)
    return 1


def run_erf_expecting_error(run_dir: Path, *overrides: str) -> str:
    """Run ``python -m erf.run OVERRIDES`` into ``run_dir`` (in this process), which must fail
    cleanly: non-zero exit, no traceback, no ``metrics.json`` in ``run_dir``. Returns the last
    stderr line."""
    proc = run_module_here("erf.run", *overrides, f"hydra.run.dir={run_dir}", check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "metrics.json").exists()
    return last_line(proc.stderr)


def run_erf_here(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    """``erf ARGS`` (``python -m erf``) run in this process, as :func:`run_module_here`."""
    return run_module_here("erf", *args, cwd=cwd, check=check)
