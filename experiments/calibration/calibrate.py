"""Before and after: the same coverage simulation through the code before the interval fix
(``d3f12c5``) and through the current code.

    PYTHONPATH=/path/to/checkout-of-d3f12c5 python calibrate.py --label before
    python calibrate.py --label after --figure   # before_after.csv -> .md and .png

The current code's own run is ``python -m erf.run experiment=calibration`` (coverage.*);
this script exists for the "before" column, which needs the old code: it is self-contained
except for the case definitions (``erf.analysis.calibration``, copied into the old checkout)
and, with ``--figure``, the current code's table and figure (``erf.io.calibration``). Besides
``erf_metrics`` (the job's intervals over 16 or 8 input groups) each repetition goes through
the shape study's intervals over draws (each sample one draw: ``fit_r2_interval`` and the
pooled map's size, rows ``draws_*``). Rows of other labels in before_after.csv are kept.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

from erf.analysis import calibration as cal
from erf.analysis.metrics import luo_size
from erf.analysis.repeats import jackknife
from erf.studies.shape import fit_r2_interval

HERE = Path(__file__).resolve().parent
CSV = HERE / "before_after.csv"
COLUMNS = ["label", "case", "metric", "truth", "n", "n_missing", "coverage", "coverage_low",
           "coverage_high", "miss_below", "miss_above", "width", "zero_width", "bias", "bias_sd",
           "verdict"]  # fmt: skip

CASES = list(cal.CASES.values())


def draws_rows(case: cal.SyntheticCase, repetitions: int, seed: int) -> list[dict]:
    """The shape study's intervals over draws, each sample one draw: fit R² (fit_r2_interval,
    16 jackknife groups) and Luo's size of the pooled map (the t-band over draws after the
    fix, the jackknife before it)."""
    try:
        from erf.analysis.bands import draws_size_band as band
    except ImportError:  # the code before the fix
        band = None
    rows = []
    for rep in range(repetitions):
        maps = cal.noisy_samples(case.truth, case.n_samples, case.noise,
                                 np.random.default_rng([seed, rep]))  # fmt: skip
        r2 = fit_r2_interval(maps)
        if band is not None:
            low, high = band(maps)
        else:
            j = jackknife(lambda ms: luo_size(ms[0]), [maps])
            low, high = j["low"], j["high"]
        rows.append({"draws_fit_r2": r2["fit_r2"], "draws_fit_r2_ci_low": r2["low"],
                     "draws_fit_r2_ci_high": r2["high"], "draws_erf_size": math.nan,
                     "draws_erf_size_ci_low": low, "draws_erf_size_ci_high": high})  # fmt: skip
    return rows


def measure(label: str, repetitions: int, seed: int) -> list[dict]:
    out = []
    for case in CASES:
        start = time.time()
        truth = cal.truth_metrics(case)
        rows = cal.simulate(case, repetitions, seed)
        table = cal.coverage_rows(rows, truth)
        from erf.analysis.fit import fit_gaussian
        from erf.analysis.metrics import luo_size

        center = (case.truth.shape[0] // 2, case.truth.shape[1] // 2)
        draw_truth = {"draws_fit_r2": fit_gaussian(case.truth).r_squared,
                      "draws_erf_size": luo_size(case.truth, center=center)}  # fmt: skip
        table += cal.coverage_rows(draws_rows(case, repetitions, seed), draw_truth,
                                   keys=list(draw_truth))  # fmt: skip
        out += [{"label": label, "case": case.name, **row} for row in table]
        print(f"{label} | {case.name}: {time.time() - start:.0f} s", flush=True)
    return out


def write_csv(rows: list[dict]) -> None:
    with CSV.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})


def read_csv() -> list[dict]:
    if not CSV.exists():
        return []
    with CSV.open() as f:
        return list(csv.DictReader(f))


def write_summary(rows: list[dict]) -> None:
    """before_after.md and before_after.png (``erf.io.calibration``)."""
    from erf.io.calibration import coverage_figure, coverage_markdown
    from erf.io.plots import save_figure

    (HERE / "before_after.md").write_text(coverage_markdown(rows))
    save_figure(coverage_figure(rows), HERE / "before_after.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label")
    parser.add_argument("--repetitions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--figure", action="store_true")
    args = parser.parse_args()
    if args.label:
        rows = [r for r in read_csv() if r["label"] != args.label]
        write_csv(rows + measure(args.label, args.repetitions, args.seed))
    if args.figure:
        write_summary(read_csv())


if __name__ == "__main__":
    main()
