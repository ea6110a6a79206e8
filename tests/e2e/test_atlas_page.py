"""The atlas page in headless Chromium: a real click on an output unit (mouse events through
the browser's input pipeline, ``helpers.browser.Page``) changes the shown ERF map, its TRF
box and numbers; the negative controls, a click on a square of the map that was not probed
and one on the page's heading, change nothing."""

import pytest
from helpers.browser import Page

from erf.analysis.atlas import atlas_rows
from erf.io.atlas_page import atlas_html
from erf.nets.luo import ConvStack
from erf.probe.atlas import measure_atlas

pytestmark = pytest.mark.slow  # one browser start per test: ~1 s each on 2 shared cores

SHOWN = "document.getElementById('erf-map').dataset.unit"
PIXELS = "document.getElementById('erf-map').toDataURL()"
NUMBERS = "document.getElementById('numbers').innerText"


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    """The page of a 9-unit atlas ("border") of a small ReLU stack on 10 x 10 inputs."""
    model = ConvStack(depth=2, channels=2, in_channels=1, init="random", activation="relu")
    found = measure_atlas(model, (1, 10, 10), None, "border", n_samples=8, batch_size=8)
    rows = atlas_rows(found.results)
    record = {"map_shape": list(found.plan.map_shape)}
    maps = [r.map for r in found.results]
    path = tmp_path_factory.mktemp("page") / "atlas.html"
    path.write_text(atlas_html(rows, maps, found.plan.trf_boxes, record, "test atlas"))
    return path


def test_a_click_on_a_unit_shows_its_map_and_keeps_it(page_file, tmp_path):
    with Page(tmp_path, page_file.as_uri()) as page:
        assert page.evaluate(SHOWN) == "5,5"  # the centre unit first
        before = page.evaluate(PIXELS)
        page.click(*page.centre_of("#unit-0-9"))
        assert page.evaluate(SHOWN) == "0,9"
        assert page.evaluate(PIXELS) != before  # another map and box were drawn
        assert "(0, 9), corner" in page.evaluate(NUMBERS)
        assert "cols 7..11" in page.evaluate(NUMBERS)  # its TRF box, past the right border
        page.move(*page.centre_of("h1"))  # leaving the map shows the kept unit
        assert page.evaluate(SHOWN) == "0,9"


@pytest.mark.parametrize("where", ["#units rect.empty", "h1"])
def test_a_click_beside_the_probed_units_changes_nothing(page_file, tmp_path, where):
    with Page(tmp_path, page_file.as_uri()) as page:
        before = page.evaluate(PIXELS), page.evaluate(NUMBERS)
        page.click(*page.centre_of(where))
        page.move(*page.centre_of("h1"))
        assert page.evaluate(SHOWN) == "5,5"
        assert (page.evaluate(PIXELS), page.evaluate(NUMBERS)) == before


def test_the_click_check_fails_on_a_page_whose_click_does_nothing(page_file, tmp_path):
    """The control for the first test: with the click handler removed, hovering still
    previews the unit, but leaving the map brings the centre back, which that test refuses."""
    handler = "el.addEventListener('click', () => { kept = k; show(k); });"
    text = page_file.read_text()
    assert handler in text
    broken = tmp_path / "no_click.html"
    broken.write_text(text.replace(handler, ""))
    with Page(tmp_path, broken.as_uri()) as page:
        page.click(*page.centre_of("#unit-0-9"))
        assert page.evaluate(SHOWN) == "0,9"  # the hover preview
        page.move(*page.centre_of("h1"))
        assert page.evaluate(SHOWN) == "5,5"
