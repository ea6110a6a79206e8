"""Files: ERFResults as ``.npz``, metrics as JSON, every write atomic (temp file + rename)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from erf.result import ERFResult

_UMASK = os.umask(0)
os.umask(_UMASK)

_SCALARS = ("n_samples", "target", "position", "channel", "reduce", "n_nonfinite")


def atomic_write(path: Path, write) -> None:
    """Write a file by calling ``write(f)`` on a temp file beside ``path``, then renaming it
    to ``path`` (readers see the old file or the whole new one, never a part)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; use the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def save_result(result: ERFResult, path: str | Path) -> None:
    """Save an ERFResult as ``.npz`` (arrays plus a JSON header), atomically."""
    header = _header(result)
    arrays = {
        "map": result.map,
        "stderr": result.stderr,
        "total": result.total,
        "total_sq": result.total_sq,
        "header": np.array(json.dumps(_jsonable(header))),
    }
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_result(path: str | Path) -> ERFResult:
    """Load what ``save_result`` wrote."""
    with np.load(Path(path)) as data:
        header = json.loads(str(data["header"]))
        total, total_sq = data["total"].astype(np.float64), data["total_sq"].astype(np.float64)
    return _from_header(header, total, total_sq)


def _header(result: ERFResult) -> dict[str, Any]:
    header = {k: getattr(result, k) for k in _SCALARS}
    header.update(
        input_shape=result.input_shape, target_shape=result.target_shape, meta=result.meta
    )
    return header


def _from_header(header: dict[str, Any], total: np.ndarray, total_sq: np.ndarray) -> ERFResult:
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
    )


def save_results(results: list[ERFResult], path: str | Path) -> None:
    """Save several results of one shape (e.g. one per weight draw) as one ``.npz``,
    atomically: ``map``, ``stderr``, ``total``, ``total_sq`` stacked to ``[M, H, W]``,
    ``seeds`` (``meta["seed"]`` of each, -1 when unset) and a JSON list of headers."""
    if not results:
        raise ValueError("no results to save")
    arrays = {
        name: np.stack([getattr(r, name) for r in results])
        for name in ("map", "stderr", "total", "total_sq")
    }
    arrays["seeds"] = np.array([r.meta.get("seed", -1) for r in results], dtype=np.int64)
    arrays["header"] = np.array(json.dumps(_jsonable([_header(r) for r in results])))
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def load_results(path: str | Path) -> list[ERFResult]:
    """Load what ``save_results`` wrote, in the saved order."""
    with np.load(Path(path)) as data:
        headers = json.loads(str(data["header"]))
        total, total_sq = data["total"].astype(np.float64), data["total_sq"].astype(np.float64)
    return [_from_header(h, t, sq) for h, t, sq in zip(headers, total, total_sq)]
