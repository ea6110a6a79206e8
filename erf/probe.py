"""The gradient probe: ERF maps by back-propagating a unit gradient from one output unit.

Knows nothing of Hydra or files. One backward pass per batch gives every sample's own input
gradient: the summed target over the batch is back-propagated, which is exact because samples
do not interact in eval mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from erf.inputs import input_batches
from erf.result import REDUCTIONS, ERFResult


class _StopForward(Exception):
    """Raised by the target hook so the forward pass ends at the target layer."""


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

    total = total_sq = None
    n_used = n_nonfinite = 0
    pos: tuple[int, int] | None = None
    target_shape: tuple[int, ...] = ()
    start = time.perf_counter()
    with (
        probing(model, dev, dtype),
        tqdm(
            total=int(n_samples), disable=not show, desc="ERF probe", unit="img", leave=False
        ) as bar,
    ):
        for x in input_batches(inputs, input_shape, int(n_samples), int(batch_size), seed):
            x = x.to(device=dev, dtype=dtype).requires_grad_(True)
            y = forward_to(model, x, target)
            _check_feature_map(y, "target output" if target is None else f"module {target!r}")
            if pos is None:
                target_shape = tuple(y.shape[1:])
                pos = _resolve_position(position, y.shape[2], y.shape[3])
                if channel is not None and not 0 <= int(channel) < y.shape[1]:
                    raise ValueError(f"channel {channel} is outside 0..{y.shape[1] - 1}")
            seed_grad = torch.zeros_like(y)
            seed_grad[:, slice(None) if channel is None else int(channel), pos[0], pos[1]] = 1
            (grad,) = torch.autograd.grad(y, x, grad_outputs=seed_grad)
            per_sample = _reduce(grad, reduce).to(torch.float64)
            finite = torch.isfinite(per_sample).flatten(1).all(1)
            bad = int((~finite).sum())
            if bad and on_nonfinite == "raise":
                raise FloatingPointError(f"{bad} sample(s) gave NaN/Inf gradients")
            per_sample = per_sample[finite]
            batch_sum, batch_sq = per_sample.sum(0), per_sample.square().sum(0)
            total = batch_sum if total is None else total + batch_sum
            total_sq = batch_sq if total_sq is None else total_sq + batch_sq
            n_used += per_sample.shape[0]
            n_nonfinite += bad
            bar.update(x.shape[0])
    if total is None:
        raise ValueError("the input source yielded no batches")
    meta = {
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "seed": int(seed),
        "inputs": inputs if isinstance(inputs, str) else type(inputs).__name__,
        "batch_size": int(batch_size),
        "wall_time_s": time.perf_counter() - start,
    }
    return ERFResult(
        total=total.cpu().numpy().astype(np.float64),
        total_sq=total_sq.cpu().numpy().astype(np.float64),
        n_samples=n_used,
        input_shape=input_shape,  # type: ignore[arg-type]
        target=target,
        target_shape=target_shape,
        position=pos,  # type: ignore[arg-type]
        channel=None if channel is None else int(channel),
        reduce=reduce,
        n_nonfinite=n_nonfinite,
        meta=meta,
    )
