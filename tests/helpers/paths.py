"""Where things are: the repository root (tests start processes there)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
