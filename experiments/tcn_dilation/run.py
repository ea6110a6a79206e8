"""TRF vs ERF of causal dilated temporal-conv stacks (TCN / WaveNet style).

One command (from the repository root, a few CPU-minutes):

    PYTHONPATH=. python experiments/tcn_dilation/run.py

For each stack (kernel k, dilation schedule, depth) it measures the ERF of the LAST time step
(the prediction at time t sees inputs t, t-1, ...) with ``erf.measure_erf`` on sequences
``(C, L)`` and the exact TRF with ``erf.theoretical_rf``, and asks the design rule "the RF
covers the history length H" (here H = 64 steps) how much of the history the ERF uses:
the share of ERF mass in the most recent H/4 steps, the lag quantiles of the mass, and the
lag window that holds 90 % of it.

Two weight settings: "uniform" (linear, every weight 1/fan_in: the map is exactly the
convolution of the dilated k-tap boxes, checked here against numpy) and "kaiming" (He-normal
weights, ReLU after every conv, ``DRAWS`` weight draws x ``SAMPLES`` Gaussian inputs; the
intervals are Student-t over draws). Writes results.csv, results.json and the figures beside
this file.
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
from erf.io.nd_figures import profile_figure
from erf.io.plots import save_figure
from erf.nets.luo import initialise

HERE = Path(__file__).parent
HISTORY = 64  # the history length H the stacks are designed to cover
MARGIN = 32  # input samples before the oldest one the TRF reaches
CHANNELS = 8
DRAWS = 16
SAMPLES = 16
RECENT = HISTORY // 4  # "the most recent steps": the last H/4

# name -> (kernel, dilations, residual): plain stacks, one exponential block (1, 2, ..., 32),
# two blocks (WaveNet repeats its 1..512 block; here 1..32 or 1..16 twice), and residual
# versions (each layer x + act(conv(x)), as TCN and WaveNet blocks add their input back).
STACKS = {
    "k2 plain x63": (2, [1] * 63, False),
    "k3 plain x32": (3, [1] * 32, False),
    "k2 exp 1..32": (2, [2**i for i in range(6)], False),
    "k3 exp 1..32": (3, [2**i for i in range(6)], False),
    "k2 exp 1..32 x2": (2, [2**i for i in range(6)] * 2, False),
    "k3 exp 1..16 x2": (3, [2**i for i in range(5)] * 2, False),
    "k3 plain x32 res": (3, [1] * 32, True),
    "k2 exp 1..32 x2 res": (2, [2**i for i in range(6)] * 2, True),
    "k3 exp 1..16 x2 res": (3, [2**i for i in range(5)] * 2, True),
}


class CausalConv(nn.Sequential):
    """A causal dilated Conv1d: left padding d (k - 1), so output t sees t, t - d, ...,
    t - (k - 1) d of its input; then ReLU with ``relu``."""

    def __init__(self, kernel: int, d: int, relu: bool) -> None:
        layers: list[nn.Module] = [
            nn.ConstantPad1d((d * (kernel - 1), 0), 0.0),
            nn.Conv1d(CHANNELS, CHANNELS, kernel, dilation=d, bias=False),
        ]
        super().__init__(*(layers + [nn.ReLU()] if relu else layers))


class Residual(nn.Module):
    """``x + body(x)``: a TCN / WaveNet residual connection around one causal conv."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CausalTCN(nn.Sequential):
    """Causal dilated convs, one per dilation, each wrapped in ``Residual`` with
    ``residual``; weights by ``erf.nets.luo.initialise`` (Conv1d fan-in C k)."""

    def __init__(
        self, kernel: int, dilations: list[int], relu: bool, init: str, seed: int, residual: bool
    ) -> None:
        convs = [CausalConv(kernel, d, relu) for d in dilations]
        super().__init__(*(Residual(c) for c in convs) if residual else convs)
        initialise(self, init, seed=seed)


