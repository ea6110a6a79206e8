"""Where the configs live: ``erf/configs`` inside the installed package (package data), found
from any working directory."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENT_DIR = CONFIG_DIR / "experiment"
