"""The gradient probe: ERF maps by back-propagating a unit gradient from one output unit.

Knows nothing of Hydra or files. One backward pass per batch gives every sample's own input
gradient: the summed target over the batch is back-propagated, which is exact because samples
do not interact in eval mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from erf.inputs import input_batches
from erf.result import REDUCTIONS, ERFResult


class _StopForward(Exception):
    """Raised by the target hook so the forward pass ends at the target layer."""


class ProbeInterrupted(Exception):
    """The probe stopped early on request; ``partial`` holds what was accumulated."""

    def __init__(self, partial: ERFResult) -> None:
        super().__init__(f"probe interrupted after {partial.meta['samples_seen']} samples")
        self.partial = partial


DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

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
)


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use device=cpu")
    return dev


@contextmanager
def probing(model: nn.Module, device: torch.device, dtype: torch.dtype):
    """Eval mode, frozen parameters, ``device`` and ``dtype`` (and, on CPU, denormals
    flushed to zero) for the duration.

    Training mode, ``requires_grad`` flags and the device/dtype of the first parameter are
    restored afterwards, so probing leaves the caller's model as it was.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    first = next(model.parameters(), None)
    home = (first.device, first.dtype) if first is not None else None
    model.to(device=device, dtype=dtype)
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
        if home is not None:
            model.to(device=home[0], dtype=home[1])


def forward_to(model: nn.Module, x: torch.Tensor, target: str | None) -> torch.Tensor:
    """Output of module ``target`` (or of the model when None); stops the forward there."""
    if target is None:
        return model(x)
    modules = dict(model.named_modules())
    if target not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"model has no module named {target!r}; modules: {shown}")
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)
        raise _StopForward

    handle = modules[target].register_forward_hook(hook)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"module {target!r} was not called in the forward pass")
    return captured[0]


def _check_feature_map(y: torch.Tensor, where: str) -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"{where} must be a [B, C, H, W] feature map, got {shape}; "
            "token/vector outputs are not supported: pick a convolutional layer as target"
        )


def _resolve_position(position, h: int, w: int) -> tuple[int, int]:
    if isinstance(position, str):
        if position != "center":
            raise ValueError(f"position must be 'center' or (row, col), got {position!r}")
        return h // 2, w // 2
    row, col = (int(v) for v in position)
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position {(row, col)} is outside the {h}x{w} target feature map")
    return row, col


def _reduce(grad: torch.Tensor, reduce: str) -> torch.Tensor:
    """Per-sample map ``[B, H, W]``: elementwise reduction of dy/dx, summed over channels."""
    if reduce == "abs":
        return grad.abs().sum(1)
    if reduce == "relu":
        return grad.clamp(min=0).sum(1)
    if reduce == "square":
        return grad.square().sum(1)
    return grad.sum(1)  # signed_clamp: clamp happens after averaging (ERFResult.map)