def oracle_lags(kernel: int, dilations: list[int], residual: bool) -> np.ndarray:
    """The uniform stack's map over lags 0, 1, ... (numpy only): the convolution of the
    layers' lag kernels, normalised to sum 1. A uniform layer maps a signal equal on every
    channel to the mean of its k dilated taps (weights 1/(C k) summed over C channels); a
    residual layer adds the identity (lag 0)."""
    p = np.ones(1)
    for d in dilations:
        box = np.zeros(d * (kernel - 1) + 1)
        box[::d] = 1.0 / kernel
        if residual:
            box[0] += 1.0
        p = np.convolve(p, box)
    return p / p.sum()


def lag_stats(lags: np.ndarray) -> dict[str, float]:
    """Statistics of a map over lags (0 = the probed step): the share of mass within the last
    ``RECENT`` steps and within the last ``HISTORY`` steps, the 5/50/95 % lag quantiles and
    the 90 % window (q95 - q05 + 1)."""
    mass = lags / lags.sum()
    cum = np.cumsum(mass)
    q = {p: int(np.searchsorted(cum, p / 100)) for p in (5, 50, 95)}
    return {
        "recent_share": float(mass[:RECENT].sum()),
        "history_share": float(mass[:HISTORY].sum()),
        "lag_q05": q[5],
        "lag_median": q[50],
        "lag_q95": q[95],
        "window90": q[95] - q[5] + 1,
    }


def measure(
    kernel: int, dilations: list[int], residual: bool, relu: bool, init: str, seed: int
) -> tuple:
    """(map over lags, TRF size, metrics, result, TRF) of the last step of one stack."""
    model = CausalTCN(kernel, dilations, relu, init, seed, residual)
    trf_size = 1 + (kernel - 1) * sum(dilations)
    length = trf_size + MARGIN
    result = erf.measure_erf(
        model, (CHANNELS, length), position=(length - 1,), n_samples=SAMPLES, seed=seed,
        bootstrap_groups=0, progress=False,
    )  # fmt: skip
    trf = erf.theoretical_rf(model, input_shape=(CHANNELS, length))
    ((start, end),) = trf.interval((length - 1,))
    assert (end, end - start + 1) == (length - 1, trf_size), (start, end, trf_size)
    lags = result.map[::-1]  # lag 0 = the probed step
    metrics = erf_metrics(result, trf)
    return lags, trf_size, metrics, result, trf


def main() -> None:
    torch.set_num_threads(1)
    rows, profiles, started = [], {}, time.perf_counter()
    for name, (kernel, dilations, residual) in STACKS.items():
        lags_u, trf_size, m_u, _, _ = measure(kernel, dilations, residual, False, "uniform", 0)
        oracle = oracle_lags(kernel, dilations, residual)
        mass_u = lags_u / lags_u.sum()
        oracle_error = float(np.abs(mass_u[: len(oracle)] - oracle).max())
        assert mass_u[len(oracle) :].max() == 0  # nothing beyond the TRF
        per_draw, maps = [], []
        for seed in range(DRAWS):
            lags, _, m, result, trf = measure(kernel, dilations, residual, True, "kaiming", seed)
            maps.append(lags / lags.sum())
            per_draw.append({**lag_stats(lags), "erf_size": m["erf_size"]})
        mean_map = np.mean(maps, axis=0)
        profiles[name] = {
            "kaiming_relu": mean_map[: trf_size + 4].tolist(),
            "uniform": oracle.tolist(),
        }
        row = {
            "stack": name, "kernel": kernel, "depth": len(dilations), "residual": residual,
            "dilations": " ".join(map(str, dilations)), "trf": trf_size,
            "covers_history": trf_size >= HISTORY, "uniform_oracle_max_error": oracle_error,
        }  # fmt: skip
        for key, value in lag_stats(oracle).items():
            row[f"uniform_{key}"] = value
        row["uniform_erf_size"] = m_u["erf_size"]
        for key in per_draw[0]:
            ci = t_interval([d[key] for d in per_draw])
            row[f"relu_{key}"], row[f"relu_{key}_low"], row[f"relu_{key}_high"] = (
                ci["mean"], ci["low"], ci["high"],
            )  # fmt: skip
        rows.append(row)
        shown = ("recent_share", "history_share", "lag_median", "window90")
        print(
            f"{name}: TRF {trf_size}, oracle error {oracle_error:.1e}, "
            + ", ".join(f"{k} {row[f'relu_{k}']:.3g}" for k in shown)
        )
    _example_figure()
    _write(rows, profiles, time.perf_counter() - started)


