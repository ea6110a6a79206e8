"""Speed of the ERF probe against the public tools' method and against the hardware floor.

Torch code only, no files (``erf.run`` writes ``benchmark.csv``). Every method gets the same
inputs (one tensor of ``n_samples`` seeded random images, made before any timing), the same
model, target unit and reduction; each is warmed up, then timed ``repeats`` times (CUDA
synchronised around every timer), interleaved so that a load spike on a shared machine hits
them alike, and reported by its best time (and the median):

- ``probe``: ``erf.measure_erf`` as the app calls it (float32, ``batch_size`` per pass).
- ``per_image``: the method of the public tools, written here: batch size 1, one
  ``torch.autograd.grad`` per image, a forward hook on the target layer that captures its
  output but lets the FULL forward run, a unit gradient at the centre of the target map. This
  mirrors OpenERF 0.6.1 (hooks on timm models) and RepLKNet's ``erf/visualize_erf.py`` (batch
  1, ``autograd.grad`` of the centre, a model whose forward runs to its end); like them it
  leaves ``requires_grad`` on the weights (autograd prunes their gradients anyway).
- ``floor``: the algorithm and nothing else: batched forward to the target and one
  input-gradient backward with frozen weights in eval mode, one float64 sum of the reduced
  gradient; no checks, no per-sample statistics, no progress bar. The probe can at best
  match it.
- ``fast``: the probe with ``fast=True`` (bf16 autocast, channels_last).
- ``compile``: the probe with ``compile=True`` (optional: compiling takes a while).
- ``channels_last``: the probe with ``channels_last=True`` (float32; the fastest setting on
  CPUs without native bf16).
- ``crop``: the probe with ``crop="auto"`` (only a change when the target's TRF is smaller
  than the input).
- ``multi`` vs ``separate``: the ERFs of several targets (``multi_targets``) from one forward
  per batch (``erf.measure_erfs``) against one ``measure_erf`` call per target.

Map agreement is against the probe's map: the Pearson correlation of the two maps and the
relative difference of their Luo sizes (``erf.analysis.metrics.luo_size``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from erf.analysis.metrics import luo_size
from erf.device import resolve_device
from erf.probe.forward import forward_to, probing
from erf.probe.inputs import random_sample
from erf.probe.measure import probe_units, reduce_gradient
from erf.probe.options import SPEED_KEYS, ProbeOptions

METHODS = ("probe", "per_image", "floor", "fast", "compile", "channels_last", "crop", "multi")
REFERENCES = ("per_image", "floor", "probe")  # the vs_<method> columns of every row
DESCRIPTIONS = {
    "probe": "erf.measure_erf, float32",
    "per_image": "public tools' method (OpenERF 0.6.1, RepLKNet visualize_erf.py): batch 1, "
    "full forward with a capturing hook, one autograd.grad per image",
    "floor": "bare batched forward-to-target + input-gradient backward, frozen weights, "
    "one float64 sum",
    "fast": "measure_erf(fast=True): bf16 autocast + channels_last, float64 sums",
    "compile": "measure_erf(compile=True): torch.compile of the truncated forward",
    "channels_last": "measure_erf(channels_last=True): float32, channels_last model and inputs",
    "crop": "measure_erf(crop='auto'): only the target unit's input window",
    "multi": "erf.measure_erfs: all multi_targets from one forward per batch",
    "separate": "one measure_erf call per multi_target",
}


# Settings the benchmark cannot honour: it makes its own float32 N(0,1) inputs, seeds every
# channel, keeps no checkpoints, and times the speed settings as methods of their own.
BENCH_REFUSES = ("batch_size", "channel", "seeding", "normalise", "inputs", "dtype",
                 "on_nonfinite", "checkpoint_every", *SPEED_KEYS)  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _center_seed(y: torch.Tensor) -> torch.Tensor:
    seed = torch.zeros_like(y)
    seed[:, :, y.shape[2] // 2, y.shape[3] // 2] = 1
    return seed


def _reduce_sum(grad: torch.Tensor, reduce: str) -> torch.Tensor:
    """The reduction summed over channels and batch: one [H, W] float64 map."""
    return reduce_gradient(grad, reduce).sum(0, dtype=torch.float64)


def per_image_erf(
    model: nn.Module,
    xs: torch.Tensor,
    target: str | None,
    reduce: str = "abs",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Mean map over ``xs`` [N, C, H, W] the way the public tools compute it: batch 1, the
    full forward (a hook only captures the target's output), ``torch.autograd.grad`` of the
    centre unit (every channel) per image, weights left with ``requires_grad``."""
    dev = torch.device(device)
    was_training = model.training
    model.to(dev).eval()
    captured: list[torch.Tensor] = []
    module = model if target is None else dict(model.named_modules())[target]
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    total = torch.zeros(xs.shape[2:], dtype=torch.float64, device=dev)
    try:
        for i in range(xs.shape[0]):
            captured.clear()
            x = xs[i : i + 1].to(dev).requires_grad_(True)
            model(x)
            y = captured[0]
            (grad,) = torch.autograd.grad(y, x, grad_outputs=_center_seed(y))
            total += _reduce_sum(grad, reduce)
    finally:
        handle.remove()
        model.train(was_training)
    return (total / xs.shape[0]).cpu().numpy()


