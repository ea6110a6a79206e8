"""The atlas's files from plain rows and maps: the unit grid, the packed maps of the page, an
escaped title, and ``atlas.json`` written last with the other files' checksums."""

import base64
import json
import math

import numpy as np

from erf.io.atlas import unit_grid, write_atlas
from erf.io.atlas_page import atlas_html, page_data
from erf.io.store import check_files


def _rows():
    rows = []
    for k, (r, c) in enumerate([(0, 0), (1, 2)]):
        row = {"unit_row": r, "unit_col": c, "region": "corner" if k == 0 else "interior",
               "border_distance": 0, "unit_in_input_row": 2.0 * r, "unit_in_input_col": 2.0 * c,
               "centroid_row": 1.0, "centroid_col": 1.5, "mass_outside_trf": 0.0}  # fmt: skip
        for key in ("erf_size", "erf_trf_ratio", "shift_row", "shift_col", "shift_norm",
                    "moment_sigma"):  # fmt: skip
            row.update({key: 1.0 + k, f"{key}_ci_low": 0.5, f"{key}_ci_high": 2.5 + k})
        rows.append(row)
    rows[1]["shift_norm"] = math.nan  # a NaN reaches the page as null
    return rows


def test_unit_grid_places_each_value_at_its_unit():
    grid = unit_grid(_rows(), "erf_size", (2, 3))
    assert grid[0, 0] == 1.0 and grid[1, 2] == 2.0 and np.isnan(grid[0, 1])


def test_the_page_packs_each_map_scaled_to_its_peak_and_escapes_its_title():
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 1], maps[0, 2, 2], maps[1, 3, 0] = 2.0, 1.0, 5.0
    data = page_data(_rows(), maps, [None, ((0, 3), (1, 4))], {"map_shape": [2, 3]})
    packed = np.frombuffer(base64.b64decode(data["maps"]), np.uint8).reshape(2, 4, 4)
    assert packed[0, 1, 1] == 255 and packed[0, 2, 2] == 128 and packed[1, 3, 0] == 255
    assert data["units"][1]["box"] == [[0, 3], [1, 4]] and data["units"][1]["shift_norm"] is None
    page = atlas_html(_rows(), maps, [None, None], {"map_shape": [2, 3]}, "a </script> title")
    assert "a &lt;/script&gt; title" in page and page.count("</script>") == 2


def test_write_atlas_writes_the_record_last_with_the_files_it_checks(tmp_path):
    names = write_atlas(
        tmp_path, _rows(), np.ones((2, 4, 4)), [None, None], {"map_shape": [2, 3]}, "t"
    )
    assert names[-1] == "atlas.json"
    record = json.loads((tmp_path / "atlas.json").read_text())
    assert check_files(tmp_path, record["files"]) is None
    assert len(record["rows"]) == 2 and record["rows"][1]["shift_norm"] is None
    header = (tmp_path / "atlas.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["unit_row", "unit_col", "region"] and "erf_size_ci_low" in header
