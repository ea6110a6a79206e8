"""The measuring core of the ERF monitor (``erf.monitor.ERFMonitor``): what to measure during
a user's training, when, and a guard that leaves the training exactly as it was.

Torch only, no files: ``MonitorProbe.measure`` returns a ``Measurement`` (the map and its
numbers); the public monitor hands it to the writers (``erf.io.monitor``) and the training job
(``erf.app.jobs.training``) saves its maps.

**Mode.** The ERF is measured in eval mode, always (``probing`` puts every module in eval
mode and restores each module's own flag afterwards). The probe's one backward per batch gives
every sample's own input gradient only because samples do not interact, which a BatchNorm in
training mode breaks (its batch statistics mix the samples), and a training-mode BatchNorm
would also move its running statistics. So the monitored ERF is the ERF of the network as it
will be evaluated (running statistics, no dropout).

**No disturbance** (``undisturbed``): every module's training flag, every parameter's
``requires_grad`` and ``.grad`` (the very tensor object, so an optimizer step after the probe
sees the gradients of the training batch), the parameters and buffers (the probe never writes
them: eval mode, no optimizer), and the random-number generators (torch CPU, every CUDA device
torch has initialised, numpy's global state, python's ``random``) are as before the call. A
training run with the monitor is bitwise the run without it on CPU (tested). One thing is not
restored: on CPU the probe turns flushing of denormal floats on for its duration and off
afterwards (``erf.probe.forward.probing``; torch has no way to read the flag back).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from erf.analysis.summary import erf_metrics
from erf.checks import int_at_least, is_finite_number
from erf.device import resolve_device
from erf.probe.forward import unknown_module
from erf.probe.measure import probe_units
from erf.probe.options import ProbeOptions
from erf.probe.support import trf_or_support
from erf.result import ERFResult
from erf.rf.theory import TheoreticalRF
from erf.settings import IGNORED, RECORDED, check_fields, compared, setting
from erf.settings import fingerprint as settings_fingerprint

# The numbers of one measurement that the monitor logs (CSV columns, TensorBoard scalars), in
# order: the epoch, Luo's ERF size with its 95 % interval over input groups, ERF/TRF with its
# interval, the Gaussian fit's R² with its interval and sigmas (px), the TRF, the samples and
# the probe's wall time. ``erf_metrics`` defines each.
ROW_COLUMNS = (
    "epoch",
    "erf_size",
    "erf_size_ci_low",
    "erf_size_ci_high",
    "erf_trf_ratio",
    "erf_trf_ratio_ci_low",
    "erf_trf_ratio_ci_high",
    "fit_r2",
    "fit_r2_ci_low",
    "fit_r2_ci_high",
    "sigma_x",
    "sigma_y",
    "trf_size",
    "n_samples",
    "n_dead",
    "degenerate",
    "probe_time_s",
)


def _is_target(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_position(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(int_at_least(0)[0](v) for v in value)
    )


def _is_shape(value: Any) -> bool:
    return value is None or (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(int_at_least(1)[0](v) for v in value)
    )


def _shape(value: Any) -> tuple[int, int, int] | None:
    return None if value is None else tuple(int(v) for v in value)


@dataclass(frozen=True)
class MonitorSettings:
    """What the monitor measures and when (each field declared once, ``erf.settings``;
    construction checks every value and raises one-line ``ValueError``s).

    An epoch is due when ``epoch % every == 0``: epoch 0 is the network before training,
    epoch ``e`` the network after ``e`` epochs."""

    every: int = setting(
        1,
        int_at_least(1),
        "measure after every N-th epoch (0: before training)",
        fingerprint=RECORDED,  # a resumed run may measure more or less often
    )
    target: str | None = setting(
        None, (_is_target, "a module name or null"), "the probed module (null: the model output)"
    )
    position: str | tuple[int, int] = setting(
        "center",
        (_is_position, "center, a prefix token or [row, col]"),
        "the probed unit in the target's map",
        to_config=lambda v: v if isinstance(v, str) else list(v),
    )
    input_shape: tuple[int, int, int] | None = setting(
        None,
        (_is_shape, "null or [C, H, W] with sizes >= 1"),
        "(C, H, W) of one probe input (null: taken from a fixed batch)",
        to_config=lambda v: None if v is None else list(v),
        from_config=_shape,
    )
    r2_min: float = setting(
        0.9,
        (lambda v: is_finite_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
        "a Gaussian fit below this R² is flagged (fit_problem)",
        fingerprint=RECORDED,
    )
    prefix: str = setting(
        "erf",
        (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
        "TensorBoard tags are <prefix>/size, <prefix>/trf_ratio, ...",
        fingerprint=IGNORED,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "input_shape", _shape(self.input_shape))
        if isinstance(self.position, list):
            object.__setattr__(self, "position", tuple(int(v) for v in self.position))

    def due(self, epoch: int) -> bool:
        """Whether ``epoch`` is one the monitor measures at."""
        return int(epoch) % self.every == 0


@dataclass(frozen=True)
class Measurement:
    """One measurement: ``epoch``, the map (``result``) and ``erf_metrics`` of it
    (``metrics``: sizes, intervals, fit, TRF; pixels)."""

    epoch: int
    result: ERFResult
    metrics: dict[str, Any]

    def row(self) -> dict[str, Any]:
        """The logged numbers (``ROW_COLUMNS``)."""
        out = {k: self.metrics.get(k) for k in ROW_COLUMNS}
        out["epoch"] = int(self.epoch)
        out["probe_time_s"] = float(self.result.meta.get("wall_time_s", 0.0))
        return out


def probing_rank() -> bool:
    """True on the process that probes: rank 0 of an initialised ``torch.distributed`` group,
    or the only process."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper
    (target names are the inner module's)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel,
                                              nn.DataParallel)) else model  # fmt: skip


