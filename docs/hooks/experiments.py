"""MkDocs hook: the committed experiment write-ups become pages of the site.

The pages in ``docs/`` link to ``../experiments/<study>/README.md`` and show figures from
``../experiments/`` (paths that also work when the Markdown is read on a forge or in an
editor). This hook adds the committed files under ``experiments/`` to the site, so those
write-ups, their figures and the result files they link to are built and link-checked like
the pages (``mkdocs build --strict``), and rewrites the ``../experiments/`` links of the
pages in ``docs/`` to where the files sit in the site.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
SUFFIXES = {".md", ".png", ".svg", ".pdf", ".csv", ".json", ".tex", ".py", ".sh", ".txt", ".html"}


def _committed(path: Path) -> bool:
    """A result file or write-up: the README.md of each folder is a page; other Markdown
    files there (``summary.md``: a results table, also in ``summary.csv``) are not."""
    parts = path.relative_to(EXPERIMENTS).parts
    return (
        path.is_file()
        and path.suffix in SUFFIXES
        and (path.suffix != ".md" or path.name == "README.md")
        and not any(p.startswith(".") or p == "__pycache__" for p in parts)
    )


def on_files(files, config):
    """Add ``experiments/**`` (write-ups, figures, result files) to the site's files."""
    for path in sorted(EXPERIMENTS.rglob("*")):
        if _committed(path):
            src_uri = path.relative_to(ROOT).as_posix()
            files.append(
                File(
                    src_uri,
                    src_dir=str(ROOT),
                    dest_dir=config.site_dir,
                    use_directory_urls=config.use_directory_urls,
                )
            )
    return files


def on_page_markdown(markdown, page, config, files):
    """A page in ``docs/`` reaches ``experiments/`` one ``../`` higher in the repository than in
    the site; drop that ``../`` from its links (the write-ups' own links are left alone)."""
    src_uri = page.file.src_uri
    if src_uri.startswith("experiments/"):
        return markdown
    up = "../" * src_uri.count("/")
    return re.sub(r"\]\(" + re.escape(up + "../experiments/"), "](" + up + "experiments/", markdown)
