"""Diff two behaviour dumps (``dump_behaviour.py``) up to key order: every JSON document (a
``.json`` file, or a line of a ``.txt`` file that parses as a JSON object or array) and every
YAML mapping (``.yaml`` files) is rewritten with sorted keys before the comparison, so a
refactor that only reorders the keys of a config or a fingerprint shows no difference, and
every other byte still counts.

    python experiments/refactor/canonical_diff.py BEFORE_DIR AFTER_DIR [--out DIR]
        [--ignore REGEX ...] [--summary]

Prints the number of files compared, the files that differ after canonicalisation and the
diff; exits 0 when identical, 1 otherwise. ``--summary`` prints instead, per differing file,
the lines left once lines that only moved (a line removed and the same line added in the same
file: a YAML block printed in another key order) and lines matching an ``--ignore`` pattern
(an intended change, e.g. a new config key) are set aside.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml


def _json_line(line: str) -> str:
    text = line.strip()
    if not text or text[0] not in "[{":
        return line
    try:
        return json.dumps(json.loads(text), sort_keys=True) + "\n"
    except ValueError:
        return line


def canonical(path: Path) -> str:
    """The file's text with its JSON and YAML documents' keys sorted."""
    text = path.read_text(errors="replace")
    if path.suffix == ".json":
        try:
            return json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n"
        except ValueError:
            return text
    if path.suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_dump(yaml.safe_load(text), sort_keys=True)
        except yaml.YAMLError:
            return text
    return "".join(_json_line(line) for line in text.splitlines(keepends=True))


def rewrite(src: Path, dst: Path) -> int:
    count = 0
    for path in sorted(src.rglob("*")):
        if path.is_file():
            out = dst / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(canonical(path))
            count += 1
    return count


def residue(before: Path, after: Path, ignore: list[re.Pattern]) -> list[str]:
    """The diff lines of two files that neither moved nor match an ``ignore`` pattern."""
    x, y = before.read_text().splitlines(), after.read_text().splitlines()
    removed, added = Counter(), Counter()
    for line in difflib.ndiff(x, y):
        if line.startswith("- "):
            removed[line[2:]] += 1
        elif line.startswith("+ "):
            added[line[2:]] += 1
    moved = removed & added
    removed, added = removed - moved, added - moved
    kept = [("- ", line) for line in removed.elements()] + [("+ ", l) for l in added.elements()]
    return [sign + line for sign, line in kept if not any(p.search(line) for p in ignore)]


def summary(root: Path, ignore: list[re.Pattern]) -> int:
    """Print each differing file's residue (``residue``); the number of such files."""
    before, after = root / "before", root / "after"
    names = {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
    names |= {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    left = 0
    for name in sorted(names):
        b, a = before / name, after / name
        if not (b.is_file() and a.is_file()):
            print(f"== {name}: only {'before' if b.is_file() else 'after'}")
            left += 1
            continue
        lines = residue(b, a, ignore)
        if lines:
            left += 1
            print(f"== {name}")
            print("\n".join("    " + line[:300] for line in lines[:20]))
    print(f"{left} files differ beyond moved lines and the ignored patterns")
    return left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="keep the canonical copies here")
    parser.add_argument("--ignore", nargs="*", default=[], help="regexes of intended changes")
    parser.add_argument("--summary", action="store_true", help="residue per file, not the diff")
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="erf-canonical-"))
    shutil.rmtree(root, ignore_errors=True)
    n = rewrite(args.before, root / "before")
    m = rewrite(args.after, root / "after")
    diff = subprocess.run(
        ["diff", "-r", str(root / "before"), str(root / "after")], capture_output=True, text=True
    )
    changed = [line for line in diff.stdout.splitlines() if line.startswith(("diff ", "Only in"))]
    print(f"compared {n} files before, {m} after (keys sorted): {len(changed)} differ")
    if args.summary:
        return 1 if summary(root, [re.compile(p) for p in args.ignore]) else 0
    sys.stdout.write(diff.stdout)
    return 0 if diff.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
