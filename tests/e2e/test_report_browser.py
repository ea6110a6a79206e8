"""A tiny real sweep's report.html in headless Chromium: it loads without script errors, every
<img> decodes (naturalWidth > 0), and a screenshot of it is not blank; ``python -m
erf.report`` rebuilds it. Skipped without a browser, except in CI (``CI`` set), where
``.ci/run`` installs Chromium and a missing one fails the test."""

import re
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
from helpers.browser import chromium, console_lines
from helpers.cli import last_line
from helpers.inprocess import run_module_here

pytestmark = pytest.mark.slow  # a sweep, a rebuild, three browser starts: ~75 s on 2 shared cores


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` with a fresh profile; return its output."""
    return chromium(tmp_path, page.as_uri(), *args)


def _body(dom: str) -> dict[str, str]:
    """The attributes of the dumped DOM's <body> (what the page's script recorded)."""
    match = re.search(r"<body([^>]*)>", dom)
    assert match, dom[:2000]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("report") / "depth_sweep"
    proc = run_module_here(
        "erf.run", "experiment=depth_sweep", "scale=tiny", f"hydra.sweep.dir={sweep_dir}"
    )
    assert last_line(proc.stdout) == f"results: {sweep_dir}"
    return sweep_dir


def test_the_sweep_writes_the_report_page_and_the_paper_tables(sweep):
    for name in ("report.html", "report.md", "summary.md", "summary.tex"):
        assert (sweep / name).stat().st_size > 0, name
    text = (sweep / "report.html").read_text()
    assert "python -m erf.run experiment=depth_sweep scale=tiny" in text
    assert text.count("<img ") == 2 + 8  # erf_grid, trf_vs_erf and the 8 jobs' heatmaps


def test_report_loads_without_errors_and_every_image_decodes(sweep, tmp_path):
    n_images = (sweep / "report.html").read_text().count("<img ")
    proc = _chromium(
        tmp_path, sweep / "report.html", "--dump-dom", "--enable-logging=stderr", "--v=0"
    )
    body = _body(proc.stdout)
    assert body.get("data-images-decoded") == f"{n_images}/{n_images}", body
    assert body.get("data-script-errors") == "", body
    console = console_lines(proc)
    assert not console, console


def test_the_checks_catch_a_broken_image_and_a_script_error(sweep, tmp_path):
    """The negative control: the same page with an undecodable image and a throwing script."""
    n_images = (sweep / "report.html").read_text().count("<img ")
    broken = tmp_path / "broken.html"
    broken.write_text(
        (sweep / "report.html")
        .read_text()
        .replace(
            "</body>",
            '<img src="data:image/png;base64,AAAA" alt="broken">'
            '<script>throw new Error("boom")</script></body>',
        )
    )
    proc = _chromium(tmp_path, broken, "--dump-dom", "--enable-logging=stderr", "--v=0")
    body = _body(proc.stdout)
    assert body.get("data-images-decoded") == f"{n_images}/{n_images + 1}", body
    assert "boom" in body.get("data-script-errors", ""), body
    assert "this image did not load: broken" in proc.stdout
    assert any("boom" in ln for ln in console_lines(proc))


def test_a_screenshot_of_the_report_is_not_blank(sweep, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path, sweep / "report.html", f"--screenshot={shot}", "--window-size=1200,2000")
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05  # a blank page is one colour (std 0)
    not_white = (pixels.min(axis=-1) < 0.9).mean()
    assert not_white > 0.05, not_white  # figures and text, not an empty white page


def test_erf_report_rebuilds_the_page(sweep):
    (sweep / "report.html").unlink()
    (sweep / "summary.tex").unlink()
    proc = run_module_here("erf.report", str(sweep))
    assert last_line(proc.stdout) == f"results: {sweep}"
    text = (sweep / "report.html").read_text()
    assert "experiment=depth_sweep scale=tiny" in text  # the command, from multirun.yaml
    assert text.count("<img ") == 10
    assert "\\toprule" in (sweep / "summary.tex").read_text()


EVIL_SVG = (  # marks <body> if any of its script runs
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" '
    "onload=\"document.body.setAttribute('data-pwned','onload')\">"
    "<script>document.body.setAttribute('data-pwned','script')</script>"
    '<rect width="40" height="40" fill="red"/></svg>'
)


def test_a_script_in_a_received_svg_does_not_run_when_the_page_opens(tmp_path):
    from erf.io.report_page import write_report_page

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"erf_size": 5.0}')
    (run / "heatmap.svg").write_text(EVIL_SVG)
    write_report_page(run)
    body = _body(_chromium(tmp_path, run / "report.html", "--dump-dom").stdout)
    assert "data-pwned" not in body and body.get("data-images-decoded") == "1/1", body
    # the control: the same SVG inlined as markup (what the page did before) runs
    inlined = tmp_path / "inlined.html"
    inlined.write_text(f"<!DOCTYPE html><html><body>{EVIL_SVG}</body></html>")
    assert "data-pwned" in _body(_chromium(tmp_path, inlined, "--dump-dom").stdout)
