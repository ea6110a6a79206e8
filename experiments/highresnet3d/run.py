"""TRF vs ERF per stage of a 3-D dilated residual network in the HighResNet style.

One command (from the repository root, about two CPU-minutes):

    PYTHONPATH=. python experiments/highresnet3d/run.py

HighResNet (Li et al. 2017, 3-D brain parcellation) is a stem conv, then three stages of
residual blocks of two 3x3x3 convs with dilation 1, 2 and 4, so the TRF grows fast while the
resolution stays full. This is a small copy: ``CHANNELS`` channels throughout (HighResNet:
16, 32, 64), ``BLOCKS`` blocks per stage (HighResNet: 3), pre-activation blocks
``x + conv(relu(conv(relu(x))))`` without batch norm, He-normal weights. Its control is the
same network without the identity paths ("plain"): the same TRF, but every input-to-output
path goes through every conv. For each stage output the centre voxel's ERF is measured on volumes
``(1, S, S, S)`` of Gaussian noise (``erf.measure_erfs``, one forward per batch for the three
stages), ``DRAWS`` weight draws x ``SAMPLES`` inputs; the TRF is exact (``erf.theoretical_rf``).
Intervals are Student-t over draws. Writes results.csv, results.json and figures beside this
file.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import erf
from erf.analysis.repeats import t_interval
from erf.analysis.summary import erf_metrics
from erf.io.nd_figures import slices_figure
from erf.io.plots import save_figure
from erf.nets.luo import initialise

HERE = Path(__file__).parent
CHANNELS = 4
BLOCKS = 2
DILATIONS = (1, 2, 4)
SIDE = 60  # the input volume is SIDE^3; the last stage's TRF (59) fits around the centre
DRAWS = 6
SAMPLES = 8
STAGES = [f"stage{i + 1}" for i in range(len(DILATIONS))]
KEYS = ("erf_size", "erf_size_axis", "fit_sigma", "erf_trf_ratio")


class Block(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` (``skip``) or without ``x +``: two 3x3x3 convs
    with dilation ``d`` and "same" padding."""

    def __init__(self, d: int, skip: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(CHANNELS, CHANNELS, 3, padding=d, dilation=d, bias=False)
        self.conv2 = nn.Conv3d(CHANNELS, CHANNELS, 3, padding=d, dilation=d, bias=False)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(torch.relu(x))))
        return x + out if self.skip else out