def model_device(model: nn.Module) -> torch.device | None:
    """The one device of ``model``'s parameters and buffers (None without any); a model
    spread over devices is a one-line ValueError."""
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    if len(devices) > 1:
        shown = ", ".join(sorted(str(d) for d in devices))
        raise ValueError(f"the model spans several devices ({shown}); the monitor needs one")
    return next(iter(devices), None)


@contextmanager
def undisturbed(model: nn.Module) -> Iterator[None]:
    """Run the body with gradients enabled (also inside ``no_grad``/``inference_mode``) and
    the parameters' ``.grad`` set aside, then put back every module's training flag, every
    parameter's ``requires_grad`` and ``.grad`` (the same tensor objects) and the torch CPU,
    CUDA, numpy and python random states, whatever the body did (module docstring)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad
        for m, mode in modes:
            m.training = mode
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def fixed_batch(batch: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int, int]]:
    """A user's fixed batch ``[B, C, H, W]`` (or one image ``[C, H, W]``) as probe inputs
    (the same images at every measurement) and its input shape."""
    if not isinstance(batch, torch.Tensor) or batch.dim() not in (3, 4):
        raise ValueError("a fixed batch must be a tensor [B, C, H, W] or [C, H, W]")
    batch = batch.detach().cpu()
    batch = batch.unsqueeze(0) if batch.dim() == 3 else batch
    return [batch], tuple(int(v) for v in batch.shape[1:])


class MonitorProbe:
    """Measures the ERF of one unit of a model being trained (``MonitorSettings``) with
    ``options`` (``ProbeOptions``: samples, reduction, seeding, inputs, device, seed).

    ``inputs``: None (``options.inputs``: noise unless set), a fixed batch tensor, or an
    iterable of batches remade for every measurement by ``make_inputs()`` (an image folder: the
    same images each time)."""

    def __init__(
        self,
        settings: MonitorSettings,
        options: ProbeOptions | None = None,
        inputs: torch.Tensor | None = None,
        make_inputs: Any = None,
    ) -> None:
        self.settings = settings
        options = ProbeOptions.of(options)
        if options.progress is None:  # no progress bar per measurement inside a training loop
            options = ProbeOptions.of(options, progress=False)
        shape = settings.input_shape
        if inputs is not None:
            batches, shape = fixed_batch(inputs)
            if settings.input_shape is not None and settings.input_shape != shape:
                raise ValueError(
                    f"input_shape={list(settings.input_shape)} but the fixed batch has images "
                    f"of {list(shape)}"
                )
            options = ProbeOptions.of(options, inputs=batches)
        if shape is None:
            raise ValueError("input_shape=(C, H, W) is needed unless a fixed batch gives it")
        self.shape: tuple[int, int, int] = shape
        self.options, self.make_inputs = options, make_inputs
        self._trf: TheoreticalRF | None = None
        self._checked: set[int] = set()

    def fingerprint(self) -> dict[str, Any]:
        """What the measurements depend on, in plain values (kept in the monitor's state):
        the settings' and the probe options' fingerprints (``erf.settings``), the options'
        keys prefixed ``probe.``."""
        probe = {f"probe.{k}": v for k, v in self.options.fingerprint().items()}
        return {**settings_fingerprint(self.settings), **probe, "input_shape": list(self.shape)}

    def differences(self, recorded: dict[str, Any]) -> list[str]:
        """The compared settings (``COMPARED``) whose ``recorded`` value is not this probe's,
        as ``key: old -> new``."""
        mine = self.fingerprint()
        keys = [*compared(MonitorSettings), *(f"probe.{k}" for k in compared(ProbeOptions))]
        return [
            f"{k}: {recorded.get(k)!r} -> {mine.get(k)!r}"
            for k in keys
            if k in mine and recorded.get(k) != mine[k]
        ]

    def device(self, model: nn.Module) -> torch.device:
        """Where the probe runs: ``options.device``, or with "auto" the model's own device.
        One-line ValueError when the model is elsewhere."""
        own = model_device(model)
        if str(self.options.device) == "auto":
            return own or torch.device("cpu")
        dev = resolve_device(self.options.device)
        same = own is None or own == dev or (own.type == dev.type and dev.index is None)
        if not same:
            raise ValueError(
                f"the model is on {own} but the monitor probes on {dev}; pass "
                f"ProbeOptions(device={str(own)!r}) or move the model"
            )
        return dev

    def check(self, model: nn.Module) -> None:
        """One-line ValueErrors for a target ``model`` has not and a model on another device
        than the probe's (checked once per model)."""
        if id(model) in self._checked:
            return
        target = self.settings.target
        if target is not None:
            names = [n for n, _ in model.named_modules() if n]
            if target not in names:
                raise ValueError(unknown_module(target, names))
        self.device(model)
        self._checked.add(id(model))

    def trf(self, model: nn.Module) -> TheoreticalRF:
        """The probed unit's TRF (``trf_or_support``; computed once: training keeps the
        architecture)."""
        if self._trf is None:
            model = unwrap(model)
            self.check(model)
            with undisturbed(model):
                self._trf = trf_or_support(
                    model, self.shape, self.settings.target, self.settings.position,
                    self.options.seed, options=self.run_options(model),
                )  # fmt: skip
        return self._trf

    def run_options(self, model: nn.Module) -> ProbeOptions:
        """The options of one measurement: the device decided, the inputs remade."""
        extra: dict[str, Any] = {"device": self.device(model)}
        if self.make_inputs is not None:
            extra["inputs"] = self.make_inputs()
        return ProbeOptions.of(self.options, **extra)

    def measure(self, model: nn.Module, epoch: int = 0) -> Measurement:
        """The ERF of ``model`` now (``undisturbed``), with ``erf_metrics`` about its TRF."""
        model = unwrap(model)
        self.check(model)
        trf = self.trf(model)
        options = self.run_options(model)
        with undisturbed(model):
            unit = (self.settings.target, self.settings.position)
            (result,) = probe_units(model, self.shape, [unit], options)
        metrics = erf_metrics(result, trf, r2_min=self.settings.r2_min)
        return Measurement(int(epoch), result, metrics)
