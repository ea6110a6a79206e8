"""Numbers of a many-draws measurement (one ERFResult per random weight draw). Pure numpy.

The per-draw sizes are what confidence intervals over weight draws are built from (e.g. of
the log-log slope of ERF size against depth), so every list here is in draw order, one
value per draw, and a draw without a size (degenerate map) is NaN, never dropped from the
lists; a dead draw (its map is exactly zero everywhere: every input gave an all-zero map)
is counted (``n_dead_draws``) and left out of the per-draw statistics (``*_spread``).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from erf.analysis.metrics import luo_size
from erf.analysis.summary import erf_metrics
from erf.result import ERFResult
from erf.rf import TheoreticalRF

DRAW_WEIGHTS = ("gain", "equal")  # how pool_draws weighs each draw (probe.draw_weight)


def is_dead_draw(result: ERFResult) -> bool:
    """True when a draw's map is exactly zero everywhere (every input gave an all-zero map)."""
    return result.n_samples > 0 and not np.any(result.total)


def pool_draws(results: Sequence[ERFResult], weight: str = "gain") -> ERFResult:
    """The sum of all draws' measurements: its map is the mean over every (draw, sample)
    pair, which is the mean of the per-draw maps when all draws used the same number of
    samples. ``weight`` "gain" (default) pools the sums as measured, so a draw counts by its
    gradient gain (the scale of its map, which varies across random draws: a coefficient of
    variation of 0.27 for a linear and 0.77 for a ReLU Luo stack of depth 20,
    ``experiments/luo2016/activation_settings/gap_vs_runs.json``); "equal" first scales each
    draw's sums so that its mean map sums to 1 (a dead draw stays zero), so every draw shapes
    the pooled map equally. ``meta["draw_weight"]`` records which.

    ``meta`` is draw 0's, with ``seed`` the first seed, ``seeds``, ``draws``,
    ``n_dead_draws`` and ``bootstrap_over="draws"``: the pooled result's bootstrap groups are
    its draws (``groups`` = each draw's ``total``, ``group_n`` = its sample count), so
    ``erf.analysis.summary.erf_metrics`` gives intervals over weight draws. A dead draw is
    pooled as the zero map it is: that scales the mean map by (draws - dead) / draws but
    leaves the map normalised to unit sum, and every scale-free size, unchanged."""
    if not results:
        raise ValueError("no draws to pool")
    if weight not in DRAW_WEIGHTS:
        allowed = ", ".join(DRAW_WEIGHTS)
        raise ValueError(f"probe.draw_weight={weight!r} is not allowed: expected one of {allowed}")
    if weight == "equal":
        results = [_unit_sum(r) for r in results]
    pooled = functools.reduce(lambda a, b: a.merged(b), results)
    seeds = [r.meta.get("seed") for r in results]
    pooled.meta = {k: v for k, v in results[0].meta.items() if k not in ("fingerprint", "draw")}
    pooled.meta.update(
        seed=seeds[0],
        seeds=seeds,
        draws=len(results),
        n_dead_draws=sum(is_dead_draw(r) for r in results),
        bootstrap_over="draws",
        draw_weight=weight,
    )
    pooled.groups = np.stack([r.total for r in results])
    pooled.group_n = np.array([r.n_samples for r in results], dtype=np.int64)
    return pooled


def _unit_sum(result: ERFResult) -> ERFResult:
    """``result`` with its sums scaled so that its mean map sums to 1 (unchanged when the mean
    map's sum is zero or not finite)."""
    mass = float(result.mean.sum()) if result.n_samples else 0.0
    if not np.isfinite(mass) or mass == 0:
        return result
    scaled = copy.copy(result)
    scaled.total, scaled.total_sq = result.total / mass, result.total_sq / mass**2
    if result.groups is not None:
        scaled.groups = result.groups / mass
    return scaled


def _spread(values: Sequence[float]) -> dict[str, float]:
    finite = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = len(finite)
    mean = float(finite.mean()) if n else math.nan
    std = float(finite.std(ddof=1)) if n > 1 else math.nan
    return {"mean": mean, "std": std, "sem": std / math.sqrt(n) if n > 1 else math.nan, "n": n}


def draw_metrics(
    results: Sequence[ERFResult], trf: TheoreticalRF | None = None, r2_min: float = 0.9
) -> dict[str, Any]:
    """Per-draw metrics, each a list in draw order (pixels):

    - ``seeds``: the model/input seed of each draw; ``n_samples`` / ``n_nonfinite`` per draw.
    - ``erf_size``: ``erf.analysis.summary.erf_metrics``'s size (Luo's threshold relative to the
      input pixel under the probed unit's TRF centre), the job's own ``erf_size`` definition.
    - ``luo_size``: ``erf.analysis.metrics.luo_size`` at the map centre (H // 2, W // 2); equal to
      ``erf_size`` when the probed unit sits over the map centre.
    - ``erf_trf_ratio``: erf_size / trf_size (only with ``trf``).
    - ``sigma``: ``{"x": [...], "y": [...]}``, the Gaussian fit's sigma_x / sigma_y.
    - ``fit_r2``, ``degenerate`` (None or the reason a draw has no size).
    - ``n_dead``: inputs with an all-zero map, per draw; ``dead``: whether the draw's whole
      map is zero (``is_dead_draw``); ``n_dead_draws``: how many are.
    - ``erf_size_spread``: mean, sample std (ddof 1), standard error and count ``n`` of the
      finite per-draw ``erf_size`` values of the draws that are not dead.
    """
    rows = [erf_metrics(r, trf, r2_min=r2_min, bootstrap=0) for r in results]
    dead = [is_dead_draw(r) for r in results]
    out: dict[str, Any] = {
        "seeds": [r.meta.get("seed") for r in results],
        "n_samples": [r.n_samples for r in results],
        "n_nonfinite": [r.n_nonfinite for r in results],
        "n_dead": [r.n_dead for r in results],
        "dead": dead,
        "n_dead_draws": sum(dead),
        "erf_size": [row["erf_size"] for row in rows],
        "luo_size": [luo_size(r.map) for r in results],
    }
    if trf is not None:
        out["erf_trf_ratio"] = [row["erf_trf_ratio"] for row in rows]
    out["sigma"] = {"x": [row["sigma_x"] for row in rows], "y": [row["sigma_y"] for row in rows]}
    out["fit_r2"] = [row["fit_r2"] for row in rows]
    out["degenerate"] = [row["degenerate"] for row in rows]
    out["erf_size_spread"] = _spread([v for v, d in zip(out["erf_size"], dead) if not d])
    return out
