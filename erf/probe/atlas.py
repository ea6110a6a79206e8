"""The atlas: the ERF of many output units of one 2-D map in one job, with shared backward
passes where that is exact.

The probe's gradient of one unit is zero outside the unit's exact theoretical receptive field
(its dependence set in the input, ``erf.rf.graph_result.GraphRF.input_mask``: dilation gaps,
mirrored and wrapped padding included). When the dependence sets of several units are
pairwise disjoint, one backward pass seeded at all of them at once gives, at every input pixel,
the gradient of the one unit that pixel belongs to, plus exact zeros from the others: every
intermediate gradient that reaches the pixel carries that unit's contribution only, so each
term of every sum is the one the unit's own pass computes, and the sums agree bit for bit.
A reduction that acts per pixel (every registered one: it combines the input channels of
each pixel) then gives each unit's map as the shared map inside the unit's set and 0 outside
it. ``plan_atlas`` packs the units greedily into such passes; ``measure_atlas`` runs them.

Sharing is off, and every unit gets its own pass, when the graph analysis cannot give exact
sets (an untraceable model, a token map), when the target is global, when a global path
modulates the local box (squeeze-excitation gates, GroupNorm statistics: the gradient reaches
past the box), for ``per_channel_normalised`` seeding (each channel's map is scaled by its own
sum) and with ``share="off"``. The passes of one batch run one after another on the retained
graph (``backward="loop"``), or together as one batched backward (``backward="vmap"``:
``torch.autograd.grad(..., is_grads_batched=True)``, spreading the passes over a batch
dimension; equal to the loop up to float rounding).

One caveat: a sample whose gradient holds NaN/Inf is judged per unit inside the unit's set,
so a NaN that a unit's own pass would put outside its set (0 · inf through an op with an
infinite local derivative) is not seen by a shared pass. Conventions: (row, col), units of
the target map; pixels of the input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from erf.device import resolve_device
from erf.probe.accumulate import Accumulator
from erf.probe.batches import BatchStream, with_twin
from erf.probe.forward import forward_fn, probing
from erf.probe.layout import graph_spatial_dims, select_output
from erf.probe.measure import FAST_AUTOCAST, input_maps, reduce_gradient
from erf.probe.options import BATCHED_SEEDINGS, ProbeOptions
from erf.probe.units import atlas_units
from erf.result import ERFResult
from erf.rf.graph import graph_rf

log = logging.getLogger("erf")

SHARE_MODES = ("auto", "off")
BACKWARDS = ("loop", "vmap")
MAX_ATLAS_UNITS = 4096
MAX_SUM_BYTES = 4 * 2**30  # every unit keeps float64 sums and bootstrap groups of the input's size
VMAP_ELEMENTS = 2**25  # input-gradient elements per batched backward (a chunk of passes)


@dataclass(frozen=True)
class AtlasPlan:
    """Which units share a backward pass.

    ``units``: (row, col) of each probed unit of the ``map_shape`` (h, w) target map;
    ``passes``: indices into ``units``, one tuple per backward pass (a unit in exactly one);
    ``supports``: ``[K, H, W]`` bool, each unit's exact input dependence set (None when the
    graph analysis gave none); ``trf_boxes``: each unit's unclipped TRF box ``((r0, r1),
    (c0, c1))`` in input pixels (None without a graph); ``shared``: whether any pass holds
    more than one unit; ``reason``: why sharing is on or off."""

    target: str | None
    map_shape: tuple[int, int]
    units: tuple[tuple[int, int], ...]
    passes: tuple[tuple[int, ...], ...]
    supports: np.ndarray | None = field(repr=False)
    trf_boxes: tuple[Any, ...] | None
    shared: bool
    reason: str

    def describe(self) -> dict[str, Any]:
        """The plan as plain data (a result's ``meta["atlas"]``, the job's record)."""
        sizes = [len(p) for p in self.passes]
        return {
            "n_units": len(self.units),
            "n_passes": len(self.passes),
            "largest_pass": max(sizes),
            "shared": self.shared,
            "share_reason": self.reason,
        }


def share_passes(supports: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Greedy first fit: each unit (in order) joins the first pass whose units' sets it does
    not overlap, else opens a new one. ``supports``: ``[K, H, W]`` bool."""
    passes: list[list[int]] = []
    unions: list[np.ndarray] = []
    for k, mask in enumerate(np.asarray(supports, dtype=bool)):
        for members, union in zip(passes, unions):
            if not (union & mask).any():
                members.append(k)
                union |= mask
                break
        else:
            passes.append([k])
            unions.append(mask.copy())
    return tuple(tuple(p) for p in passes)


