"""Where the configs live: ``erf/configs`` inside the installed package (package data), found
from any working directory; and the one OmegaConf resolver they use, ``erf.dirname``.

Job folder names are built from config values (``hydra.sweep.subdir``: the job number, then
values such as ``label`` or ``model.name``), which a user may set to anything: the configs wrap
them in ``${erf.dirname:...}`` (``safe_dirname``), so a label holding ``../`` or ``/`` names a
folder inside the sweep, never a path out of it or below it.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENT_DIR = CONFIG_DIR / "experiment"


def safe_dirname(text: object) -> str:
    """``text`` as one folder name: every character but letters, digits and ``._=,+-``
    becomes ``_`` (no ``/``, no ``..`` of its own, no control characters)."""
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", str(text))
    return "_" if name in ("", ".", "..") else name


if not OmegaConf.has_resolver("erf.dirname"):
    OmegaConf.register_new_resolver("erf.dirname", safe_dirname)
