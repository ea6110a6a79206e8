"""``erf report DIR plot.format=... plot.dpi=...``: figures re-rendered from saved results
only, in the chosen formats; bad figure options refused in one line (exit 2)."""

import numpy as np

from erf.app.report import main
from erf.io.store import save_result, write_json
from erf.result import ERFResult


def _sweep(folder):
    """Four saved jobs (two depths x two inits), as a finished sweep leaves them."""
    for k, (depth, init) in enumerate(
        [(2, "uniform"), (4, "uniform"), (2, "random"), (4, "random")]
    ):
        job = folder / f"{k}_depth{depth}_{init}"
        job.mkdir(parents=True)
        r = np.arange(17) - 8
        m = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * depth))
        save_result(ERFResult(m, m**2, 1, (1, 17, 17), None, (1, 17, 17), (8, 8), None, "abs"),
                    job / "erf.npz")  # fmt: skip
        write_json(
            {"depth": depth, "init": init, "activation": "none", "reduce": "abs",
             "n_samples": 1, "erf_size": 2.0 * depth, "trf_size": 2.0 * depth + 1,
             "erf_trf_ratio": 2 * depth / (2 * depth + 1),
             "trf_interval": [[8 - depth, 8 + depth], [8 - depth, 8 + depth]]},
            job / "metrics.json",
        )  # fmt: skip
    return folder


def test_report_rerenders_a_sweep_in_the_chosen_formats_only(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    assert main([str(sweep), "plot.format=[pdf,svg]", "--x", "depth", "plot.dpi=72"]) == 0
    figures = sorted(p.name for p in sweep.iterdir() if p.suffix in (".png", ".pdf", ".svg"))
    assert figures == ["erf_grid.pdf", "erf_grid.svg", "trf_vs_erf.pdf", "trf_vs_erf.svg"]
    assert "samples: 1" in (sweep / "erf_grid.svg").read_text()
    assert main([str(sweep)]) == 0  # the default: PNG
    assert (sweep / "erf_grid.png").read_bytes()[:4] == b"\x89PNG"


def test_report_refuses_bad_figure_options_in_one_line(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    for args, word in (
        (["plot.format=gif"], "plot.format"),
        (["plot.dpi=3"], "plot.dpi"),
        (["plot.colour=red"], "allowed: plot.format"),
        (["plot.scale=cubic"], "plot.scale"),
    ):
        assert main([str(sweep), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and word in err and err.count("\n") == 1
    assert not any(p.suffix in (".png", ".pdf", ".svg") for p in sweep.iterdir())


def test_a_pdf_only_report_gets_png_previews_the_report_page_shows(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    assert main([str(sweep), "plot.format=pdf", "--x", "depth"]) == 0
    figures = sorted(p.name for p in sweep.iterdir() if p.suffix in (".png", ".pdf", ".svg"))
    assert figures == ["erf_grid.pdf", "erf_grid.png", "trf_vs_erf.pdf", "trf_vs_erf.png"]
    assert (sweep / "report.html").read_text().count('<img src="data:image/png') == 2


def test_report_refuses_an_axis_or_group_no_job_records(tmp_path, capsys):
    sweep = _sweep(tmp_path / "sweep")
    for args, word in (
        (["--x", "dpth"], "--x dpth: no job in"),
        (["--group-by", "init", "activaton"], "--group-by activaton"),
    ):
        assert main([str(sweep), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {word}") and "did you mean" in err and err.count("\n") == 1
    assert not (sweep / "summary.csv").exists()