def _example_figure() -> None:
    """One measured job figure (erf.io.nd_figures.profile_figure) of the k3 plain stack."""
    kernel, dilations, residual = STACKS["k3 plain x32"]
    _, _, metrics, result, trf = measure(kernel, dilations, residual, True, "kaiming", 0)
    fig = profile_figure(
        result.map, trf_interval=metrics["trf_interval"], fit=metrics["fit"],
        unit=[result.position[0]], center=metrics["center"],
        title="causal k3 plain x32, last step, ReLU, kaiming (draw 0)",
        caption_text=f"reduction: mean |∂y/∂x| (abs); samples: {SAMPLES}; inputs: gaussian; "
        "probed unit: the last step; shaded: its TRF; Luo's threshold relative to the TRF's "
        "centre",
    )  # fmt: skip
    save_figure(fig, HERE / "profile_k3_plain.png")


def _write(rows: list[dict], profiles: dict, seconds: float) -> None:
    with open(HERE / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})
    record = {
        "history": HISTORY, "recent": RECENT, "channels": CHANNELS, "draws": DRAWS,
        "samples_per_draw": SAMPLES, "wall_time_s": round(seconds, 1), "rows": rows,
    }  # fmt: skip
    (HERE / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    _figures(rows, profiles)


def _figures(rows: list[dict], profiles: dict) -> None:
    import matplotlib.pyplot as plt

    from erf.io.figure_style import style

    with style():
        fig, axes = plt.subplots(3, 3, figsize=(7.4, 6.4), layout="constrained")
        for ax, row in zip(axes.ravel(), rows):
            relu = np.asarray(profiles[row["stack"]]["kaiming_relu"])
            uni = np.asarray(profiles[row["stack"]]["uniform"])
            ax.axvspan(-0.5, row["trf"] - 0.5, color="0.9", zorder=0)
            ax.axvline(HISTORY - 0.5, color="0.4", linestyle=":", linewidth=0.8)
            ax.plot(np.arange(len(relu)), relu, color="C0", linewidth=1.0, label="ReLU, kaiming")
            ax.plot(np.arange(len(uni)), uni, color="C1", linestyle="--", linewidth=0.9,
                    label="linear, uniform (exact)")  # fmt: skip
            ax.set_title(f"{row['stack']} (TRF {row['trf']})", fontsize=7)
            ax.set_xlabel("lag (steps before the probed step)", fontsize=7)
            ax.set_ylim(bottom=0)
        for ax in axes[:, 0]:
            ax.set_ylabel("ERF mass per step")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=7,
                   title=f"shaded: TRF; dotted: H = {HISTORY}; ReLU: mean of {DRAWS} draws x "
                   f"{SAMPLES} inputs, each map scaled to sum 1", title_fontsize=7)  # fmt: skip
        fig.savefig(HERE / "lag_profiles.png", dpi=110)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
        for i, row in enumerate(rows):
            cum = np.cumsum(np.asarray(profiles[row["stack"]]["kaiming_relu"]))
            ax.plot(np.arange(len(cum)), cum, label=row["stack"], linewidth=1.1,
                    linestyle=("-", "--", "-.", ":")[i % 4])  # fmt: skip
        ax.plot([0, HISTORY], [0, 1], color="0.5", linewidth=0.8, label="flat over H")
        ax.axvline(RECENT - 0.5, color="0.4", linestyle=":", linewidth=0.8)
        ax.set_xlim(0, 130)
        ax.set_xlabel("lag m (steps)")
        ax.set_ylabel("ERF mass within the last m steps")
        fig.legend(loc="outside right center", fontsize=7, title="ReLU, kaiming", title_fontsize=7)
        fig.savefig(HERE / "history_mass.png", dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
