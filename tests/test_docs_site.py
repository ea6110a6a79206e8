"""The documentation site builds with ``mkdocs build --strict`` (a broken link or anchor, a page
missing from the nav, or a docstring mkdocstrings cannot render fails it), its API reference
lists every public name, and its pages load in headless Chromium without console errors.

Skipped without mkdocs (``pip install -e '.[docs]'``), except in CI (``CI`` set), where a
missing mkdocs fails the build test."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import sys
import threading
from pathlib import Path

import pytest
from helpers.cli import run_command
from helpers.paths import REPO

import erf

PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _missing() -> list[str]:
    return [name for name in PACKAGES if not _installed(name)]


def _need_mkdocs() -> None:
    missing = _missing()
    if missing:
        why = f"{', '.join(missing)} not installed (pip install -e '.[docs]')"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI builds the documentation site")
        pytest.skip(f"{why}; CI builds the site")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from this checkout by ``mkdocs build --strict`` into a temp folder."""
    _need_mkdocs()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about MkDocs 2.0
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-d", str(out)]
    proc = run_command(argv, env=env, check=False, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log[-5000:]}"
    assert "WARNING" not in log, log[-5000:]
    return out


def _api_members() -> list[str]:
    """The ``members:`` list under ``::: erf`` in docs/api.md."""
    text = (REPO / "docs" / "api.md").read_text()
    block = re.search(r"^::: erf\n(.*?)(?:\n\n|\Z)", text, re.S | re.M)
    assert block, "docs/api.md has no '::: erf' block"
    return re.findall(r"^ +- (\w+)$", block.group(1), re.M)


def test_the_api_page_lists_every_public_name_and_nothing_else():
    assert _api_members() == sorted(erf.__all__)


def test_the_site_builds_strictly_with_every_page(site):
    nav = (REPO / "mkdocs.yml").read_text()
    pages = re.findall(r"^ +- [^:]+: (\S+\.md)$", nav, re.M)
    for page in pages:
        folder = page.removesuffix(".md").removesuffix("README").removesuffix("index")
        assert (site / folder / "index.html").is_file(), page
    assert "configuration.md" in pages  # generated (tests/app/test_groups.py), linked here
    for md in (REPO / "docs").glob("*.md"):
        assert md.name in pages, f"docs/{md.name} is not in the nav of mkdocs.yml"


def test_the_api_reference_renders_every_public_name(site):
    html = (site / "api" / "index.html").read_text()
    for name in erf.__all__:
        assert f'id="erf.{name}"' in html, name


def test_the_experiment_write_ups_and_their_figures_are_in_the_site(site):
    assert (site / "experiments" / "luo2016" / "index.html").is_file()
    assert (site / "experiments" / "depth_sweep" / "erf_grid.png").is_file()
    concepts = (site / "concepts" / "index.html").read_text()
    assert 'src="../experiments/depth_sweep/erf_grid.png"' in concepts
    assert 'href="../experiments/depth_sweep/"' in concepts


# The built site in a browser: served over HTTP (the search index is fetched by a worker,
# which a file:// page may not do), one headless Chromium per page.


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _pages() -> list[str]:
    """The site paths of the pages in the nav of mkdocs.yml."""
    nav = (REPO / "mkdocs.yml").read_text()
    pages = re.findall(r"^ +- [^:]+: (\S+\.md)$", nav, re.M)
    return [p.removesuffix(".md").removesuffix("README").removesuffix("index") for p in pages]


def _open(tmp_path: Path, url: str):
    from helpers.browser import chromium

    args = ("--dump-dom", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000")
    return chromium(tmp_path, url, *args)


@pytest.mark.slow  # one browser start per page: ~1 s each on 2 shared cores
@pytest.mark.parametrize("page", _pages())
def test_a_page_loads_in_a_browser_without_console_errors(served, page, tmp_path):
    from helpers.browser import console_lines

    proc = _open(tmp_path, served + page)
    assert "md-content" in proc.stdout, proc.stdout[:2000]  # the page, rendered by Material
    console = console_lines(proc)
    assert not console, console
    if page == "api/":
        assert 'id="erf.measure_erf"' in proc.stdout


@pytest.mark.slow
def test_the_browser_check_sees_a_script_error(site, served, tmp_path):
    """The negative control: a built page with a throwing script gives a console line."""
    from helpers.browser import console_lines

    html = (site / "index.html").read_text()
    script = '<script>throw new Error("boom")</script></body>'
    (site / "broken.html").write_text(html.replace("</body>", script))
    console = console_lines(_open(tmp_path, served + "broken.html"))
    assert any("boom" in ln for ln in console), console
