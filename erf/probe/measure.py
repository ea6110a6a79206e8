"""The gradient probe: ERF maps by back-propagating a unit gradient from one output unit.

Knows nothing of Hydra or files. One backward pass per batch gives every sample's own input
gradient: the summed target over the batch is back-propagated, which is exact because samples
do not interact in eval mode. ``measure_erfs`` probes several units (modules and/or positions)
from one forward pass per batch; ``measure_erf`` is its one-unit case.

Speed knobs (all off by default; DESIGN.md §5): ``fast`` (bf16 autocast + channels_last; sums
stay float64), ``channels_last`` (alone: float32), ``compile`` (``torch.compile`` of the
forward truncated at the targets), ``batch_size="auto"`` (largest batch that fits, halved on
out-of-memory) and ``crop`` (feed only the window of the input the target units can see,
``erf.probe.crop``).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from erf.probe.inputs import input_batches
from erf.probe.options import ProbeOptions
from erf.result import ERFResult

log = logging.getLogger("erf")


class _StopForward(Exception):
    """Raised by the target hook so the forward pass ends at the target layer."""


class ProbeInterrupted(Exception):
    """The probe stopped early on request; ``partial`` holds what was accumulated (the first
    unit's partial result; ``partials`` has one per unit of ``measure_erfs``)."""

    def __init__(self, partials: ERFResult | Sequence[ERFResult]) -> None:
        partials = [partials] if isinstance(partials, ERFResult) else list(partials)
        self.partial = partials[0]
        self.partials = partials
        super().__init__(f"probe interrupted after {self.partial.meta['samples_seen']} samples")


FAST_AUTOCAST = torch.bfloat16  # the fast mode's compute dtype (autocast); sums stay float64
AUTO_BATCH_MAX = 1024  # batch_size="auto" never starts above this (nor above n_samples)
AUTO_MEMORY_FRACTION = 0.5  # ... and aims at this fraction of the free memory

# Settings that must match for a checkpoint to be resumed (they decide every sample's map).
FINGERPRINT_KEYS = (
    "input_shape",
    "n_samples",
    "batch_size",
    "target",
    "position",
    "channel",
    "reduce",
    "inputs",
    "dtype",
    "seed",
    "fast",
    "channels_last",
    "compile",
    "crop",
)
# What a checkpoint written before a key existed meant by it.
FINGERPRINT_DEFAULTS = {"fast": False, "channels_last": False, "compile": False, "crop": "off"}

Unit = Any  # a target (module name or None), or a (target, position) pair


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use device=cpu")
    return dev


def _is_channels_last(model: nn.Module) -> bool:
    w = next((p for p in model.parameters() if p.dim() == 4), None)
    return (
        w is not None
        and not w.is_contiguous()
        and w.is_contiguous(memory_format=torch.channels_last)
    )


@contextmanager
def probing(
    model: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool = False
):
    """Eval mode, frozen parameters, ``device`` and ``dtype`` (optionally the channels_last
    memory format; on CPU, denormals flushed to zero) for the duration.

    Training mode, ``requires_grad`` flags, the device/dtype of the first parameter and the
    memory format are restored afterwards, so probing leaves the caller's model as it was.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    first = next(model.parameters(), None)
    home = (first.device, first.dtype) if first is not None else None
    was_channels_last = _is_channels_last(model)
    model.to(device=device, dtype=dtype)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    # Deep averaging stacks push tail gradients below float32's normal range, and denormal
    # arithmetic is slow on x86 CPUs. Flushing changes values below 1e-38 only.
    flushed = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield model
    finally:
        if flushed:
            torch.set_flush_denormal(False)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
        if channels_last and not was_channels_last:
            model.to(memory_format=torch.contiguous_format)
        if home is not None:
            model.to(device=home[0], dtype=home[1])


def _module_named(model: nn.Module, target: str) -> nn.Module:
    modules = dict(model.named_modules())
    if target not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"model has no module named {target!r}; modules: {shown}")
    return modules[target]


def forward_to_many(
    model: nn.Module, x: torch.Tensor, targets: Sequence[str | None]
) -> dict[str | None, torch.Tensor]:
    """Outputs of the modules ``targets`` (None: the model output) from one forward pass,
    which stops as soon as all of them were computed (first call of each module)."""
    wanted = list(dict.fromkeys(targets))
    names = [t for t in wanted if t is not None]
    modules = {t: _module_named(model, t) for t in names}
    captured: dict[str | None, torch.Tensor] = {}
    stop_early = None not in wanted

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if name not in captured:
                captured[name] = output
            if stop_early and len(captured) == len(names):
                raise _StopForward

        return hook

    handles = [m.register_forward_hook(hook_for(t)) for t, m in modules.items()]
    try:
        out = model(x)
        if None in wanted:
            captured[None] = out
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [t for t in wanted if t not in captured]
    if missing:
        raise RuntimeError(f"module {missing[0]!r} was not called in the forward pass")
    return captured


def forward_to(model: nn.Module, x: torch.Tensor, target: str | None) -> torch.Tensor:
    """Output of module ``target`` (or of the model when None); stops the forward there."""
    return forward_to_many(model, x, [target])[target]


def _check_feature_map(y: torch.Tensor, where: str) -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"{where} must be a [B, C, H, W] feature map, got {shape}; "
            "token/vector outputs are not supported: pick a convolutional layer as target"
        )


def resolve_position(position, h: int, w: int) -> tuple[int, int]:
    if isinstance(position, str):
        if position != "center":
            raise ValueError(f"position must be 'center' or (row, col), got {position!r}")
        return h // 2, w // 2
    row, col = (int(v) for v in position)
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position {(row, col)} is outside the {h}x{w} target feature map")
    return row, col


def reduce_gradient(grad: torch.Tensor, reduce: str) -> torch.Tensor:
    """Per-sample map ``[B, H, W]``: elementwise reduction of dy/dx, summed over channels."""
    if reduce == "abs":
        return grad.abs().sum(1)
    if reduce == "relu":
        return grad.clamp(min=0).sum(1)
    if reduce == "square":
        return grad.square().sum(1)
    return grad.sum(1)  # signed_clamp: clamp happens after averaging (ERFResult.map)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out-of-memory, or a CPU allocation failure."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("out of memory", "can't allocate memory", "not enough memory")
    )


def _unit(u: Unit) -> tuple[str | None, Any]:
    if isinstance(u, tuple) and len(u) == 2 and (u[0] is None or isinstance(u[0], str)):
        return u[0], u[1] if isinstance(u[1], str) else tuple(int(v) for v in u[1])
    if u is None or isinstance(u, str):
        return u, "center"
    raise ValueError(f"a unit is a target (module name or None) or (target, position), got {u!r}")


def measure_erf(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    n_samples: int = 32,
    batch_size: int | str = 16,
    target: str | None = None,
    position: str | tuple[int, int] = "center",
    channel: int | None = None,
    reduce: str = "abs",
    inputs: str | Iterable = "gaussian",
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    on_nonfinite: str = "skip",
    progress: bool | None = None,
    resume: ERFResult | None = None,
    on_checkpoint: Callable[[ERFResult], None] | None = None,
    checkpoint_every: int = 10,
    should_stop: Callable[[], bool] | None = None,
    fast: bool = False,
    channels_last: bool | None = None,
    compile: bool = False,
    crop: str = "off",
) -> ERFResult:
    """Measure the ERF of one unit of ``model``.

    For each input x, the upstream gradient is 1 at ``position`` of the target feature map
    (every channel, or only ``channel``) and 0 elsewhere; dy/dx is reduced per pixel with
    ``reduce`` ("abs", "relu", "signed_clamp", "square"; DESIGN.md §2), summed over input
    channels, and averaged over samples in float64.

    Args:
        model: any module; it is put in eval mode with frozen parameters while probing and
            restored afterwards.
        input_shape: ``(C, H, W)`` of one input.
        n_samples: number of inputs to average over.
        batch_size: inputs per forward/backward pass, or "auto": the largest batch that fits
            (estimated from the memory one sample's forward keeps for the backward, at most
            ``AUTO_BATCH_MAX`` and ``n_samples``), halved after every out-of-memory error
            (CUDA, or a CPU allocation failure). The chosen size is ``meta["batch_size"]``;
            the map is the one a run with that fixed batch size gives. With an iterable
            source, "auto" keeps its batches and only splits them after an error.
        target: module name (as in ``model.named_modules()``) or None for the model output.
            The forward pass stops at the target.
        position: "center" = (h // 2, w // 2) of the target map, or (row, col).
        channel: target channel, or None for a unit gradient on every channel.
        inputs: "gaussian" (N(0,1)), "uniform" (U[-1,1)) or an iterable of batches
            (tensors or (x, y) tuples, e.g. a DataLoader).
        device: "auto", "cpu", "cuda", ...
        dtype: compute dtype of model and inputs; accumulation is always float64.
        seed: random inputs are a pure function of (seed, sample index).
        on_nonfinite: "skip" samples whose gradient holds NaN/Inf (counted in
            ``n_nonfinite``) or "raise".
        progress: show a progress bar (None: only when there is more than one batch).
        resume: a partial result from ``on_checkpoint`` (or ``ProbeInterrupted.partial``)
            made with the same settings; probing continues after its last sample, and the
            final map is bitwise the uninterrupted one (same batch boundaries, same order).
        on_checkpoint: called with the partial result every ``checkpoint_every`` batches
            and when stopping early (the caller decides where to store it).
        should_stop: polled after every batch; when it returns True the probe checkpoints
            and raises ``ProbeInterrupted``.
        fast: bfloat16 autocast for forward and backward and the channels_last memory format
            (model and inputs); ``dtype`` must be float32, sums stay float64. For GPUs with
            bf16 tensor cores; on CPUs without native bf16 it is much slower than float32.
        channels_last: the channels_last memory format for model and inputs without
            autocast (None: on with ``fast``). On some CPUs the fastest float32 setting.
        compile: ``torch.compile`` the forward pass, truncated at the target with torch.fx
            (falls back to the uncompiled forward, with a warning, if it cannot be traced).
            The first batches pay the compile time.
        crop: "off", "auto" (feed only the target unit's window of the input when
            ``erf.probe.crop.plan_crop`` proves that changes nothing, else log why and probe the
            whole input) or "on" (the same, but raise ``ValueError`` when it does not
            apply). ``meta["crop"]`` says what happened.
    """
    options = ProbeOptions(
        n_samples=n_samples,
        batch_size=batch_size,
        channel=channel,
        reduce=reduce,
        inputs=inputs,
        device=device,
        dtype=dtype,
        seed=seed,
        on_nonfinite=on_nonfinite,
        progress=progress,
        checkpoint_every=checkpoint_every,
        fast=fast,
        channels_last=channels_last,
        compile=compile,
        crop=crop,
    )
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
    *,
    n_samples: int = 32,
    batch_size: int | str = 16,
    channel: int | None = None,
    reduce: str = "abs",
    inputs: str | Iterable = "gaussian",
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    on_nonfinite: str = "skip",
    progress: bool | None = None,
    resume: Sequence[ERFResult] | None = None,
    on_checkpoint: Callable[[list[ERFResult]], None] | None = None,
    checkpoint_every: int = 10,
    should_stop: Callable[[], bool] | None = None,
    fast: bool = False,
    channels_last: bool | None = None,
    compile: bool = False,
    crop: str = "off",
) -> list[ERFResult]:
    """ERFs of several units from one forward pass per batch; one ``ERFResult`` per unit.

    ``units``: targets (module name or None for the model output, probed at the centre) or
    ``(target, position)`` pairs, in any mix. The forward runs once per batch up to the last
    target it reaches; each unit then gets its own backward (the graph is retained between
    them), so the results are those of separate ``measure_erf`` calls with the same
    arguments (tested: bitwise on CPU). Every other argument is ``measure_erf``'s; ``resume``
    and ``on_checkpoint`` take and give one partial result per unit, all at the same sample.
    The saving is the forward passes: K units cost one forward and K input-gradient
    backwards instead of K of each (about a third for K stage layers of a ResNet).
    """
    options = ProbeOptions(
        n_samples=n_samples,
        batch_size=batch_size,
        channel=channel,
        reduce=reduce,
        inputs=inputs,
        device=device,
        dtype=dtype,
        seed=seed,
        on_nonfinite=on_nonfinite,
        progress=progress,
        checkpoint_every=checkpoint_every,
        fast=fast,
        channels_last=channels_last,
        compile=compile,
        crop=crop,
    )
    return probe_units(
        model,
        input_shape,
        units,
        options,
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
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
    n_samples, batch_size, auto = options.n_samples, options.batch_size, options.auto_batch
    channel, reduce, inputs = options.channel, options.reduce, options.inputs
    dtype, seed, on_nonfinite = options.dtype, options.seed, options.on_nonfinite
    fast, channels_last, compile, crop = (
        options.fast, options.channels_last, options.compile, options.crop
    )  # fmt: skip
    checkpoint_every, progress = options.checkpoint_every, options.progress
    units = [_unit(u) for u in units]
    if not units:
        raise ValueError("no units to probe")
    if resume is not None and len(resume) != len(units):
        raise ValueError(f"resume has {len(resume)} partial results for {len(units)} units")
    dev = resolve_device(options.device)
    common = {"input_shape": list(input_shape), **options.fingerprint()}
    accs = [
        _Accumulator(
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
        forward = _forward_fn(model, [t for t, _ in units], compile)
        autocast = torch.autocast(dev.type, dtype=FAST_AUTOCAST) if fast else nullcontext()

        def step(x: torch.Tensor) -> list[torch.Tensor]:
            """Per-sample maps [B, h, w] (float64, in the crop window) of every unit."""
            if window is not None:
                x = x[:, :, window[0] : window[1] + 1, window[2] : window[3] + 1]
            x = x.to(device=dev, dtype=dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x.requires_grad_(True)
            with autocast:
                outs = forward(x)
            maps = []
            for k, (acc, (target, _)) in enumerate(zip(accs, units)):
                y = outs[target]
                if acc.position is None:
                    acc.set_target(y, "target output" if target is None else f"module {target!r}")
                row, col = acc.seed_position
                seed_grad = torch.zeros_like(y)
                seed_grad[:, slice(None) if channel is None else int(channel), row, col] = 1
                (grad,) = torch.autograd.grad(
                    y, x, grad_outputs=seed_grad, retain_graph=k < len(units) - 1
                )
                maps.append(reduce_gradient(grad, reduce).to(torch.float64))
            return maps

        stream = _Batches(inputs, input_shape, n_samples, batch_size, seed, seen, auto)
        if auto and auto_start is None and stream.random:
            stream.resize(_estimate_batch_size(step, stream, dev, n_samples))
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
                    _after_out_of_memory(dev)
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
                    acc.add(per_sample[finite], bad, x.shape[0])
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


def _after_out_of_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _Batches:
    """The probe's input batches; after an out-of-memory error ``shrink`` serves the failed
    batch again in halves (random sources are regenerated from the failed sample on, at the
    new size, so the batch boundaries are those of a fixed-size run at that size).

    ``limit``: the batch size (None: an iterable's own batches); ``used``: the largest batch
    that went through; ``retries``: out-of-memory errors recovered from.
    """

    def __init__(self, source, input_shape, n_samples, batch_size, seed, start, auto):
        self.source, self.input_shape, self.n_samples, self.seed = (
            source,
            input_shape,
            n_samples,
            seed,
        )
        self.random = isinstance(source, str)
        self.fixed_iterable = not self.random and not auto  # its batches, as they come
        if self.random:  # "auto" starts at the cap until _estimate_batch_size resizes
            self.limit = min(n_samples, AUTO_BATCH_MAX) if batch_size == "auto" else int(batch_size)
        else:
            self.limit = None if auto else int(batch_size)
        self.index = start
        self.used = 0
        self.retries = 0
        self._open()

    def _open(self) -> None:
        self._iter = iter(
            input_batches(
                self.source,
                self.input_shape,
                self.n_samples,
                self.limit or 1,
                self.seed,
                start=self.index,
            )
        )
        self.pending: torch.Tensor | None = None

    def first_sample(self) -> torch.Tensor | None:
        """The next sample alone (a fresh draw for random sources; nothing is consumed)."""
        one = input_batches(self.source, self.input_shape, self.n_samples, 1, self.seed, self.index)
        return next(iter(one), None)

    def resize(self, size: int) -> None:
        self.limit = max(1, int(size))
        self._open()

    def next(self) -> torch.Tensor | None:
        if self.pending is None or not len(self.pending):
            self.pending = next(self._iter, None)
            if self.pending is None:
                return None
        if self.fixed_iterable or self.limit is None:
            return self.pending
        return self.pending[: self.limit]

    def done(self, n: int) -> None:
        self.pending = self.pending[n:]
        self.index += n
        self.used = max(self.used, n)

    def shrink(self, failed: int) -> None:
        self.retries += 1
        self.limit = max(1, failed // 2)
        if self.random:
            self._open()


def _estimate_batch_size(step, stream: _Batches, device: torch.device, n_samples: int) -> int:
    """Largest batch expected to fit: the bytes one sample's forward keeps for the backward
    (``saved_tensors_hooks``) plus its input, times two for the backward's buffers, into
    ``AUTO_MEMORY_FRACTION`` of the free memory (CUDA: ``mem_get_info``; CPU: MemAvailable).
    Out-of-memory errors halve it later if it was too optimistic."""
    x = stream.first_sample()
    if x is None:
        return 1
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(x[:1])
    per_sample = 2 * (sum(storages.values()) + x[:1].nelement() * 8) + 1
    if device.type == "cuda":  # free memory, plus what torch's caching allocator holds unused
        unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        free = torch.cuda.mem_get_info(device)[0] + unused
    else:
        free = _cpu_available_bytes()
    return max(1, min(n_samples, AUTO_BATCH_MAX, int(AUTO_MEMORY_FRACTION * free // per_sample)))


def _cpu_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # no /proc (macOS, Windows): assume 4 GiB


def _forward_fn(
    model: nn.Module, targets: Sequence[str | None], compile: bool
) -> Callable[[torch.Tensor], dict[str | None, torch.Tensor]]:
    """x -> {target: output}: hooks that stop the forward (default), or with ``compile`` a
    torch.fx trace truncated at the targets, compiled."""
    if not compile:
        return lambda x: forward_to_many(model, x, targets)
    wanted = list(dict.fromkeys(targets))
    cache = _COMPILED.setdefault(model, {})
    compiled = cache.get(tuple(wanted))
    if compiled is None:
        try:
            from erf.rf.graph import truncated_model

            compiled = torch.compile(truncated_model(model, wanted))
        except (ValueError, TypeError, RuntimeError) as exc:
            log.warning("compile=True: cannot trace the model (%s); running uncompiled", exc)
            return lambda x: forward_to_many(model, x, targets)
        cache[tuple(wanted)] = compiled
    return lambda x: dict(zip(wanted, compiled(x)))


# model -> {targets: compiled truncated forward}: later probes of the same model and targets
# reuse the compiled code (a fresh trace would make dynamo compile again).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _crop_window(model, input_shape, units, crop, accs) -> tuple[int, int, int, int] | None:
    """The input window to feed, or None (crop does not apply: logged, or raised for "on").
    Sets every accumulator's target shape and positions (full and cropped)."""
    from erf.probe.crop import CropRefused, plan_crop

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


class _Accumulator:
    """Float64 running sums of one unit on the probe's device (inside the crop window, if
    any), optionally restored from a checkpoint."""

    def __init__(self, fingerprint: dict, device: torch.device, resume: ERFResult | None):
        self.fingerprint = fingerprint
        self.total = self.total_sq = None
        self.n_used = self.n_nonfinite = self.seen = 0
        self.position: tuple[int, int] | None = None
        self.seed_position: tuple[int, int] | None = None
        self.target_shape: tuple[int, ...] = ()
        self.window: tuple[int, int, int, int] | None = None
        self.crop_meta: dict | None = None
        if resume is None:
            return
        old = resume.meta.get("fingerprint", {})
        differ = [
            k for k in FINGERPRINT_KEYS if old.get(k, FINGERPRINT_DEFAULTS.get(k)) != fingerprint[k]
        ]
        if differ:
            changes = ", ".join(
                f"{k}: {old.get(k, FINGERPRINT_DEFAULTS.get(k))!r} -> {fingerprint[k]!r}"
                for k in differ
            )
            raise ValueError(f"checkpoint was made with other settings ({changes})")
        self.total = torch.as_tensor(resume.total, dtype=torch.float64, device=device)
        self.total_sq = torch.as_tensor(resume.total_sq, dtype=torch.float64, device=device)
        self.n_used, self.n_nonfinite = resume.n_samples, resume.n_nonfinite
        self.seen = int(resume.meta["samples_seen"])
        self.position, self.target_shape = tuple(resume.position), tuple(resume.target_shape)
        self.seed_position = self.position

    def set_target(self, y: torch.Tensor, where: str) -> None:
        """First batch without a crop plan: check the target map, resolve the position."""
        _check_feature_map(y, where)
        self.target_shape = tuple(y.shape[1:])
        position = self.fingerprint["position"]
        self.position = resolve_position(position, y.shape[2], y.shape[3])
        self.seed_position = self.position
        channel = self.fingerprint["channel"]
        if channel is not None and not 0 <= channel < y.shape[1]:
            raise ValueError(f"channel {channel} is outside 0..{y.shape[1] - 1}")

    def set_window(self, window: tuple[int, int, int, int]) -> None:
        """Accumulate inside ``window`` (r0, r1, c0, c1) of the input from now on."""
        self.window = window
        r0, r1, c0, c1 = window
        if self.total is not None:  # resumed: keep the window of the sums
            self.total = self.total[r0 : r1 + 1, c0 : c1 + 1]
            self.total_sq = self.total_sq[r0 : r1 + 1, c0 : c1 + 1]

    def add(self, per_sample: torch.Tensor, n_bad: int, n_seen: int) -> None:
        batch_sum, batch_sq = per_sample.sum(0), per_sample.square().sum(0)
        self.total = batch_sum if self.total is None else self.total + batch_sum
        self.total_sq = batch_sq if self.total_sq is None else self.total_sq + batch_sq
        self.n_used += per_sample.shape[0]
        self.n_nonfinite += n_bad
        self.seen += n_seen

    def _full(self, sums: torch.Tensor) -> np.ndarray:
        arr = sums.cpu().numpy().astype(np.float64)
        if self.window is None:
            return arr
        r0, r1, c0, c1 = self.window
        full = np.zeros(tuple(self.fingerprint["input_shape"][1:]), dtype=np.float64)
        full[r0 : r1 + 1, c0 : c1 + 1] = arr
        return full

    def result(self, extra: dict | None = None) -> ERFResult:
        total, total_sq = self._full(self.total), self._full(self.total_sq)
        fp = self.fingerprint
        meta = {
            "fingerprint": dict(fp),
            "samples_seen": self.seen,
            "dtype": fp["dtype"],
            "seed": fp["seed"],
            "inputs": fp["inputs"],
            **(extra or {}),
        }
        if self.crop_meta is not None:
            meta["crop"] = self.crop_meta
        return ERFResult(
            total=total,
            total_sq=total_sq,
            n_samples=self.n_used,
            input_shape=tuple(fp["input_shape"]),
            target=fp["target"],
            target_shape=self.target_shape,
            position=self.position,
            channel=fp["channel"],
            reduce=fp["reduce"],
            n_nonfinite=self.n_nonfinite,
            meta=meta,
        )


__all__ = [
    "ProbeInterrupted",
    "ProbeOptions",
    "forward_to",
    "forward_to_many",
    "measure_erf",
    "measure_erfs",
    "probe_units",
    "probing",
    "reduce_gradient",
    "resolve_device",
]
