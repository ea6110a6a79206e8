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
