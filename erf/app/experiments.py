"""The experiment configs (``erf/configs/experiment/*.yaml``) and what each one does.

``erf experiments`` prints this listing. An experiment's description is the first sentence of
its YAML's header comment (Hydra directives such as ``# @package ...`` left out).
"""

from __future__ import annotations

import re
from pathlib import Path

from erf.app.config import EXPERIMENT_DIR

MAX_DESCRIPTION = 110  # characters of the listing's description column
# A sentence ends at a full stop before a space or the end of the text, except in
# "et al.", "Fig.", "e.g." and "i.e.".
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\bFig)(?<!\be\.g)(?<!\bi\.e)\.(?=\s|$)")


def description(path: Path) -> str:
    """The first sentence of a config file's header comment ('' when it has none): the
    comment lines before the first YAML line, Hydra directives (``# @package``) left out,
    joined; cut at a word boundary with an ellipsis past ``MAX_DESCRIPTION`` characters."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if stripped or words:  # the first YAML line (or a gap after the text) ends it
                break
            continue
        text = stripped.lstrip("#").strip()
        if text.startswith("@"):
            continue
        if not text and words:  # an empty comment line ends the first paragraph
            break
        words.extend(text.split())
    paragraph = " ".join(words)
    end = _SENTENCE_END.search(paragraph)
    sentence = paragraph[: end.end()] if end else paragraph
    if len(sentence) <= MAX_DESCRIPTION:
        return sentence
    cut = sentence[: MAX_DESCRIPTION - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "…"


def experiments(folder: Path = EXPERIMENT_DIR) -> list[tuple[str, str]]:
    """(name, description) of every experiment config, sorted by name."""
    return [(p.stem, description(p)) for p in sorted(folder.glob("*.yaml"))]


def format_listing(rows: list[tuple[str, str]]) -> str:
    """One line per experiment: the name, padded, then its description."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {text}".rstrip() for name, text in rows)
