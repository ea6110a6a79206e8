"""Files: ERFResults as ``.npz``, metrics as JSON, every write atomic (temp file + fsync +
rename); the checksums that say a job's files are whole; the lock that says a folder is busy."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from erf.result import ERFResult

_UMASK = os.umask(0)
os.umask(_UMASK)

_SCALARS = ("n_samples", "target", "position", "channel", "reduce", "n_nonfinite")


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file by calling ``write(f)`` on a temp file beside ``path``, fsyncing it, then
    renaming it to ``path``: readers (and a run killed mid-write, or a full disk) see the old
    file or the whole new one, never a part. The temp file's name holds this process's id
    (``.NAME.PID.XXXX.tmp``) so ``clean_stale_temps`` leaves a live writer's file alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TEMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temps(folder: Path) -> list[str]:
    """Remove the temp files ``atomic_write`` left in ``folder`` when its process died
    mid-write; a temp file whose process is alive (this one, or another run) is kept.
    Returns the names removed."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        match = _TEMP.match(path.name)
        if match and _alive(int(match.group(1))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def file_record(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of each of ``names`` in ``folder`` (``metrics.json`` keeps them as
    ``files``, so a job is complete only while every one of its files is whole)."""
    return {name: _digest(Path(folder) / name) for name in names}


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def check_files(folder: Path, record: dict[str, dict[str, Any]]) -> str | None:
    """None when every file of ``record`` (``file_record``) in ``folder`` is as recorded, else
    what is wrong with the first one that is not, naming it (missing, size, checksum)."""
    for name, want in record.items():
        path = Path(folder) / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != want.get("bytes"):
            return f"{path} is {size} bytes, metrics.json recorded {want.get('bytes')}"
        if _digest(path)["sha256"] != want.get("sha256"):
            return f"{path} does not match its sha256 in metrics.json (corrupt or changed)"
    return None


LOCK = ".lock"


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock (``folder_lock``)."""


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder/.lock`` (``flock``, exclusive; it dies with the process) while the body
    runs, so two runs never write one job folder; raises ``FolderBusy`` naming the holder's
    pid when another process holds it. The lock file is removed on the way out, and the
    folder too when this call made it and nothing was written into it."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderBusy(f"{folder} is in use by another erf run (pid {holder})") from None
        try:  # the file may have been removed by its last holder after we opened it
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
        if created and not any(folder.iterdir()):
            folder.rmdir()


def _jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays and tuples to plain JSON types; NaN/Inf become null."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Fraction):  # fractional effective strides (upsampling paths)
        return int(obj) if obj.denominator == 1 else float(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_text(text: str, path: str | Path) -> None:
    """Write ``text`` (UTF-8), atomically."""
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON, atomically (NaN/Inf written as null)."""
    write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n", path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


class CorruptJob(ValueError):
    """A job folder whose result files do not match what its ``metrics.json`` recorded."""


def read_job_metrics(path: str | Path) -> dict[str, Any]:
    """A job's ``metrics.json`` (``path``), after checking every result file it records
    (``files``: size and sha256) is whole; raises ``CorruptJob`` naming the first that is
    not (or the unreadable metrics.json) in one line. Older jobs without ``files`` pass."""
    path = Path(path)
    try:
        metrics = read_json(path)
    except (OSError, ValueError) as exc:
        raise CorruptJob(f"{path} is unreadable ({type(exc).__name__})") from None
    problem = check_files(path.parent, metrics.get("files") or {})
    if problem:
        raise CorruptJob(f"{problem}; rerun that job (resume=true) or delete its folder")
    return metrics


def save_result(result: ERFResult, path: str | Path) -> None:
    """Save an ERFResult as ``.npz`` (arrays plus a JSON header), atomically; the bootstrap
    ``groups`` ``[K, H, W]`` and ``group_n`` ``[K]`` go in when the result has them."""
    header = _header(result)
    arrays = {
        "map": result.map,
        "stderr": result.stderr,
        "total": result.total,
        "total_sq": result.total_sq,
        "header": np.array(json.dumps(_jsonable(header))),
    }
    if result.groups is not None:
        arrays.update(groups=result.groups, group_n=np.asarray(result.group_n, dtype=np.int64))
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_result(path: str | Path) -> ERFResult:
    """Load what ``save_result`` wrote; a missing file is FileNotFoundError, an unreadable one
    ``CorruptJob`` (one line, naming it). Files written before bootstrap groups and dead
    counts existed load with ``groups=None`` and ``n_dead=0``."""
    try:
        with np.load(Path(path)) as data:
            header = json.loads(str(data["header"]))
            total = data["total"].astype(np.float64)
            total_sq = data["total_sq"].astype(np.float64)
            groups, group_n = _groups(data)
        return _from_header(header, total, total_sq, groups, group_n)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CorruptJob(f"{path} is unreadable ({type(exc).__name__})") from exc


def _groups(data: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ``groups`` and ``group_n`` arrays of an opened ``.npz``, or (None, None)."""
    if "groups" not in data.files:
        return None, None
    return data["groups"].astype(np.float64), data["group_n"].astype(np.int64)


def _header(result: ERFResult) -> dict[str, Any]:
    header = {k: getattr(result, k) for k in _SCALARS}
    header.update(
        input_shape=result.input_shape,
        target_shape=result.target_shape,
        n_dead=result.n_dead,
        meta=result.meta,
    )
    return header


def _from_header(
    header: dict[str, Any],
    total: np.ndarray,
    total_sq: np.ndarray,
    groups: np.ndarray | None = None,
    group_n: np.ndarray | None = None,
) -> ERFResult:
    position = header["position"]
    return ERFResult(
        total=total,
        total_sq=total_sq,
        n_samples=int(header["n_samples"]),
        input_shape=tuple(header["input_shape"]),
        target=header["target"],
        target_shape=tuple(header["target_shape"]),
        position=tuple(position) if isinstance(position, list) else position,
        channel=header["channel"],
        reduce=header["reduce"],
        n_nonfinite=int(header["n_nonfinite"]),
        meta=header["meta"],
        groups=groups,
        group_n=group_n,
        n_dead=int(header.get("n_dead", 0)),
    )


def save_results(results: list[ERFResult], path: str | Path) -> None:
    """Save several results of one shape (e.g. one per weight draw) as one ``.npz``,
    atomically: ``map``, ``stderr``, ``total``, ``total_sq`` stacked to ``[M, H, W]``
    (``groups`` ``[M, K, H, W]`` and ``group_n`` ``[M, K]`` when every result has groups),
    ``seeds`` (``meta["seed"]`` of each, -1 when unset) and a JSON list of headers."""
    if not results:
        raise ValueError("no results to save")
    arrays = {
        name: np.stack([getattr(r, name) for r in results])
        for name in ("map", "stderr", "total", "total_sq")
    }
    if all(r.groups is not None for r in results):
        arrays["groups"] = np.stack([r.groups for r in results])
        arrays["group_n"] = np.stack([np.asarray(r.group_n, dtype=np.int64) for r in results])
    arrays["seeds"] = np.array([r.meta.get("seed", -1) for r in results], dtype=np.int64)
    arrays["header"] = np.array(json.dumps(_jsonable([_header(r) for r in results])))
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_results(path: str | Path) -> list[ERFResult]:
    """Load what ``save_results`` wrote, in the saved order (errors as ``load_result``)."""
    try:
        with np.load(Path(path)) as data:
            headers = json.loads(str(data["header"]))
            total = data["total"].astype(np.float64)
            total_sq = data["total_sq"].astype(np.float64)
            groups, group_n = _groups(data)
        if groups is None:
            groups, group_n = [None] * len(headers), [None] * len(headers)
        return [_from_header(*parts) for parts in zip(headers, total, total_sq, groups, group_n)]
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CorruptJob(f"{path} is unreadable ({type(exc).__name__})") from exc
