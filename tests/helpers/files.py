"""Writing small file trees for tests."""

from pathlib import Path


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write each ``{relative path: text}`` under ``root`` (folders made as needed); ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
