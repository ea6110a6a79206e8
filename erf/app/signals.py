"""Stop requests: SIGINT/SIGTERM ask a running job to checkpoint and stop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("erf")


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT/SIGTERM ask the probe to checkpoint and stop after the current
    batch (a second SIGINT interrupts at once). Yields the "was a stop asked for?" poll."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, _frame):
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.append(signum)
        log.warning("%s: saving a checkpoint after this batch", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
