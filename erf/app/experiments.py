"""The experiment configs (``erf/configs/experiment/*.yaml``) and what each one does.

``erf experiments`` prints this listing. An experiment's description is the first comment
line of its YAML that is not a Hydra directive (``# @package ...``).
"""

from __future__ import annotations

from pathlib import Path

from erf.app.config import EXPERIMENT_DIR


def description(path: Path) -> str:
    """The first descriptive comment line of a config file ('' when it has none)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if stripped:  # the first YAML line ends the header comment
                break
            continue
        text = stripped.lstrip("#").strip()
        if text and not text.startswith("@"):
            return text
    return ""


def experiments(folder: Path = EXPERIMENT_DIR) -> list[tuple[str, str]]:
    """(name, description) of every experiment config, sorted by name."""
    return [(p.stem, description(p)) for p in sorted(folder.glob("*.yaml"))]


def format_listing(rows: list[tuple[str, str]]) -> str:
    """One line per experiment: the name, padded, then its description."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {text}".rstrip() for name, text in rows)
