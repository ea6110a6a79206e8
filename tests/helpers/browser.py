"""Headless Chromium for the browser tests (the report page, the documentation site): where it
is, how it starts, and the console lines it printed. Skipped without a browser, except in CI
(``CI`` set), where ``.ci/run`` installs Chromium and a missing one fails the test."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser() -> str:
    """The Chromium executable (skips the test without one, fails it in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium in CI: .ci/run installs it with apt-get (Debian: chromium)")
        pytest.skip("no chromium (apt-get install chromium); CI runs this test")
    return found


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``url`` with a fresh profile; return its output."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    argv = [browser(), *FLAGS, f"--user-data-dir={profile}", *args, url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def console_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The page's console messages (script errors included) among Chromium's log lines, as
    ``--enable-logging=stderr --v=0`` prints them."""
    return [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln]
