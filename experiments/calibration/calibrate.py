"""Coverage of erf's intervals by simulation (issue "intervals that mean what they say").

    python experiments/calibration/calibrate.py --label after [--repetitions 300]
    python experiments/calibration/calibrate.py --figure      # coverage.csv -> .md and .png

Each case is an exact truth map (erf.analysis.calibration) measured many times with fresh
noise; every repetition goes through erf_metrics (the job's intervals, over 16 or 8 input
groups) and through the shape study's intervals over draws (each sample one draw:
fit_r2_interval and the ERF size of the pooled map). ``--label`` names the code that made the
rows (run it from a checkout of the code before the fix with PYTHONPATH pointing there to get
the "before" rows); rows of other labels in coverage.csv are kept.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

from erf.analysis import calibration as cal
from erf.analysis import studies

HERE = Path(__file__).resolve().parent
CSV = HERE / "coverage.csv"
COLUMNS = ["label", "case", "metric", "truth", "n", "n_missing", "coverage", "coverage_low",
           "coverage_high", "miss_below", "miss_above", "width", "zero_width", "bias", "bias_sd",
           "verdict"]  # fmt: skip

CASES = [
    cal.SyntheticCase("box d4, 64 inputs / 16 groups", cal.box_stack_map(4, 3, 21), 64, 16,
                      trf_size=9),
    cal.SyntheticCase("box d8, 256 / 16", cal.box_stack_map(8, 3, 31), 256, 16, trf_size=17),
    cal.SyntheticCase("box d6, 32 / 8", cal.box_stack_map(6, 3, 25), 32, 8, trf_size=13),
    cal.SyntheticCase("gaussian σ3, 64 / 16, Exp noise", cal.gaussian_map(3.0, 25), 64, 16,
                      noise="exponential"),
    cal.SyntheticCase("laplace, 64 / 16", cal.laplace_map(2.0, 25), 64, 16),
    cal.SyntheticCase("laplace, 16 / 16, Exp noise", cal.laplace_map(3.0, 25), 16, 16,
                      noise="exponential"),
]  # fmt: skip


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
        r2 = studies.fit_r2_interval(maps)
        if band is not None:
            low, high = band(maps)
        else:
            j = studies.jackknife(lambda ms: studies.luo_size(ms[0]), [maps])
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
    """coverage.md (per metric and label: the range of coverage over the cases, the worst
    case's verdict) and coverage.png (coverage with its 95 % Clopper-Pearson interval per case,
    before and after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["label"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    head = "coverage (range over cases) · mean width · verdicts"
    lines = ["| metric | " + " | ".join(f"{lab}: {head}" for lab in labels) + " |",
             "|---|" + "---|" * len(labels)]  # fmt: skip
    for m in metrics:
        cells = []
        for lab in labels:
            mine = [r for r in rows if r["metric"] == m and r["label"] == lab]
            cov = [float(r["coverage"]) for r in mine if r["coverage"] not in ("", "nan")]
            if not cov:
                cells.append("no interval")
                continue
            bad = sum(r["verdict"] != "ok" for r in mine)
            zero = max(float(r["zero_width"]) for r in mine)
            cells.append(f"{min(cov):.2f}–{max(cov):.2f} · "
                         f"{np.mean([float(r['width']) for r in mine]):.3g} · "
                         f"{len(mine) - bad}/{len(mine)} ok"
                         + (f" · up to {zero:.0%} zero-width" if zero > 0.05 else ""))  # fmt: skip
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    (HERE / "coverage.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 0.32 * len(metrics) + 1.6),
                             sharey=True, constrained_layout=True, squeeze=False)  # fmt: skip
    cases = list(dict.fromkeys(r["case"] for r in rows))
    for ax, lab in zip(axes[0], labels):
        for i, m in enumerate(metrics):
            for j, case in enumerate(cases):
                hit = [r for r in rows if (r["label"], r["metric"], r["case"]) == (lab, m, case)]
                if not hit or hit[0]["coverage"] in ("", "nan"):
                    continue
                r = hit[0]
                y = i + (j - len(cases) / 2) * 0.1
                c, lo, hi = (float(r[k]) for k in ("coverage", "coverage_low", "coverage_high"))
                ax.errorbar(c, y, xerr=[[c - lo], [hi - c]], fmt="o", ms=3, color=f"C{j}",
                            label=case if i == 0 else None)  # fmt: skip
        ax.axvline(0.95, color="k", lw=1)
        ax.axvspan(0.92, 0.95, color="0.85", zorder=0)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(f"{lab}: coverage of 95 % intervals", fontsize=10)
        ax.set_xlabel("share of repetitions whose interval holds the exact truth")
    axes[0][0].set_yticks(range(len(metrics)), metrics, fontsize=8)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.savefig(HERE / "coverage.png", dpi=110)


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
