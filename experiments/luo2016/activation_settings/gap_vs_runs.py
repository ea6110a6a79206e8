"""The fit-R² gap R²(none) − R²(relu) under Luo's protocol against the number of runs N.

The setting where the activation_settings table shows the paper's ordering (depth 20,
8 channels, 48×48 N(0, 1) inputs, random N(0, 1/fan_in) weights, all output channels seeded,
reduction ``abs``): run r is a fresh weight draw (seed r) with ONE input (seed r), as
``python -m erf.run experiment=activation_settings probe.protocol=luo`` measures it; runs
0–63 are that table's 64 runs. 4,096 runs per activation, the same seeds for both, then:

- ``nested``: the R² of the mean map of runs 0 … N − 1, for N = 64, 256, 1,024, 4,096;
- ``blocks``: the runs cut into 4,096 / N disjoint blocks of N runs, the gap per block, its
  mean over the blocks and the standard error of that mean (the expected gap at N);
- ``gain_cv``: the coefficient of variation over runs of each run's map sum (its gradient
  gain): the pooled map is the plain mean over runs, so a run counts by its gain;
- ``n_dead_runs``: runs whose map is all zero.

About 80 s on one CPU thread:

    python experiments/luo2016/activation_settings/gap_vs_runs.py \\
        experiments/luo2016/activation_settings/gap_vs_runs.json
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from erf import ConvStack, fit_gaussian
from erf.probe import measure_erf_draws

DEPTH, CHANNELS, SIZE, RUNS = 20, 8, 48, 4096
NS = (64, 256, 1024, 4096)


def run_maps(activation: str) -> np.ndarray:
    """[RUNS, SIZE, SIZE]: the one-input map of every run."""

    def make(seed: int) -> ConvStack:
        return ConvStack(
            depth=DEPTH, kernel_size=3, channels=CHANNELS, activation=activation,
            init="random", seed=seed,
        )  # fmt: skip

    results = measure_erf_draws(
        make, (CHANNELS, SIZE, SIZE), draws=RUNS, n_samples=1, batch_size=1, seed=0,
        reduce="abs", progress=False,
    )  # fmt: skip
    return np.stack([r.map for r in results])


def r2(maps: np.ndarray) -> float:
    return float(fit_gaussian(maps.mean(axis=0)).r_squared)


def main(out: str) -> None:
    torch.set_num_threads(1)
    maps = {a: run_maps(a) for a in ("none", "relu")}
    nested = []
    for n in NS:
        none, relu = r2(maps["none"][:n]), r2(maps["relu"][:n])
        nested.append({"runs": n, "r2_none": none, "r2_relu": relu, "gap": none - relu})
    blocks = []
    for n in NS[:-1]:
        k = RUNS // n
        gaps = np.array(
            [r2(maps["none"][b * n : (b + 1) * n]) - r2(maps["relu"][b * n : (b + 1) * n])
             for b in range(k)]
        )  # fmt: skip
        se = float(gaps.std(ddof=1) / np.sqrt(k))
        blocks.append({"runs": n, "blocks": k, "gap_mean": float(gaps.mean()), "gap_se": se})
    sums = {a: m.reshape(RUNS, -1).sum(axis=1) for a, m in maps.items()}
    live = {a: s[s > 0] for a, s in sums.items()}
    report = {
        "setting": {
            "depth": DEPTH, "channels": CHANNELS, "input": [SIZE, SIZE], "init": "random",
            "seeding": "all_channels", "reduce": "abs", "protocol": "luo",
            "runs": RUNS, "seeds": f"0-{RUNS - 1}",
        },
        "difference": "R2(none) - R2(relu)",
        "nested": nested,
        "blocks": blocks,
        "gain_cv": {a: float(s.std(ddof=1) / s.mean()) for a, s in live.items()},
        "n_dead_runs": {a: int((s == 0).sum()) for a, s in sums.items()},
        "command": "python experiments/luo2016/activation_settings/gap_vs_runs.py OUT.json",
    }  # fmt: skip
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