def exact_supports(
    model: nn.Module, input_shape: Sequence[int], target: str | None, units: Sequence
) -> tuple[np.ndarray | None, tuple | None, str]:
    """Each unit's exact input dependence set ``[K, H, W]`` and unclipped TRF box from the
    graph analysis, and why they can (not) be used to share passes: (None, None, reason)
    when the graph gives none."""
    try:
        graph = graph_rf(model, tuple(input_shape))
        trf = graph.for_target(target)
        boxes = tuple(graph.unit_interval(target, u) for u in units)
    except (ValueError, TypeError, RuntimeError) as exc:
        return None, None, f"no exact TRF ({' '.join(str(exc).split())[:200]})"
    if trf.is_global:
        return None, boxes, "the target's TRF is global: every unit reads the whole input"
    if graph.spatial_dims(target) != (2, 3):
        return None, boxes, "the target is not a [B, C, H, W] map"
    if trf.global_context:
        return None, boxes, (
            "a global path (gate or norm statistic) modulates the local TRF, so the gradient "
            "reaches past the exact box"
        )  # fmt: skip
    supports = np.stack([graph.input_mask(target, u) for u in units])
    return supports, boxes, "exact TRF dependence sets"


def plan_atlas(
    model: nn.Module,
    input_shape: Sequence[int],
    target: str | None,
    units: Sequence[tuple[int, int]],
    map_shape: tuple[int, int],
    *,
    share: str = "auto",
    seeding: str = "all_channels",
) -> AtlasPlan:
    """The passes of an atlas of ``units`` (see the module docstring for when they share)."""
    if share not in SHARE_MODES:
        raise ValueError(f"share={share!r} is not allowed: expected one of {SHARE_MODES}")
    units = tuple((int(r), int(c)) for r, c in units)
    supports, boxes, reason = exact_supports(model, input_shape, target, units)
    alone = tuple((k,) for k in range(len(units)))
    if share == "off":
        supports, reason = None, "share=off"
    elif seeding in BATCHED_SEEDINGS:
        supports, reason = None, f"seeding={seeding} scales each channel's map by its own sum"
    passes = alone if supports is None else share_passes(supports)
    shared = len(passes) < len(units)
    if supports is not None and not shared:
        reason += ": every pair of units overlaps"
    return AtlasPlan(target, map_shape, units, passes, supports, boxes, shared, reason)


@dataclass
class AtlasResult:
    """One ``ERFResult`` per unit of ``plan.units`` (same order) and the plan they ran by."""

    plan: AtlasPlan
    results: list[ERFResult]


