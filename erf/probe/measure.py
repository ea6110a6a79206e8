"""The gradient probe: ERF maps by back-propagating a unit gradient from one output unit.

Knows nothing of Hydra or files. One backward pass per batch gives every sample's own input
gradient: the summed target over the batch is back-propagated, which is exact because samples
do not interact in eval mode. ``measure_erfs`` probes several units (modules and/or positions)
from one forward pass per batch; ``measure_erf`` is its one-unit case.

Speed knobs (all off by default; docs/scaling.md, "Speed"): ``fast`` (bf16 autocast +
channels_last; sums stay float64), ``channels_last`` (alone: float32), ``compile``
(``torch.compile`` of the forward truncated at the targets), ``batch_size="auto"`` (largest
batch that fits, halved on out-of-memory) and ``crop`` (feed only the window of the input the
target units can see, ``erf.probe.crop``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from erf import reductions
from erf.device import resolve_device
from erf.probe.accumulate import Accumulator
from erf.probe.batches import (
    BatchStream,
    after_out_of_memory,
    estimate_batch_size,
    is_out_of_memory,
    memory_refusal,
    with_twin,
)
from erf.probe.crop import CropRefused, plan_crop
from erf.probe.forward import forward_fn, forward_to, forward_to_many, probing
from erf.probe.layout import NormWatch, graph_spatial_dims, seed_warning, select_output
from erf.probe.options import ProbeOptions
from erf.probe.units import Unit, as_unit
from erf.result import ERFResult

log = logging.getLogger("erf")


class ProbeInterrupted(Exception):
    """The probe stopped early on request; ``partial`` holds what was accumulated (the first
    unit's partial result; ``partials`` has one per unit of ``measure_erfs``)."""

    def __init__(self, partials: ERFResult | Sequence[ERFResult]) -> None:
        partials = [partials] if isinstance(partials, ERFResult) else list(partials)
        self.partial = partials[0]
        self.partials = partials
        super().__init__(f"probe interrupted after {self.partial.meta['samples_seen']} samples")


FAST_AUTOCAST = torch.bfloat16  # the fast mode's compute dtype (autocast); sums stay float64


def reduce_gradient(grad: torch.Tensor, reduce: str) -> torch.Tensor:
    """Per-sample map ``[B, H, W]`` of dy/dx ``[B, C_in, H, W]`` by the registered reduction
    ``reduce`` (``erf.reductions``; an unknown name is a one-line ValueError)."""
    return reductions.get(reduce).per_image(grad)


# per_channel_normalised: input-gradient elements per batched backward (a chunk of channels).
CHANNEL_CHUNK_ELEMENTS = 2**25


def input_maps(
    acc: Accumulator,
    y: torch.Tensor,
    x: torch.Tensor,
    reduce: str,
    retain_graph: bool = False,
    progress: bool | None = None,
) -> torch.Tensor:
    """Per-sample maps ``[B, H, W]`` float64 of ``acc``'s unit: the input gradient of the seed
    ``acc.seed(y)``, reduced (``reduce_gradient``). ``per_channel_normalised`` seeds each
    channel on its own (``per_channel_maps``)."""
    if acc.batched:
        return per_channel_maps(acc, y, x, reduce, retain_graph, progress)
    (grad,) = torch.autograd.grad(y, x, grad_outputs=acc.seed(y), retain_graph=retain_graph)
    return reduce_gradient(grad, reduce).to(torch.float64)


def per_channel_maps(
    acc: Accumulator,
    y: torch.Tensor,
    x: torch.Tensor,
    reduce: str,
    retain_graph: bool = False,
    progress: bool | None = None,
) -> torch.Tensor:
    """``per_channel_normalised``: for every sample, each channel's map (one backward per
    channel, in chunks batched with ``is_grads_batched``) scaled to sum 1, averaged over the
    channels whose map is not all zero (dead ones are left out and recorded with
    ``acc.note_alive``). A sample with a NaN/Inf in any channel's map is all NaN (the engine
    counts it as non-finite); one whose channels are all dead is all zero."""
    n_channels, batch = acc.grid.channels, x.shape[0]
    per_chunk = max(1, min(n_channels, CHANNEL_CHUNK_ELEMENTS // max(x.numel(), y.numel())))
    starts = range(0, n_channels, per_chunk)
    total = torch.zeros((batch, *x.shape[2:]), dtype=torch.float64, device=x.device)
    live = torch.zeros((n_channels, batch), dtype=torch.bool, device=x.device)
    bad = torch.zeros(batch, dtype=torch.bool, device=x.device)
    show = len(starts) > 1 if progress is None else progress
    for start in tqdm(starts, disable=not show, desc="channels", unit="chunk", leave=False):
        chans = range(start, min(n_channels, start + per_chunk))
        keep = retain_graph or chans.stop < n_channels
        grads = _batched_input_grads(y, x, acc.seed(y, chans), keep)
        maps = reduce_gradient(grads.flatten(0, 1), reduce).to(torch.float64)
        maps = maps.view(len(chans), batch, *maps.shape[1:])
        spatial = tuple(range(-(x.dim() - 2), 0))  # the map's axes: (H, W), (L,), (D, H, W)
        mass = maps.sum(spatial)  # [k, B]
        finite = torch.isfinite(maps).flatten(2).all(2)
        bad |= ~finite.all(0)
        alive = finite & (mass > 0)
        live[start : chans.stop] = alive
        scale = torch.where(alive, 1.0 / torch.where(alive, mass, 1.0), 0.0)
        total += (maps.nan_to_num() * scale[(..., *[None] * len(spatial))]).sum(0)
    n_live = live.sum(0)
    out = total / n_live.clamp(min=1).to(torch.float64)[(slice(None), *[None] * len(spatial))]
    out[bad] = float("nan")
    acc.note_alive(live[:, ~bad].any(1).cpu())
    return out


def _batched_input_grads(
    y: torch.Tensor, x: torch.Tensor, seeds: torch.Tensor, retain_graph: bool
) -> torch.Tensor:
    """dx ``[k, *x.shape]`` for the k seeds ``[k, *y.shape]``: one vmapped backward
    (``is_grads_batched``; it keeps the graph, which lives until the batch's tensors go, so
    that a failure can fall back), or, where an op has no batching rule for it, one backward
    per seed (logged)."""
    try:
        (grads,) = torch.autograd.grad(
            y, x, grad_outputs=seeds, retain_graph=True, is_grads_batched=True
        )
    except RuntimeError as why:
        log.warning("per-channel seeding: one backward per channel (%s)", str(why)[:200])
        last = len(seeds) - 1
        grads = torch.stack(
            [
                torch.autograd.grad(y, x, grad_outputs=s, retain_graph=retain_graph or j < last)[0]
                for j, s in enumerate(seeds)
            ]
        )
    return grads


def measure_erf(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    options: ProbeOptions | None = None,
    *,
    target: str | None = None,
    position: str | tuple[int, int] = "center",
    resume: ERFResult | None = None,
    on_checkpoint: Callable[[ERFResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **settings: Any,
) -> ERFResult:
    """Measure the ERF of one unit of ``model``.

    For each input x, the upstream gradient is set at ``position`` of the target feature map
    by the options' ``seeding`` (default: 1 on every channel, or only on ``channel``) and 0
    elsewhere; dy/dx is reduced per pixel with ``reduce`` (``erf.reductions``), combined over
    input channels, and averaged over samples in float64.

    Args:
        model: any module; it is put in eval mode with frozen parameters while probing and
            restored afterwards.
        input_shape: ``(C, H, W)`` of one input; ``(C, L)`` for a sequence model (Conv1d,
            layout NCL) or ``(C, D, H, W)`` for a volume model (Conv3d, layout NCDHW), whose
            maps are ``[L]`` and ``[D, H, W]``.
        options: how to probe (``ProbeOptions``: samples, batch size, seeding, reduction,
            inputs, device, dtype, speed and layout settings, each documented there and in
            the configuration reference); default: all defaults.
        target: module name (as in ``model.named_modules()``) or None for the model output.
            The forward pass stops at the target.
        position: "center" = (h // 2, w // 2) of the target map, (row, col), or a prefix token
            ("cls", "prefix:K"); sequences and volumes: "center" (``n // 2`` per axis),
            ``(t,)`` or ``(d, h, w)``.
        resume: a partial result from ``on_checkpoint`` (or ``ProbeInterrupted.partial``)
            made with the same settings; probing continues after its last sample, and the
            final map is bitwise the uninterrupted one (same batch boundaries, same order).
        on_checkpoint: called with the partial result every ``checkpoint_every`` batches
            and when stopping early (the caller decides where to store it).
        should_stop: polled after every batch; when it returns True the probe checkpoints
            and raises ``ProbeInterrupted``.
        **settings: ``ProbeOptions`` fields by name, replacing those of ``options``
            (``measure_erf(model, shape, n_samples=64, reduce="relu")``); an unknown name is a
            one-line TypeError.
    """
    options = ProbeOptions.of(options, **settings)
    try:
        (result,) = probe_units(
            model,
            input_shape,
            [(target, position)],
            options,
            resume=None if resume is None else [resume],
            on_checkpoint=None if on_checkpoint is None else (lambda ps: on_checkpoint(ps[0])),
            should_stop=should_stop,
        )
    except ProbeInterrupted as stop:
        raise ProbeInterrupted(stop.partial) from None
    return result


def measure_erfs(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    units: Sequence[Unit],
    options: ProbeOptions | None = None,
    *,
    resume: Sequence[ERFResult] | None = None,
    on_checkpoint: Callable[[list[ERFResult]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    **settings: Any,
) -> list[ERFResult]:
    """ERFs of several units from one forward pass per batch; one ``ERFResult`` per unit.

    ``units``: targets (module name or None for the model output, probed at the centre) or
    ``(target, position)`` pairs, in any mix. The forward runs once per batch up to the last
    target it reaches; each unit then gets its own backward (the graph is retained between
    them), so the results are those of separate ``measure_erf`` calls with the same
    arguments (tested: bitwise on CPU). ``options`` and ``settings`` are ``measure_erf``'s;
    ``resume`` and ``on_checkpoint`` take and give one partial result per unit, all at the
    same sample. The saving is the forward passes: K units cost one forward and K
    input-gradient backwards instead of K of each (about a third for K stage layers of a
    ResNet).
    """
    return probe_units(
        model,
        input_shape,
        units,
        ProbeOptions.of(options, **settings),
        resume=resume,
        on_checkpoint=on_checkpoint,
        should_stop=should_stop,
    )


def probe_units(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    units: Sequence[Unit],
    options: ProbeOptions,
    *,
    resume: Sequence[ERFResult] | None = None,
    on_checkpoint: Callable[[list[ERFResult]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[ERFResult]:
    """``measure_erfs`` with its settings as one ``ProbeOptions`` (the engine every plain
    probe runs through): one ``ERFResult`` per unit."""
    input_shape = check_input_shape(input_shape, options)
    n_samples, batch_size, auto = options.n_samples, options.batch_size, options.auto_batch
    reduce, inputs = options.reduce, options.inputs
    dtype, seed, on_nonfinite = options.dtype, options.seed, options.on_nonfinite
    fast, channels_last, compile, crop = (
        options.fast, options.channels_last, options.compile, options.crop
    )  # fmt: skip
    checkpoint_every, progress = options.checkpoint_every, options.progress
    units = [as_unit(u) for u in units]
    if not units:
        raise ValueError("no units to probe")
    if resume is not None and len(resume) != len(units):
        raise ValueError(f"resume has {len(resume)} partial results for {len(units)} units")
    dev = resolve_device(options.device)
    common = {"input_shape": list(input_shape), **options.fingerprint()}
    accs = [
        Accumulator(
            {**common, "target": t, "position": p if isinstance(p, str) else list(p)},
            dev,
            None if resume is None else resume[i],
        )
        for i, (t, p) in enumerate(units)
    ]
    if len({a.seen for a in accs}) > 1:
        raise ValueError("partial results to resume together must stop at the same sample")
    seen = accs[0].seen
    if auto and resume is not None and resume[0].meta.get("batch_size"):
        batch_size = int(resume[0].meta["batch_size"])  # keep the run's batch boundaries
        auto_start = "checkpoint"
    else:
        auto_start = None
    start = time.perf_counter()
    with probing(model, dev, dtype, channels_last=channels_last):
        window = _crop_window(model, input_shape, units, crop, accs) if crop != "off" else None
        forward = forward_fn(model, [t for t, _ in units], compile)
        modules = dict(model.named_modules())  # layout evidence: the module that made y
        norms = NormWatch(model)  # did y come straight out of a LayerNorm (seed_warning)?
        autocast = torch.autocast(dev.type, dtype=FAST_AUTOCAST) if fast else nullcontext()

        def step(x: torch.Tensor) -> list[torch.Tensor]:
            """Per-sample maps [B, h, w] (float64, in the crop window) of every unit."""
            if window is not None:
                x = x[:, :, window[0] : window[1] + 1, window[2] : window[3] + 1]
            x, n = with_twin(x.to(device=dev, dtype=dtype))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            with autocast:
                outs = forward(x)
            maps = []
            for k, (acc, (target, _)) in enumerate(zip(accs, units)):
                where = "the model output" if target is None else f"module {target!r}"
                y = select_output(outs[target], options.output, where)
                if acc.grid is None:
                    module = model if target is None else modules.get(target)
                    grid = options.read_grid(
                        y, x.shape[2:], where=where, module=module, model=model,
                        graph_dims=lambda t=target, s=x.shape[1:]: graph_spatial_dims(model, s, t),
                    )  # fmt: skip
                    acc.set_grid(grid)
                    warning = seed_warning(norms.producer(y) or module, grid, options.channel)
                    if warning:
                        log.warning("%s: %s", where, warning)
                        acc.warnings.append(warning)
                        acc.noise_only = warning
                retain = k < len(units) - 1
                maps.append(input_maps(acc, y, x, reduce, retain, options.progress)[:n])
            norms.close()  # the first batch decided every unit's grid
            return maps

        stream = BatchStream(inputs, input_shape, n_samples, batch_size, seed, seen, auto)
        if auto and auto_start is None and stream.random:
            stream.resize(estimate_batch_size(step, stream, dev, n_samples))
        elif not auto and stream.random and not compile and int(batch_size) > 1:
            too_big = memory_refusal(step, stream, dev, min(int(batch_size), n_samples - seen))
            if too_big:  # refused before the kernel kills the run
                raise ValueError(too_big)
        per_batch = stream.limit or (1 if auto else int(batch_size))
        n_batches = -(-(n_samples - seen) // per_batch)
        show = n_batches > 1 if progress is None else progress
        with tqdm(
            total=n_samples, initial=seen, disable=not show, desc="ERF probe", unit="img",
            leave=False,
        ) as bar:  # fmt: skip
            batch_number = 0
            while (x := stream.next()) is not None:
                try:
                    maps = step(x)
                except Exception as exc:
                    if not (auto and x.shape[0] > 1 and is_out_of_memory(exc)):
                        raise
                    maps = None  # leave the except block so the failed batch can be freed
                if maps is None:
                    after_out_of_memory(dev)
                    stream.shrink(x.shape[0])
                    log.warning(
                        "out of memory at batch size %d; retrying with %d",
                        x.shape[0],
                        stream.limit,
                    )
                    continue
                stream.done(x.shape[0])
                batch_number += 1
                for acc, per_sample in zip(accs, maps):
                    finite = torch.isfinite(per_sample).flatten(1).all(1)
                    bad = int((~finite).sum())
                    if bad and on_nonfinite == "raise":
                        raise FloatingPointError(f"{bad} sample(s) gave NaN/Inf gradients")
                    acc.add(per_sample, finite)
                bar.update(x.shape[0])
                stop = should_stop is not None and should_stop()
                extra = {"batch_size": stream.used}
                if on_checkpoint is not None and (stop or batch_number % checkpoint_every == 0):
                    on_checkpoint([a.result(extra) for a in accs])
                if stop:
                    raise ProbeInterrupted([a.result(extra) for a in accs])
    if accs[0].total is None:
        raise ValueError("the input source yielded no batches")
    meta = {
        "device": str(dev),
        "batch_size": stream.used,
        "batch_size_setting": "auto" if auto else int(batch_size),
        "oom_retries": stream.retries,
        "fast": bool(fast),
        "channels_last": channels_last,
        "compile": bool(compile),
        "n_units": len(units),
        "wall_time_s": time.perf_counter() - start,
    }
    if auto_start:
        meta["batch_size_from"] = auto_start
    return [a.result(meta) for a in accs]


def check_input_shape(input_shape: Sequence[int], options: ProbeOptions) -> tuple[int, ...]:
    """``input_shape`` as ints: ``(C, H, W)`` (images), ``(C, L)`` (sequences: audio, time
    series) or ``(C, D, H, W)`` (volumes, video), positive sizes. The settings that exist
    for images only (``channels_last``, so ``fast`` unless ``channels_last=False``, ``crop``,
    ``grid``, ``prefix_tokens``) are refused in one line on the others."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) not in (2, 3, 4) or min(shape) < 1:
        raise ValueError(
            "input_shape must be (C, H, W), (C, L) or (C, D, H, W) with positive sizes, "
            f"got {shape}"
        )
    if len(shape) != 3:
        kind = "a sequence (C, L)" if len(shape) == 2 else "a volume (C, D, H, W)"
        if options.channels_last:
            why = " (fast=True turns it on)" if options.fast else ""
            raise ValueError(
                f"channels_last is for images (C, H, W), not {kind}{why}: set channels_last=False"
            )
        if options.crop != "off":
            raise ValueError(f"crop={options.crop} is for images (C, H, W), not {kind}")
        for key in ("grid", "prefix_tokens"):  # token sequences of images
            if getattr(options, key) is not None:
                raise ValueError(f"{key}={getattr(options, key)} is for images, not {kind}")
    return shape


def _crop_window(model, input_shape, units, crop, accs) -> tuple[int, int, int, int] | None:
    """The input window to feed, or None (crop does not apply: logged, or raised for "on").
    Sets every accumulator's target shape and positions (full and cropped)."""
    try:
        plan = plan_crop(model, input_shape, units)
    except CropRefused as why:
        if crop == "on":
            raise ValueError(f"crop=on: {why}") from None
        log.warning("crop: probing the whole input (%s)", why)
        for acc in accs:
            acc.crop_meta = {"applied": False, "reason": str(why)}
        return None
    for acc, (shape, pos, cropped) in zip(accs, plan.units):
        acc.target_shape, acc.position, acc.seed_position = shape, pos, cropped
        acc.set_window(plan.window)
        acc.crop_meta = {"applied": True, "rows": list(plan.rows), "cols": list(plan.cols)}
    return plan.window


__all__ = [
    "ProbeInterrupted",
    "ProbeOptions",
    "check_input_shape",
    "forward_to",
    "forward_to_many",
    "input_maps",
    "measure_erf",
    "measure_erfs",
    "per_channel_maps",
    "probe_units",
    "probing",
    "reduce_gradient",
    "resolve_device",
]
