"""Does an interval cover at its level? Coverage of erf's intervals by simulation. Pure numpy.

A calibration case is a truth map whose metrics are known exactly (the n-fold box convolution
of a uniform-weight stack, a Gaussian) and a noise model that turns it into per-sample maps
whose mean is the truth; each repetition measures a fresh finite-sample result, computes its
intervals the way a job does (``erf.analysis.summary.erf_metrics``), and records whether each
interval holds the truth's metric. ``coverage_rows`` turns the repetitions into the table of
``experiments/calibration``: per metric, the share of intervals that cover (with its own
Clopper-Pearson interval), the shares that miss below and above, mean width and bias.

Cases measured with a network instead of a synthetic noise model (random-weight stacks against
a very large reference run) hand their results to the same ``coverage_rows``
(``erf.app.jobs.calibration``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from erf.analysis.summary import CI_KEYS, erf_metrics
from erf.result import ERFResult
from erf.rf import TheoreticalRF

NOISE_MODELS = ("half_normal", "exponential", "gaussian")
MAX_REPETITIONS = 100_000  # experiment=calibration: beyond this a case would take days


def box_stack_map(depth: int, kernel: int, size: int) -> np.ndarray:
    """The ERF of ``depth`` stacked ``kernel`` x ``kernel`` uniform-weight linear convolutions
    (Luo et al. 2016, §2.2): the ``depth``-fold convolution of a box with itself along each
    axis, outer product of the two axes, centred in a ``size`` x ``size`` map (``size`` odd)
    and scaled to a peak of 1. Exact integers before scaling."""
    if size % 2 == 0 or size < (kernel - 1) * depth + 1:
        raise ValueError(f"size {size} must be odd and hold the TRF {(kernel - 1) * depth + 1}")
    line = np.ones(1, dtype=np.float64)
    for _ in range(depth):
        line = np.convolve(line, np.ones(kernel))
    pad = (size - line.size) // 2
    line = np.pad(line, (pad, pad))
    m = np.outer(line, line)
    return m / m.max()


def gaussian_map(sigma: float, size: int) -> np.ndarray:
    """An isotropic Gaussian of ``sigma`` pixels centred in a ``size`` x ``size`` map, peak 1."""
    r = np.arange(size) - size // 2
    line = np.exp(-0.5 * (r / sigma) ** 2)
    return np.outer(line, line)


def laplace_map(scale: float, size: int) -> np.ndarray:
    """exp(-r / ``scale``) about the centre of a ``size`` x ``size`` map, peak 1: a cusp that
    no Gaussian fits (R² about 0.9), so the fit's R² has a truth inside (0, 1)."""
    r = np.arange(size) - size // 2
    return np.exp(-np.hypot(*np.meshgrid(r, r, indexing="ij")) / scale)


def noisy_samples(
    truth: np.ndarray, n_samples: int, noise: str, rng: np.random.Generator
) -> np.ndarray:
    """``[n_samples, H, W]`` per-sample maps with mean ``truth``: "half_normal" multiplies each
    pixel by sqrt(pi / 2) |Z| (the ``abs`` reduction of a Gaussian gradient, CV 0.76),
    "exponential" by Exp(1) (CV 1), "gaussian" adds N(0, (0.5 peak)^2) (signed noise)."""
    shape = (n_samples, *truth.shape)
    if noise == "half_normal":
        return truth * math.sqrt(math.pi / 2) * np.abs(rng.standard_normal(shape))
    if noise == "exponential":
        return truth * rng.exponential(1.0, shape)
    if noise == "gaussian":
        return truth + 0.5 * truth.max() * rng.standard_normal(shape)
    raise ValueError(f"noise={noise!r} is not allowed: expected one of {', '.join(NOISE_MODELS)}")


