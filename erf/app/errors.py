"""How a failed job reports: one line on the console, the whole traceback in the job's log.

``JobInterrupted`` is what a job raises after saving its state on a stop request; the Hydra
main (``erf.app.run.main``) turns it into the resume hint and exit status 130.
"""

from __future__ import annotations

import logging

from hydra.errors import InstantiationException


class JobInterrupted(Exception):
    """A job stopped on request after saving its state; the message says what was saved
    ("...; checkpoint saved in PATH")."""


def one_line(exc: BaseException) -> str:
    """The root cause of a (possibly Hydra-wrapped) error as one line."""
    root = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
    return " ".join(str(root).split())


def log_traceback(exc: BaseException) -> list[str]:
    """Write ``error: <one line>`` with the full traceback of ``exc`` to the root logger's
    log files only (Hydra's job log, ``run.log``), not to the console. Returns their paths."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    record = logging.getLogger("erf").makeRecord(
        "erf",
        logging.ERROR,
        __file__,
        0,
        "error: %s",
        (one_line(exc),),
        (type(exc), exc, exc.__traceback__),
    )
    for handler in files:
        if record.levelno >= handler.level:
            handler.handle(record)
    return [h.baseFilename for h in files]
