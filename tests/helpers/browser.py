"""Headless Chromium for the browser tests (the report page, the documentation site): where it
is, how it starts, and the console lines it printed. Skipped without a browser, except in CI
(``CI`` set), where ``.ci/run`` installs Chromium and a missing one fails the test."""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
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


class Page:
    """One page of headless Chromium driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: JSON messages, each ended by a NUL byte, read on fd 3 and
    written on fd 4; no WebSocket library needed). ``click(x, y)`` sends real mouse events
    (``Input.dispatchMouseEvent``: moved, pressed, released), which reach the page through
    the browser's input pipeline as a user's click does (``isTrusted`` is true), unlike a
    script's ``element.click()``. Use as a context manager; ``evaluate`` returns the value of
    a JavaScript expression."""

    def __init__(self, tmp_path: Path, url: str, width: int = 1200, height: int = 900):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
        argv = [
            browser(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
            f"--window-size={width},{height}", "about:blank",
        ]  # fmt: skip

        def wire() -> None:  # in the child: fd 3 reads our commands, fd 4 answers (kept open)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self._proc = subprocess.Popen(
            argv, pass_fds=(3, 4), preexec_fn=wire,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id, self._session = b"", 0, None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Page.enable")
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def send(self, method: str, **params) -> dict:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> None:
        """Poll until ``expression`` is truthy (TimeoutError after ``timeout`` seconds)."""
        end = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > end:
                raise TimeoutError(f"{expression!r} stayed false for {timeout} s")
            time.sleep(0.05)

    def centre_of(self, selector: str) -> tuple[float, float]:
        """The viewport (x, y) of the centre of the first element ``selector`` matches."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        return float(box[0]), float(box[1])

    def click(self, x: float, y: float) -> None:
        """A real left click at viewport (x, y): the mouse moves there, presses, releases."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def move(self, x: float, y: float) -> None:
        """Move the mouse to viewport (x, y) (hover)."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.send("Browser.close")
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
