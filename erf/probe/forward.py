"""The forward pass to the probed targets: eval mode with frozen parameters on the probe's
device and dtype (``probing``), hooks that stop the forward once every target was computed
(``forward_to_many``), or a torch.fx truncation of the model, compiled (``forward_fn``)."""

from __future__ import annotations

import difflib
import logging
import weakref
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from erf.rf.graph import truncated_model

log = logging.getLogger("erf")


class _StopForward(Exception):
    """Raised by the target hook so the forward pass ends at the target layer."""


@contextmanager
def probing(
    model: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool = False
):
    """Eval mode, frozen parameters, ``device`` and ``dtype`` (optionally the channels_last
    memory format; on CPU, denormals flushed to zero) for the duration.

    Everything is restored afterwards, module by module and tensor by tensor, so probing
    leaves the caller's model exactly as it was: each module's training flag (a BatchNorm the
    user froze with ``bn.eval()`` inside a model in training mode stays frozen), each
    parameter's ``requires_grad`` and ``.grad`` (the same tensor, set aside while probing:
    ``model.to`` would convert it to the probe's dtype and leave it there), and each
    parameter's and buffer's device, dtype (a mixed float32/float64 model stays mixed) and
    memory format.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    grads = [(p, p.grad) for p, _ in flags]
    for p, _ in flags:
        p.grad = None
    homes = _tensor_homes(model)
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
        for m, mode in modes:
            m.training = mode
        _restore_homes(homes)
        for p, grad in grads:
            p.grad = grad


Home = tuple[nn.Module, str, bool, torch.device, torch.dtype, torch.memory_format]


def _tensor_homes(model: nn.Module) -> list[Home]:
    """(module, name, is_parameter, device, dtype, memory format) of every parameter and
    buffer of ``model``, where ``model.to`` would move it."""
    homes = []
    for m in model.modules():
        for tensors, is_param in (
            (m.named_parameters(recurse=False), True),
            (m.named_buffers(recurse=False), False),
        ):
            for name, t in tensors:
                last = t.dim() == 4 and not t.is_contiguous()
                last = last and t.is_contiguous(memory_format=torch.channels_last)
                fmt = torch.channels_last if last else torch.contiguous_format
                homes.append((m, name, is_param, t.device, t.dtype, fmt))
    return homes


def _restore_homes(homes: list[Home]) -> None:
    """Put every tensor of ``_tensor_homes`` back on its device, dtype and memory format."""
    for m, name, is_param, device, dtype, fmt in homes:
        t = getattr(m, name)
        data = t.data
        moved = data.to(device=device, dtype=dtype, memory_format=fmt)
        if moved is data:
            continue
        if is_param:
            t.data = moved
        else:
            setattr(m, name, moved)


def unknown_module(target: str, names: Sequence[str]) -> str:
    """One line for a target no module is named: the nearest names first (difflib, as the
    config's "did you mean" does), then the first modules of the model."""
    close = difflib.get_close_matches(target, names, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return f"model has no module named {target!r}{hint}; modules: {shown}"


def _module_named(model: nn.Module, target: str) -> nn.Module:
    modules = dict(model.named_modules())
    if target not in modules:
        raise ValueError(unknown_module(target, [n for n in modules if n]))
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


def forward_fn(
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
            compiled = torch.compile(truncated_model(model, wanted))
        except (ValueError, TypeError, RuntimeError) as exc:
            log.warning("compile=True: cannot trace the model (%s); running uncompiled", exc)
            return lambda x: forward_to_many(model, x, targets)
        cache[tuple(wanted)] = compiled
    return lambda x: dict(zip(wanted, compiled(x)))


# model -> {targets: compiled truncated forward}: later probes of the same model and targets
# reuse the compiled code (a fresh trace would make dynamo compile again).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