def measure_atlas(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: str | None = None,
    units: Any = "border",
    options: ProbeOptions | None = None,
    *,
    share: str = "auto",
    backward: str = "loop",
    **settings: Any,
) -> AtlasResult:
    """The ERF of every unit ``units`` names on the target map, from one forward pass per
    batch and one backward pass per group of units with disjoint exact TRFs.

    Args:
        model: any module, as for ``measure_erf``.
        input_shape: ``(C, H, W)`` of one input.
        target: module name, or None for the model output; it must be a 2-D map.
        units: a unit set of ``erf.probe.units.UNIT_SETS`` ("border", "row", "all",
            "grid:N") or a list of (row, col).
        options: the probe's options (``ProbeOptions``); ``crop`` and
            ``batch_size="auto"`` are refused.
        share: "auto" (share passes where exact) or "off" (one pass per unit).
        backward: "loop" (one backward per pass on the retained graph; every unit's sums are
            bitwise those of its own ``measure_erf``) or "vmap" (the passes of a chunk in one
            batched backward; equal up to float rounding).
        **settings: ``ProbeOptions`` fields by name, replacing those of ``options``.

    Returns:
        An ``AtlasResult``: per unit the ``ERFResult`` that ``measure_erf(..., position=unit)``
        gives, with ``meta["atlas"]`` (its pass, the plan's sizes and why it shares).
    """
    options = ProbeOptions.of(options, **settings)
    options.refuse(("crop",), "the atlas (it probes units all over the input)")
    options.refuse(("batch_size",), "the atlas (give a number)")
    if backward not in BACKWARDS:
        raise ValueError(f"backward={backward!r} is not allowed: expected one of {BACKWARDS}")
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3:  # sequences and volumes: measure_erfs with their positions
        raise ValueError(f"the atlas maps units of images (C, H, W), not {input_shape}")
    dev = resolve_device(options.device)
    start = time.perf_counter()
    with probing(model, dev, options.dtype, channels_last=options.channels_last):
        grid = _target_grid(model, input_shape, target, options, dev)
        positions = atlas_units(units, grid.height, grid.width)
        _check_size(len(positions), input_shape, options.bootstrap_groups)
        plan = plan_atlas(
            model, input_shape, target, positions, (grid.height, grid.width),
            share=share, seeding=options.seeding,
        )  # fmt: skip
        log.info(
            "atlas: %d units in %d backward passes per batch (%s)",
            len(positions), len(plan.passes), plan.reason,
        )  # fmt: skip
        accs = _accumulators(plan, input_shape, options, dev, grid)
        used = _run(model, input_shape, plan, accs, options, dev, backward)
    meta = {
        "device": str(dev),
        "batch_size": used,
        "batch_size_setting": int(options.batch_size),
        "fast": bool(options.fast),
        "channels_last": options.channels_last,
        "compile": bool(options.compile),
        "n_units": len(positions),
        "wall_time_s": time.perf_counter() - start,
    }
    pass_of = {k: i for i, p in enumerate(plan.passes) for k in p}
    results = []
    for k, acc in enumerate(accs):
        atlas = {**plan.describe(), "pass": pass_of[k], "backward": backward}
        if plan.trf_boxes is not None:
            atlas["trf_interval"] = [list(b) for b in plan.trf_boxes[k]]
        if plan.supports is not None:
            atlas["trf_pixels"] = int(plan.supports[k].sum())
        results.append(acc.result({**meta, "atlas": atlas}))
    return AtlasResult(plan, results)


def _check_size(n_units: int, input_shape: Sequence[int], groups: int) -> None:
    """A one-line ValueError for more than ``MAX_ATLAS_UNITS`` units, or for float64 sums
    (total, squares and the bootstrap groups of every unit, on the probe's device) of more
    than ``MAX_SUM_BYTES``."""
    need = n_units * (groups + 2) * int(input_shape[1]) * int(input_shape[2]) * 8
    if n_units > MAX_ATLAS_UNITS or need > MAX_SUM_BYTES:
        raise ValueError(
            f"{n_units} units keep {need / 2**30:.1f} GiB of float64 sums (at most "
            f"{MAX_ATLAS_UNITS} units and {MAX_SUM_BYTES / 2**30:.0f} GiB): pick fewer units "
            "(grid:N, a list) or fewer bootstrap groups"
        )


def _target_grid(model, input_shape, target, options, dev):
    """The target's grid from one forward of zeros (no gradient); a 2-D map is required."""
    forward = forward_fn(model, [target], False)
    where = "the model output" if target is None else f"module {target!r}"
    with torch.no_grad():
        x = torch.zeros((2, *input_shape), device=dev, dtype=options.dtype)
        y = select_output(forward(x)[target], options.output, where)
    modules = dict(model.named_modules())
    grid = options.read_grid(
        y, x.shape[2:], where=where, module=model if target is None else modules.get(target),
        model=model, graph_dims=lambda: graph_spatial_dims(model, input_shape, target),
    )  # fmt: skip
    if grid.layout not in ("NCHW", "NHWC"):
        raise ValueError(f"the atlas needs a 2-D feature map; {where} is {grid.layout}")
    return grid


def _accumulators(plan, input_shape, options, dev, grid) -> list[Accumulator]:
    common = {"input_shape": list(input_shape), **options.fingerprint()}
    accs = []
    for unit in plan.units:
        acc = Accumulator({**common, "target": plan.target, "position": list(unit)}, dev, None)
        acc.set_grid(grid)
        accs.append(acc)
    return accs