def measure_erf(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    n_samples: int = 32,
    batch_size: int = 16,
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
        batch_size: inputs per forward/backward pass.
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
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduce!r}; allowed: {list(REDUCTIONS)}")
    if on_nonfinite not in ("skip", "raise"):
        raise ValueError(f"on_nonfinite must be 'skip' or 'raise', got {on_nonfinite!r}")
    if int(n_samples) < 1 or int(batch_size) < 1:
        raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples}, {batch_size}")
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
    dev = resolve_device(device)
    n_batches = -(-int(n_samples) // int(batch_size))
    show = n_batches > 1 if progress is None else progress

    fingerprint = {
        "input_shape": list(input_shape),
        "n_samples": int(n_samples),
        "batch_size": int(batch_size),
        "target": target,
        "position": position if isinstance(position, str) else [int(v) for v in position],
        "channel": None if channel is None else int(channel),
        "reduce": reduce,
        "inputs": inputs if isinstance(inputs, str) else type(inputs).__name__,
        "dtype": str(dtype).replace("torch.", ""),
        "seed": int(seed),
    }
    acc = _Accumulator(fingerprint, dev, resume)
    start = time.perf_counter()
    with (
        probing(model, dev, dtype),
        tqdm(
            total=int(n_samples),
            initial=acc.seen,
            disable=not show,
            desc="ERF probe",
            unit="img",
            leave=False,
        ) as bar,
    ):
        batches = input_batches(
            inputs, input_shape, int(n_samples), int(batch_size), seed, start=acc.seen
        )
        for batch_number, x in enumerate(batches, start=1):
            x = x.to(device=dev, dtype=dtype).requires_grad_(True)
            y = forward_to(model, x, target)
            _check_feature_map(y, "target output" if target is None else f"module {target!r}")
            if acc.position is None:
                acc.target_shape = tuple(y.shape[1:])
                acc.position = _resolve_position(position, y.shape[2], y.shape[3])
                if channel is not None and not 0 <= int(channel) < y.shape[1]:
                    raise ValueError(f"channel {channel} is outside 0..{y.shape[1] - 1}")
            pos = acc.position
            seed_grad = torch.zeros_like(y)
            seed_grad[:, slice(None) if channel is None else int(channel), pos[0], pos[1]] = 1
            (grad,) = torch.autograd.grad(y, x, grad_outputs=seed_grad)
            per_sample = _reduce(grad, reduce).to(torch.float64)
            finite = torch.isfinite(per_sample).flatten(1).all(1)
            bad = int((~finite).sum())
            if bad and on_nonfinite == "raise":
                raise FloatingPointError(f"{bad} sample(s) gave NaN/Inf gradients")
            acc.add(per_sample[finite], bad, x.shape[0])
            bar.update(x.shape[0])
            stop = should_stop is not None and should_stop()
            if on_checkpoint is not None and (stop or batch_number % checkpoint_every == 0):
                on_checkpoint(acc.result(input_shape, target, channel, reduce))
            if stop:
                raise ProbeInterrupted(acc.result(input_shape, target, channel, reduce))
    if acc.total is None:
        raise ValueError("the input source yielded no batches")
    result = acc.result(input_shape, target, channel, reduce)
    result.meta.update(
        device=str(dev),
        batch_size=int(batch_size),
        wall_time_s=time.perf_counter() - start,
    )
    return result


class _Accumulator:
    """Float64 running sums on the probe's device, optionally restored from a checkpoint."""

    def __init__(self, fingerprint: dict, device: torch.device, resume: ERFResult | None):
        self.fingerprint = fingerprint
        self.total = self.total_sq = None
        self.n_used = self.n_nonfinite = self.seen = 0
        self.position: tuple[int, int] | None = None
        self.target_shape: tuple[int, ...] = ()
        if resume is None:
            return
        old = resume.meta.get("fingerprint", {})
        differ = [k for k in FINGERPRINT_KEYS if old.get(k) != fingerprint[k]]
        if differ:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {fingerprint[k]!r}" for k in differ)
            raise ValueError(f"checkpoint was made with other settings ({changes})")
        self.total = torch.as_tensor(resume.total, dtype=torch.float64, device=device)
        self.total_sq = torch.as_tensor(resume.total_sq, dtype=torch.float64, device=device)
        self.n_used, self.n_nonfinite = resume.n_samples, resume.n_nonfinite
        self.seen = int(resume.meta["samples_seen"])
        self.position, self.target_shape = tuple(resume.position), tuple(resume.target_shape)

    def add(self, per_sample: torch.Tensor, n_bad: int, n_seen: int) -> None:
        batch_sum, batch_sq = per_sample.sum(0), per_sample.square().sum(0)
        self.total = batch_sum if self.total is None else self.total + batch_sum
        self.total_sq = batch_sq if self.total_sq is None else self.total_sq + batch_sq
        self.n_used += per_sample.shape[0]
        self.n_nonfinite += n_bad
        self.seen += n_seen

    def result(self, input_shape, target, channel, reduce) -> ERFResult:
        return ERFResult(
            total=self.total.cpu().numpy().astype(np.float64),
            total_sq=self.total_sq.cpu().numpy().astype(np.float64),
            n_samples=self.n_used,
            input_shape=input_shape,
            target=target,
            target_shape=self.target_shape,
            position=self.position,
            channel=None if channel is None else int(channel),
            reduce=reduce,
            n_nonfinite=self.n_nonfinite,
            meta={
                "fingerprint": dict(self.fingerprint),
                "samples_seen": self.seen,
                "dtype": self.fingerprint["dtype"],
                "seed": self.fingerprint["seed"],
                "inputs": self.fingerprint["inputs"],
            },
        )