def floor_erf(
    model: nn.Module,
    xs: torch.Tensor,
    target: str | None,
    batch_size: int,
    reduce: str = "abs",
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The bare algorithm: batched forward to the target and one input-gradient backward per
    batch, frozen weights, eval mode, one float64 sum; nothing else."""
    dev = torch.device(device)
    total = torch.zeros(xs.shape[2:], dtype=torch.float64, device=dev)
    with probing(model, dev, torch.float32):
        for i in range(0, xs.shape[0], batch_size):
            x = xs[i : i + batch_size].to(dev).requires_grad_(True)
            y = forward_to(model, x, target)
            (grad,) = torch.autograd.grad(y, x, grad_outputs=_center_seed(y))
            total += _reduce_sum(grad, reduce)
    return (total / xs.shape[0]).cpu().numpy()


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Pearson correlation of two maps and the relative difference of their Luo sizes."""
    a, b = reference.ravel(), other.ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    size_a, size_b = luo_size(reference), luo_size(other)
    return {"map_corr": corr, "luo_size": size_b, "luo_rel_diff": (size_b - size_a) / size_a}


@contextmanager
def _quiet_logs():
    import logging

    logger = logging.getLogger("erf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_inputs(input_shape: Sequence[int], n_samples: int, seed: int = 0) -> torch.Tensor:
    """The benchmark's inputs: ``erf.probe.inputs.random_sample`` images 0..n-1, float32, CPU."""
    shape = tuple(int(v) for v in input_shape)
    return torch.stack([random_sample("gaussian", shape, seed, i) for i in range(n_samples)]).to(
        torch.float32
    )


def run_benchmark(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    target: str | None,
    options: ProbeOptions | None = None,
    warmup: int = 1,
    repeats: int = 3,
    methods: Sequence[str] = ("probe", "per_image", "floor", "fast", "multi"),
    multi_targets: Sequence[str | None] = (),
    **settings: Any,
) -> dict[str, Any]:
    """Time every method in ``methods`` on the same inputs; returns ``{"rows": [...],
    "ratios": {...}, "maps": {method: map}}``.

    A row: method, description, images (per timed run), targets (maps per image), best_s,
    median_s, images_per_s (from the best run; for multi/separate, images x targets per
    second), vs_per_image / vs_floor / vs_probe (speed ratios; not for multi/separate), and
    the map agreement with the probe (map_corr, luo_size, luo_rel_diff; for multi, of its
    first target with separate's). ``warmup`` untimed runs of each method on
    ``min(n_samples, batch_size)`` images come first (they also compile, for ``compile``).

    ``options`` (or ``settings``, by name; device defaults to "cpu") gives ``n_samples``,
    ``batch_size``, ``device``, ``reduce`` and ``seed``; the inputs are the benchmark's own
    (``make_inputs``), and the speed settings are methods here, so any other setting is
    refused (``BENCH_REFUSES``) rather than ignored.
    """
    options = ProbeOptions.of(options or ProbeOptions(device="cpu"), **settings)
    options.refuse(BENCH_REFUSES, "the benchmark")
    n_samples, batch_size, reduce = options.n_samples, int(options.batch_size), options.reduce
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown benchmark method(s) {unknown}; allowed: {list(METHODS)}")
    if "multi" in methods and len(multi_targets) < 2:
        raise ValueError("the multi method needs at least two multi_targets")
    dev = resolve_device(options.device)
    xs = make_inputs(input_shape, n_samples, options.seed).to(dev)
    shape = tuple(int(v) for v in input_shape)

    def on(x: torch.Tensor, **speed: Any) -> ProbeOptions:
        """The probe's options for the images ``x``, in batches of ``batch_size``."""
        parts = [x[i : i + batch_size] for i in range(0, x.shape[0], batch_size)]
        return ProbeOptions.of(
            options, n_samples=len(x), inputs=parts, device=dev, progress=False, **speed
        )

    def probe(**speed: Any) -> Callable[[torch.Tensor], np.ndarray]:
        return lambda x: probe_units(model, shape, [target], on(x, **speed))[0].map

    def multi(x: torch.Tensor) -> np.ndarray:
        return probe_units(model, shape, list(multi_targets), on(x))[0].map

    def separate(x: torch.Tensor) -> np.ndarray:
        maps = [probe_units(model, shape, [t], on(x))[0].map for t in multi_targets]
        return maps[0]

    runners: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
        "probe": probe(),
        "per_image": lambda x: per_image_erf(model, x, target, reduce, dev),
        "floor": lambda x: floor_erf(model, x, target, batch_size, reduce, dev),
        "fast": probe(fast=True),
        "compile": probe(compile=True),
        "channels_last": probe(channels_last=True),
        "crop": probe(crop="auto"),
        "multi": multi,
        "separate": separate,
    }
    chosen = [m for m in METHODS if m in methods]
    if "multi" in chosen:
        chosen.append("separate")
    if "probe" not in chosen:
        chosen.insert(0, "probe")
    warm = xs[: min(n_samples, batch_size)]
    times: dict[str, list[float]] = {m: [] for m in chosen}
    maps: dict[str, np.ndarray] = {}
    with _quiet_logs():
        for m in chosen:
            for _ in range(warmup):
                runners[m](warm)
        for _ in range(repeats):
            for m in chosen:
                _sync(dev)
                t0 = time.perf_counter()
                maps[m] = runners[m](xs)
                _sync(dev)
                times[m].append(time.perf_counter() - t0)
    rows = []
    k = len(multi_targets)
    fastest = {m: n_samples / min(times[m]) for m in chosen}
    for m in chosen:
        best, median = min(times[m]), statistics.median(times[m])
        targets = k if m in ("multi", "separate") else 1
        ref = maps["separate"] if m == "multi" else maps["probe"]
        row = {
            "method": m,
            "description": DESCRIPTIONS[m],
            "images": n_samples,
            "targets": targets,
            "batch_size": 1 if m == "per_image" else batch_size,
            "best_s": best,
            "median_s": median,
            "images_per_s": n_samples * targets / best,
        }
        if m not in ("multi", "separate"):  # vs_per_image etc.: speed over that method's
            row.update({f"vs_{b}": fastest[m] / fastest[b] for b in REFERENCES if b in fastest})
        if m != "separate":
            row.update(agreement(ref, maps[m]))
        rows.append(row)
    speed = {r["method"]: r["images_per_s"] for r in rows}
    ratios = {}
    for a, b in [
        ("probe", "per_image"),
        ("probe", "floor"),
        ("fast", "per_image"),
        ("fast", "probe"),
        ("fast", "floor"),
        ("compile", "per_image"),
        ("compile", "probe"),
        ("channels_last", "probe"),
        ("crop", "probe"),
        ("multi", "separate"),
    ]:
        if a in speed and b in speed:
            ratios[f"{a}/{b}"] = speed[a] / speed[b]
    return {"rows": rows, "ratios": ratios, "maps": maps}


__all__ = ["METHODS", "agreement", "floor_erf", "make_inputs", "per_image_erf", "run_benchmark"]
