"""The report page (report.html, report.md) of a synthetic sweep folder the test writes: two
finished jobs, one failed, figures (PNG and SVG), summary.csv with and without intervals."""

import base64
import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import matplotlib.pyplot as plt
import numpy as np
import pytest

from erf.io import store
from erf.io.report_page import gather, read_summary, write_report_page

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SVG = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
EVIL_SVG = (  # marks the page if any of its script runs
    '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4" '
    "onload=\"document.body.setAttribute('data-pwned','onload')\">"
    "<script>document.body.setAttribute('data-pwned','script')</script></svg>"
)


class _Page(HTMLParser):
    """Every <img> src, every <a> href and every <td> text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.cells, self._td = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs["src"])
        if tag == "a":
            self.hrefs.append(attrs["href"])
        if tag == "td":
            self._td = ""

    def handle_data(self, data):
        if self._td is not None:
            self._td += data

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._td)
            self._td = None


def _png(path: Path, seed: int) -> bytes:
    plt.imsave(path, np.random.default_rng(seed).random((8, 12)))
    return path.read_bytes()


def _job(folder: Path, name: str, overrides: list[str], metrics: dict | None) -> None:
    (folder / name / ".hydra").mkdir(parents=True)
    (folder / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / name / ".hydra" / "config.yaml").write_text(f"model:\n  depth: {name[0]}\n")
    if metrics is None:
        (folder / name / "run.log").write_text("starting\nRuntimeError: out of memory\n")
        return
    _png(folder / name / "heatmap.png", len(name))
    (folder / name / "metrics.json").write_text(json.dumps(metrics))


def _summary(folder: Path, intervals: bool) -> None:
    columns = ["job", "depth", "init", "erf_size", "trf_size", "wall_time_s"]
    rows = [
        ["0_depth5", "5", "uniform", "8.31", "11", "1"],
        ["1_depth10", "10", "uniform", "11.7", "21", "0.7"],
    ]
    if intervals:
        columns += ["erf_size_ci_low", "erf_size_ci_high"]
        rows[0] += ["7.9512", "8.6789"]
        rows[1] += ["", ""]  # an interval that could not be computed
    with open(folder / "summary.csv", "w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])


@pytest.fixture
def sweep(tmp_path):
    """A sweep folder: figures, summary.csv (with intervals), sweep.json, three jobs."""
    folder = tmp_path / "depth_sweep"
    folder.mkdir()
    pngs = {"erf_grid.png": _png(folder / "erf_grid.png", 1)}
    (folder / "trf_vs_erf.svg").write_text(SVG)
    (folder / "sweep.json").write_text(json.dumps({"experiment": "depth_sweep", "overrides": {}}))
    _summary(folder, intervals=True)
    prov = {"erf_version": "0.1.0", "git_commit": COMMIT, "torch_version": "2.3", "python": "3.11"}
    base = {"provenance": {**prov, "machine": "CPU Test, 2 cores", "device": "cpu"}}
    _job(folder, "0_depth5", ["model.depth=5", "scale=tiny"], {**base, "warnings": []})
    _job(
        folder,
        "1_depth10",
        ["model.depth=10", "scale=tiny"],
        {**base, "warnings": ["poor <b>fit</b> & more"], "erf_init": {"probe_warnings": ["x8"]}},
    )
    _job(folder, "2_depth20", ["model.depth=20", "scale=tiny"], None)
    for name in ("0_depth5", "1_depth10"):
        pngs[f"{name}/heatmap.png"] = (folder / name / "heatmap.png").read_bytes()
    return folder, pngs


def _write(folder, **context):
    write_report_page(folder, context or None)
    text = (folder / "report.html").read_text()
    page = _Page()
    page.feed(text)
    return text, page


def test_every_figure_is_embedded_byte_for_byte_as_an_image(sweep):
    folder, pngs = sweep
    text, page = _write(folder)
    png, svg = "data:image/png;base64,", "data:image/svg+xml;base64,"
    assert all(src.startswith((png, svg)) for src in page.srcs)
    embedded = sorted(base64.b64decode(src[len(png) :]) for src in page.srcs if src.startswith(png))
    assert embedded == sorted(pngs.values())
    svgs = [base64.b64decode(src[len(svg) :]).decode() for src in page.srcs if src.startswith(svg)]
    assert svgs == [SVG]


def test_a_received_svg_is_shown_as_an_image_never_as_markup(sweep):
    # an <img> runs no script of the SVG it shows; inlined markup ran this one in Chromium
    folder, _ = sweep
    (folder / "evil.svg").write_text(EVIL_SVG)
    text, _ = _write(folder)
    assert "<svg" not in text and "data-pwned" not in text


def test_a_file_named_like_a_url_scheme_links_to_the_file(sweep):
    folder, _ = sweep
    (folder / "javascript:alert(1)").write_text("x")
    (folder / "0_depth5" / "a #b?.csv").write_text("x")
    _, page = _write(folder)
    assert all(h.startswith("./") for h in page.hrefs), page.hrefs
    assert (
        "./javascript%3Aalert%281%29" in page.hrefs and "./0_depth5/a%20%23b%3F.csv" in page.hrefs
    )
    md = (folder / "report.md").read_text()
    assert "(<./javascript%3Aalert%281%29>)" in md


def test_summary_shows_intervals_and_missing_bounds_as_the_value_alone(sweep):
    folder, _ = sweep
    _, page = _write(folder)
    assert "8.31 [7.95, 8.68]" in page.cells
    assert "11.7" in page.cells
    assert not any("ci_low" in c for c in page.cells)


def test_an_old_summary_without_interval_columns_renders(sweep):
    folder, _ = sweep
    _summary(folder, intervals=False)
    _, page = _write(folder)
    assert "8.31" in page.cells and not any("[" in c for c in page.cells)


def test_every_relative_link_points_at_a_file_or_folder_of_the_sweep(sweep):
    folder, _ = sweep
    _, page = _write(folder)
    local = [unquote(h.removeprefix("./")) for h in page.hrefs]
    for job in ("0_depth5/", "1_depth10/", "2_depth20/", "0_depth5/metrics.json"):
        assert job in local
    assert "summary.csv" in local and "sweep.json" in local
    assert all((folder / h).exists() for h in local), [
        h for h in local if not (folder / h).exists()
    ]


def test_warnings_failed_jobs_provenance_and_settings_are_on_the_page(sweep):
    folder, _ = sweep
    text, _ = _write(folder, command="python -m erf.run experiment=depth_sweep scale=tiny")
    assert "poor &lt;b&gt;fit&lt;/b&gt; &amp; more" in text and "<b>fit</b>" not in text
    assert "x8" in text  # a nested result's probe_warnings
    assert "2_depth20" in text and "failed or not finished" in text
    assert "RuntimeError: out of memory" in text  # the failed job's log tail
    for shown in (COMMIT, "CPU Test, 2 cores", "2.3", "0.1.0"):
        assert shown in text
    assert "python -m erf.run experiment=depth_sweep scale=tiny" in text
    assert "scale" in text and "tiny" in text  # the override every job has
    assert "model.depth=10" in text and "&quot;experiment&quot;: &quot;depth_sweep&quot;" in text


def test_report_md_has_the_same_content_with_relative_image_links(sweep):
    folder, _ = sweep
    write_report_page(folder, {"command": "python -m erf.run experiment=depth_sweep"})
    md = (folder / "report.md").read_text()
    for image in ("erf_grid.png", "trf_vs_erf.svg", "0_depth5/heatmap.png"):
        assert f"](<./{image}>)" in md
    assert "[0_depth5](<./0_depth5/>)" in md
    assert "8.31 [7.95, 8.68]" in md and "poor <b>fit</b> & more" in md
    assert "**[2_depth20](<./2_depth20/>): no metrics.json: failed or not finished**" in md
    assert COMMIT in md and "`python -m erf.run experiment=depth_sweep`" in md


def test_both_files_are_written_through_atomic_write(sweep, monkeypatch):
    folder, _ = sweep
    written = []
    real = store.atomic_write
    monkeypatch.setattr(store, "atomic_write", lambda p, w: (written.append(p.name), real(p, w)))
    assert write_report_page(folder) == ["report.html", "report.md"]
    assert sorted(written) == ["report.html", "report.md"]


def test_a_rebuilt_page_does_not_list_the_old_page_among_the_files(sweep):
    folder, _ = sweep
    write_report_page(folder)
    assert "report.html" not in [f["name"] for f in gather(folder)["files"]]


def test_a_single_run_folder_gets_a_page_of_its_own_metrics(tmp_path):
    _png(tmp_path / "heatmap.png", 3)
    metrics = {"erf_size": 6.7123, "trf_size": 7.0, "depth": 3, "warnings": ["clipped"]}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    text, page = _write(tmp_path)
    assert len(page.srcs) == 1 and "6.71" in page.cells and "clipped" in text
    assert "1 of 1 jobs finished" in text


def test_read_summary_parses_numbers_and_empty_cells(sweep):
    folder, _ = sweep
    columns, rows = read_summary(folder / "summary.csv")
    assert columns[:3] == ["job", "depth", "init"]
    assert rows[0]["depth"] == 5 and rows[0]["trf_size"] == 11 and rows[0]["init"] == "uniform"
    assert isinstance(rows[0]["trf_size"], int)
    assert rows[0]["wall_time_s"] == 1.0 and isinstance(rows[0]["wall_time_s"], float)  # "1", 0.7
    assert rows[1]["erf_size_ci_low"] is None


def test_a_folder_without_jobs_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no job folders"):
        write_report_page(tmp_path)


def test_the_summary_table_shows_the_key_columns_and_the_interval_method_once_above_it(tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    method = "0.95 intervals over 16 input groups (" + "a long sentence, " * 12 + ")"
    columns = ["job", "depth", "init", "erf_size", "trf_size", "ci_method", "wall_time_s"]
    rows = [
        ["0_depth5", "5", "uniform", "8.31", "11", method, "1"],
        ["1_depth10", "10", "uniform", "11.7", "21", method, "0.7"],
    ]
    with open(folder / "summary.csv", "w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])
    _job(folder, "0_depth5", ["model.depth=5"], {"warnings": []})
    text, page = _write(folder)
    head = text[text.index("<h2>Summary</h2>") : text.index("</table>", text.index("<h2>Summary"))]
    assert head.count(method) == 1 and head.index(method) < head.index("<table>")
    assert "<th>ci_method</th>" not in head and "<th>wall_time_s</th>" not in head
    assert "<th>erf_size</th>" in head and "every column is in summary.csv" in head
    md = (folder / "report.md").read_text()
    assert md.count(method) == 1
