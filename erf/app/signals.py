"""Stop requests: SIGINT/SIGTERM ask a running job to checkpoint and stop; a request is
never lost.

``python -m erf.run`` watches for them for the whole command (``watching_signals``), so the
handlers stay installed across the jobs of a sweep and in the gaps between them. Each job runs
inside ``stop_requests()``, whose poll the probe and the training loop call after every batch:
a request seen there saves a checkpoint and stops the job. A request that arrives after the
job's last poll (while its files are written, in training's last batch) lets the job finish
writing its files, then stops the command before the next job; one pending when a job starts
stops it before any work. Both raise ``JobInterrupted``: the resume hint and exit status 130.

A second Ctrl-C while stopping exits at once: one line, exit status 130. Every file is
written to a temp name and renamed (``erf.io.store.atomic_write``), and the temp file is
removed on the way out, so only whole files remain.

Test-only: with ``ERF_TEST_PAUSE_AFTER_POLL=SECONDS`` in the environment, every poll that
finds no request logs ``ERF_TEST_PAUSE_AFTER_POLL: poll N ...`` and sleeps that long before
the job goes on, so that a test can send a signal at a known moment (after the probe's last
batch, in training's last batch). Never set it otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from erf.app.errors import JobInterrupted

log = logging.getLogger("erf")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PAUSE_ENV = "ERF_TEST_PAUSE_AFTER_POLL"  # test-only (module docstring)


class _Watch:
    """The process's stop requests: signals received while the handlers are installed."""

    def __init__(self) -> None:
        self.requested: list[int] = []
        self.depth = 0  # nesting of watching_signals / stop_requests
        self.previous: dict[int, object] = {}
        self.polls = 0
        self.hint = ""  # how to continue, for the second Ctrl-C's line


_watch = _Watch()


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _handler(signum: int, _frame: object) -> None:
    if _watch.requested and signum == signal.SIGINT:
        print(
            "error: stopped at once by a second Ctrl-C; files written so far are whole"
            + (f"; continue with the same command plus: {_watch.hint}" if _watch.hint else ""),
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(130)
    _watch.requested.append(signum)
    log.warning(
        "%s: stopping after this batch with a checkpoint (a second Ctrl-C stops at once)",
        _name(signum),
    )


@contextmanager
def _installed() -> Iterator[bool]:
    """The handlers installed for the outermost entry, restored (and the requests
    forgotten) when it exits. Yields False off the main thread, where signals cannot be
    handled (e.g. a joblib launcher's worker threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    if _watch.depth == 0:
        _watch.requested.clear()
        _watch.previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _watch.depth += 1
    try:
        yield True
    finally:
        _watch.depth -= 1
        if _watch.depth == 0:
            for sig, old in _watch.previous.items():
                signal.signal(sig, old)
            _watch.requested.clear()
            _watch.hint = ""


@contextmanager
def watching_signals() -> Iterator[None]:
    """SIGINT/SIGTERM handled for the whole command (a sweep's jobs and the gaps between
    them): a request is kept for the next job's ``stop_requests`` instead of killing the
    process or raising KeyboardInterrupt mid-file."""
    with _installed():
        yield


def _poll() -> bool:
    """True once a stop was asked for (test-only pause: module docstring)."""
    if _watch.requested:
        return True
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        _watch.polls += 1
        log.warning("%s: poll %d found no stop request; pausing %s s", PAUSE_ENV, _watch.polls,
                    pause)  # fmt: skip
        time.sleep(float(pause))
    return False


def _resume_where() -> str:
    """``resume=true hydra.sweep.dir=...`` (or ``hydra.run.dir``) of the current Hydra job."""
    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return f"resume=true hydra.sweep.dir={hydra_cfg.sweep.dir}"
    return f"resume=true hydra.run.dir={hydra_cfg.runtime.output_dir}"


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """One job's stop requests. Yields the "was a stop asked for?" poll (the probe checkpoints
    and stops after the batch where it turns true; a second SIGINT exits at once).

    Raises ``JobInterrupted`` before the job when a request is already pending (it came
    between two jobs of a sweep), and after the job when one came after its last poll: the
    job has then written all its files, and the sweep stops before the next job."""
    with _installed() as active:
        if not active:
            yield lambda: False
            return
        if _watch.requested:
            raise JobInterrupted(f"{_name(_watch.requested[0])}: stopped before this job started")
        _watch.hint = _resume_where()
        yield _poll
        if _watch.requested:
            raise JobInterrupted(
                f"{_name(_watch.requested[0])} arrived after this job's last batch: its files "
                "are complete; stopped before the next job"
            )
