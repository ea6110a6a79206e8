"""``erf.io.calibration``: the coverage table and figure of a calibration."""

from erf.io.calibration import coverage_markdown, write_calibration


def _row(label, case, metric, coverage, verdict="ok", zero=0.0):
    return {"label": label, "case": case, "metric": metric, "coverage": coverage,
            "coverage_low": coverage - 0.05, "coverage_high": min(1.0, coverage + 0.03),
            "width": 0.5, "zero_width": zero, "verdict": verdict, "n": 100}  # fmt: skip


def test_the_markdown_gives_the_coverage_range_over_cases_and_the_verdicts_per_label():
    rows = [
        _row("before", "a", "erf_size", 0.71, "undercovers"),
        _row("before", "b", "erf_size", 0.96, zero=0.5),
        _row("after", "a", "erf_size", 0.99),
        _row("after", "b", "erf_size", 1.0),
        _row("before", "a", "area_ratio_20", 1.0),
        _row("after", "a", "area_ratio_20", float("nan"), "no interval"),
    ]
    lines = coverage_markdown(rows).splitlines()
    assert lines[0].startswith("| metric | before: coverage") and "after: coverage" in lines[0]
    assert lines[2] == (
        "| erf_size | 0.71–0.96 · 0.5 · 1/2 ok · up to 50% zero-width | 0.99–1.00 · 0.5 · 2/2 ok |"
    )
    assert lines[3].endswith("| no interval |")


def test_write_calibration_writes_the_table_the_page_and_the_figure(tmp_path):
    write_calibration(tmp_path, [_row("after", "a", "erf_size", 0.95)], {"level": 0.95})
    assert (tmp_path / "coverage.csv").read_text().splitlines()[0].startswith("label,case,metric")
    assert {p.name for p in tmp_path.iterdir()} >= {
        "coverage.csv",
        "coverage.md",
        "coverage.png",
        "calibration.json",
    }