class HighResNetLike(nn.Module):
    """Stem conv (1 -> ``CHANNELS``), then one stage of ``BLOCKS`` blocks per dilation."""

    def __init__(self, skip: bool, seed: int) -> None:
        super().__init__()
        self.stem = nn.Conv3d(1, CHANNELS, 3, padding=1, bias=False)
        for name, d in zip(STAGES, DILATIONS):
            setattr(self, name, nn.Sequential(*(Block(d, skip) for _ in range(BLOCKS))))
        initialise(self, "kaiming", seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in STAGES:
            x = getattr(self, name)(x)
        return x


def per_draw(skip: bool, seed: int) -> tuple[list[dict], list]:
    """Each stage's metrics row and result for one weight draw."""
    model = HighResNetLike(skip, seed)
    shape = (1, SIDE, SIDE, SIDE)
    results = erf.measure_erfs(
        model, shape, STAGES, n_samples=SAMPLES, batch_size=4, seed=seed, bootstrap_groups=0,
        progress=False,
    )  # fmt: skip
    trf = erf.theoretical_rf(model, input_shape=shape)
    rows = []
    for stage, result in zip(STAGES, results):
        m = erf_metrics(result, trf.at(stage))
        rows.append(
            {
                "erf_size": m["erf_size"],
                "erf_size_axis": float(np.mean(m["erf_size_axes"])),
                "fit_sigma": float(np.mean(m["fit_sigmas"])),
                "fit_r2": m["fit_r2"],
                "erf_trf_ratio": m["erf_trf_ratio"],
                "trf": m["trf_sizes"][0],
                "trf_clipped": m["trf_clipped"],
                "metrics": m,
            }
        )
    return rows, results


def main() -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    table, examples = [], {}
    for skip in (True, False):
        draws = []
        for seed in range(DRAWS):
            rows, results = per_draw(skip, seed)
            draws.append(rows)
            if seed == 0:
                examples[skip] = (rows, results)
        for i, stage in enumerate(STAGES):
            first = draws[0][i]
            assert not first["trf_clipped"], f"{stage}: the TRF does not fit in {SIDE}^3"
            row = {
                "network": "residual" if skip else "plain", "stage": stage,
                "dilation": DILATIONS[i], "trf": first["trf"],
            }  # fmt: skip
            for key in (*KEYS, "fit_r2"):
                ci = t_interval([d[i][key] for d in draws])
                row[key], row[f"{key}_low"], row[f"{key}_high"] = ci["mean"], ci["low"], ci["high"]
            table.append(row)
            print(
                f"{row['network']} {stage}: TRF {row['trf']}, ERF size {row['erf_size']:.2f} "
                f"[{row['erf_size_low']:.2f}, {row['erf_size_high']:.2f}], ERF/TRF "
                f"{row['erf_trf_ratio']:.3f}, fit sigma {row['fit_sigma']:.2f}"
            )
    _write(table, time.perf_counter() - started)
    _figures(table, examples)


def _write(table: list[dict], seconds: float) -> None:
    with open(HERE / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        for row in table:
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})
    record = {
        "channels": CHANNELS, "blocks_per_stage": BLOCKS, "dilations": list(DILATIONS),
        "side": SIDE, "draws": DRAWS, "samples_per_draw": SAMPLES,
        "wall_time_s": round(seconds, 1), "rows": table,
    }  # fmt: skip
    (HERE / "results.json").write_text(json.dumps(record, indent=1) + "\n")


def _figures(table: list[dict], examples: dict) -> None:
    import matplotlib.pyplot as plt

    from erf.io.figure_style import log_axis, style

    rows, results = examples[True]
    m, result = rows[-1]["metrics"], results[-1]
    fig = slices_figure(
        result.map, center=m["center"], trf_interval=m["trf_interval"],
        unit=m["unit_in_input"], title="HighResNet-like (residual), stage 3 (dilation 4), draw 0",
        caption_text=f"reduction: mean |∂y/∂x| (abs); samples: {SAMPLES}; inputs: gaussian "
        f"volumes {SIDE}^3; orthogonal slices through the probed voxel; dashed: its TRF",
    )  # fmt: skip
    save_figure(fig, HERE / "slices_stage3_residual.png")
    with style():
        fig, ax = plt.subplots(figsize=(5.2, 3.4), layout="constrained")
        for net, marker in (("residual", "o"), ("plain", "s")):
            sel = [r for r in table if r["network"] == net]
            x = np.arange(len(sel))
            y = np.array([r["erf_size"] for r in sel])
            err = np.array(
                [
                    [r["erf_size"] - r["erf_size_low"], r["erf_size_high"] - r["erf_size"]]
                    for r in sel
                ]
            ).T  # noqa: E501
            ax.errorbar(x, y, yerr=err, marker=marker, capsize=2, label=f"ERF size, {net}")
        trf = [r["trf"] for r in table if r["network"] == "plain"]
        ax.plot(np.arange(len(trf)), trf, "k--", marker="^", label="TRF (both)")
        ax.set_xticks(
            range(len(STAGES)), [f"{s}\n(dilation {d})" for s, d in zip(STAGES, DILATIONS)]
        )
        ax.set_yscale("log")
        log_axis(ax, "y")
        ax.set_ylabel("size per axis (voxels)")
        ax.legend(fontsize=7, title=f"{DRAWS} draws x {SAMPLES} inputs, 95 % t-intervals",
                  title_fontsize=7)  # fmt: skip
        fig.savefig(HERE / "trf_vs_erf_per_stage.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