def grouped_result(samples: np.ndarray, n_groups: int, meta: Mapping | None = None) -> ERFResult:
    """The ERFResult a probe would hold after ``samples`` (``[N, H, W]`` per-sample maps):
    totals, and bootstrap group ``g`` = the samples ``i % n_groups == g``; position the centre,
    reduction ``abs``."""
    n, h, w = samples.shape
    groups = np.stack([samples[g::n_groups].sum(axis=0) for g in range(n_groups)])
    group_n = np.array([len(range(g, n, n_groups)) for g in range(n_groups)], dtype=np.int64)
    return ERFResult(
        total=samples.sum(axis=0),
        total_sq=(samples**2).sum(axis=0),
        n_samples=n,
        input_shape=(1, h, w),
        target=None,
        target_shape=(1, h, w),
        position=(h // 2, w // 2),
        channel=None,
        reduce="abs",
        meta=dict(meta or {}),
        groups=groups,
        group_n=group_n,
    )


def exact_result(truth: np.ndarray) -> ERFResult:
    """A one-sample result whose map is ``truth``: the "infinitely many inputs" measurement."""
    return grouped_result(truth[None], 1)


@dataclass(frozen=True)
class SyntheticCase:
    """A truth map, how many samples a measurement averages, in how many bootstrap groups,
    and the noise of one sample. ``trf_size``: the exact TRF side (for ERF/TRF)."""

    name: str
    truth: np.ndarray
    n_samples: int
    n_groups: int
    noise: str = "half_normal"
    trf_size: float | None = None


def _cases() -> dict[str, SyntheticCase]:
    cases = [
        SyntheticCase("box_depth4_n64", box_stack_map(4, 3, 21), 64, 16, trf_size=9),
        SyntheticCase("box_depth8_n256", box_stack_map(8, 3, 31), 256, 16, trf_size=17),
        SyntheticCase("box_depth6_n32_k8", box_stack_map(6, 3, 25), 32, 8, trf_size=13),
        SyntheticCase("gaussian_n64_exp", gaussian_map(3.0, 25), 64, 16, noise="exponential"),
        SyntheticCase("laplace_n64", laplace_map(2.0, 25), 64, 16),
        SyntheticCase("laplace_n16_exp", laplace_map(3.0, 25), 16, 16, noise="exponential"),
    ]
    return {case.name: case for case in cases}


# The exact cases of ``experiment=calibration`` and experiments/calibration, by name: box stacks
# (Luo's uniform-weight oracle) at three depths, group counts and sample counts, a Gaussian
# under Exp(1) noise, and two Laplace cusps whose fit R² lies inside (0, 1).
CASES: dict[str, SyntheticCase] = _cases()


def case_trf(case: SyntheticCase) -> TheoreticalRF | None:
    """The case's TRF, or None without ``trf_size``: a centred ``trf_size``-pixel square at
    stride 1 (the box stack's closed form, ``(kernel - 1) * depth + 1`` pixels), so the centre
    unit reads ``unit ± trf_size // 2``."""
    if case.trf_size is None:
        return None
    side = int(case.trf_size)
    return TheoreticalRF(
        size=(side, side),
        stride=(1, 1),
        padding=(side // 2, side // 2),
        input_shape=case.truth.shape,
        out_shape=case.truth.shape,
        source="closed_form",
    )


def truth_metrics(case: SyntheticCase) -> dict[str, float]:
    """Every ``CI_KEYS`` metric of the case's truth map (no sampling noise)."""
    row = erf_metrics(exact_result(case.truth), case_trf(case), bootstrap=0)
    return {key: float(row[key]) for key in CI_KEYS if key in row}


def simulate(
    case: SyntheticCase,
    repetitions: int,
    seed: int = 0,
    *,
    bootstrap: int = 200,
    level: float = 0.95,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """``repetitions`` metric rows of fresh finite-sample measurements of ``case``
    (``np.random.default_rng([seed, rep])`` draws repetition ``rep``'s samples; the bootstrap
    keeps its own seed, as in a job)."""
    trf = case_trf(case)
    rows = []
    for rep in range(repetitions):
        rng = np.random.default_rng([seed, rep])
        samples = noisy_samples(case.truth, case.n_samples, case.noise, rng)
        result = grouped_result(samples, case.n_groups)
        rows.append(erf_metrics(result, trf, bootstrap=bootstrap, ci_level=level))
        if progress is not None:
            progress(rep + 1)
    return rows


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of a proportion ``hits`` / ``n``."""
    tail = (1 - level) / 2
    low = 0.0 if hits == 0 else float(stats.beta.ppf(tail, hits, n - hits + 1))
    high = 1.0 if hits == n else float(stats.beta.ppf(1 - tail, hits + 1, n - hits))
    return low, high


def coverage_rows(
    rows: Sequence[Mapping[str, Any]],
    truth: Mapping[str, float],
    keys: Sequence[str] = CI_KEYS,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Per metric of ``keys`` that ``truth`` holds: ``n`` repetitions with a finite interval,
    ``coverage`` (share of intervals ``[<key>_ci_low, <key>_ci_high]`` holding the truth, ends
    included) with its ``level`` Clopper-Pearson interval, ``miss_below`` / ``miss_above``
    (the interval lies wholly below / above the truth), ``width`` (mean), ``zero_width``
    (share of intervals of width 0), ``bias`` (mean estimate minus truth) and ``bias_sd``
    (bias in standard deviations of the estimate), ``n_missing`` (repetitions without an
    interval) and ``verdict`` (``verdict``)."""
    out = []
    for key in keys:
        if key not in truth or not math.isfinite(truth[key]):
            continue
        t = truth[key]
        est, low, high = (np.array([_num(r.get(k)) for r in rows]) for k in _triple(key))
        ok = np.isfinite(low) & np.isfinite(high)
        n = int(ok.sum())
        below, above = int((high[ok] < t).sum()), int((low[ok] > t).sum())
        hits = n - below - above
        finite = est[np.isfinite(est)]
        sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        bias = float(finite.mean() - t) if finite.size else math.nan
        cp = clopper_pearson(hits, n, level) if n else (math.nan, math.nan)
        out.append(
            {
                "metric": key,
                "truth": t,
                "n": n,
                "n_missing": len(rows) - n,
                "coverage": hits / n if n else math.nan,
                "coverage_low": cp[0],
                "coverage_high": cp[1],
                "miss_below": below / n if n else math.nan,
                "miss_above": above / n if n else math.nan,
                "width": float((high[ok] - low[ok]).mean()) if n else math.nan,
                "zero_width": float((high[ok] == low[ok]).mean()) if n else math.nan,
                "bias": bias,
                "bias_sd": bias / sd if sd and math.isfinite(sd) and sd > 0 else math.nan,
            }
        )
        out[-1]["verdict"] = verdict(out[-1], level)
    return out


COVERAGE_TOLERANCE = 0.03  # accepted shortfall below the nominal level (0.95 -> 0.92)
VERDICT_CONFIDENCE = 0.99  # of the Clopper-Pearson bound a verdict reads


def verdict(row: Mapping[str, Any], level: float = 0.95) -> str:
    """The verdict on a coverage row (``coverage_rows``): "ok" when it is consistent with
    covering at least ``level`` - ``COVERAGE_TOLERANCE`` (the upper end of the
    ``VERDICT_CONFIDENCE`` Clopper-Pearson bound of its coverage reaches it: a simulation of R
    repetitions cannot tell a shortfall of about 2.3 sqrt(0.05 · 0.95 / R) from chance),
    "undercovers" otherwise, "no interval" when no repetition had one."""
    n = int(row["n"])
    if n == 0:
        return "no interval"
    hits = round(float(row["coverage"]) * n)
    high = clopper_pearson(hits, n, 2 * VERDICT_CONFIDENCE - 1)[1]
    return "ok" if high >= level - COVERAGE_TOLERANCE else "undercovers"


def _triple(key: str) -> tuple[str, str, str]:
    return key, f"{key}_ci_low", f"{key}_ci_high"


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