def _run(model, input_shape, plan, accs, options, dev, backward) -> int:
    """Every batch: one forward, the plan's backward passes, each unit's maps into its sums.
    Returns the largest batch used."""
    forward = forward_fn(model, [plan.target], options.compile)
    autocast = torch.autocast(dev.type, dtype=FAST_AUTOCAST) if options.fast else nullcontext()
    masks = None
    if plan.shared:
        masks = torch.as_tensor(plan.supports, device=dev)
    where = "the model output" if plan.target is None else f"module {plan.target!r}"
    stream = BatchStream(
        options.inputs, input_shape, options.n_samples, options.batch_size, options.seed, 0,
        False,
    )  # fmt: skip
    while (x := stream.next()) is not None:
        x, n = with_twin(x.to(device=dev, dtype=options.dtype))
        if options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        with autocast:
            y = select_output(forward(x)[plan.target], options.output, where)
        if accs[0].batched:  # one unit per pass, each channel seeded on its own
            last = len(accs) - 1
            found = (
                (k, input_maps(acc, y, x, options.reduce, k < last)) for k, acc in enumerate(accs)
            )
        else:
            seeds = _Seeds(y, [[accs[k] for k in p] for p in plan.passes])
            found = _pass_maps(y, x, seeds, options.reduce, backward)
        for i, maps in found:
            for k in plan.passes[i]:
                unit_maps = maps[:n] if len(plan.passes[i]) == 1 else _inside(maps[:n], masks[k])
                finite = torch.isfinite(unit_maps).flatten(1).all(1)
                bad = int((~finite).sum())
                if bad and options.on_nonfinite == "raise":
                    raise FloatingPointError(f"{bad} sample(s) gave NaN/Inf gradients")
                accs[k].add(unit_maps, finite)
        stream.done(n)
    return stream.used


def _inside(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``maps`` inside ``mask`` and exact zeros outside it (a NaN elsewhere stays out)."""
    return torch.where(mask, maps, torch.zeros((), dtype=maps.dtype, device=maps.device))


class _Seeds:
    """The upstream gradient of each pass, made when asked for (one tensor of ``y``'s size
    each, so only a pass or a chunk of them is held at a time): the sum of its units' seeds,
    which sit at disjoint positions."""

    def __init__(self, y: torch.Tensor, passes: Sequence[Sequence[Accumulator]]) -> None:
        self.y, self.passes = y, passes

    def __len__(self) -> int:
        return len(self.passes)

    def __getitem__(self, i: int) -> torch.Tensor:
        accs = self.passes[i]
        seed = accs[0].seed(self.y)
        for acc in accs[1:]:
            seed = seed + acc.seed(self.y)
        return seed


def _pass_maps(y, x, seeds, reduce, backward):
    """(pass index, per-sample maps ``[B, H, W]`` float64) of every pass, in order."""
    if backward == "loop":
        last = len(seeds) - 1
        for i in range(len(seeds)):
            (grad,) = torch.autograd.grad(y, x, grad_outputs=seeds[i], retain_graph=i < last)
            yield i, reduce_gradient(grad, reduce).to(torch.float64)
        return
    per_chunk = max(1, VMAP_ELEMENTS // max(x.numel(), y.numel()))
    for first in range(0, len(seeds), per_chunk):
        chunk = [seeds[i] for i in range(first, min(first + per_chunk, len(seeds)))]
        grads = _batched_grads(y, x, torch.stack(chunk))
        maps = reduce_gradient(grads.flatten(0, 1), reduce).to(torch.float64)
        maps = maps.view(len(chunk), x.shape[0], *maps.shape[1:])
        for j in range(len(chunk)):
            yield first + j, maps[j]


def _batched_grads(y, x, seeds):
    """dx ``[k, *x.shape]`` of k seeds in one vmapped backward, or one backward per seed where
    an op has no batching rule (logged)."""
    try:
        (grads,) = torch.autograd.grad(
            y, x, grad_outputs=seeds, retain_graph=True, is_grads_batched=True
        )
    except RuntimeError as why:
        log.warning("atlas backward=vmap: one backward per pass (%s)", str(why)[:200])
        grads = torch.stack(
            [torch.autograd.grad(y, x, grad_outputs=s, retain_graph=True)[0] for s in seeds]
        )
    return grads


__all__ = [
    "BACKWARDS",
    "MAX_ATLAS_UNITS",
    "MAX_SUM_BYTES",
    "SHARE_MODES",
    "AtlasPlan",
    "AtlasResult",
    "exact_supports",
    "measure_atlas",
    "plan_atlas",
    "share_passes",
]
