"""Measured support: the TRF where the graph analysis cannot say.

The support of a unit is the set of input pixels where its input gradient is nonzero, united
over a few random Gaussian inputs. Every pixel in it provably reaches the unit, so it is a LOWER
BOUND of the theoretical receptive field (a gradient can vanish by accident: dead ReLUs, zero
weights, saturated gates, or float32 underflow far out in very deep stacks, where the probe also
flushes denormals on CPU); for generic smooth networks it equals the TRF with probability 1.
It needs no torch.fx trace, only the probe's own forward (hooks that stop at the target), so it
works for token mixers (ViT/Swin), detectors with control flow and any other model.

The support is meant to bound the architecture's TRF, not the function a random init happens
to compute: timm zero-initialises the last norm of every residual branch (``zero_init_last``),
LeViT its attention/MLP norms, others their layer-scale gammas or last convs, so at init those
branches pass no gradient and the support of the raw model is several times too small (timm
``resnet10t`` ``layer4`` at 224: 43 px instead of 199). It is therefore measured on
``support_copy(model, seed)``: a float64 deep copy (the model itself is never touched) whose
norm affines are redrawn, BatchNorm statistics reset, and all-zero parameter tensors redrawn.
The copy also counts what the graph analysis counts (``erf.rf.trf.LOCAL_CONVENTION``): the
per-sample scalars of squeeze-excitation gates and of GroupNorm/InstanceNorm/LayerNorm-over-
space statistics are held constant (``erf.probe.held``), so a gated or group-normed conv stack
gets the same local box from both. When such a held computation ran on the way to the unit,
the result's ``convention`` is ``SUPPORT_CONVENTION`` and its ``global_context`` is set; else
it is ``SUPPORT_PLAIN_CONVENTION``. ``redraw=False`` measures the model's own weights and function
instead, every dependence counted (``OWN_WEIGHTS_CONVENTION``).

``measured_support`` measures it, ``support_trf`` turns it into a ``TheoreticalRF`` record
(``source="measured_support"``), ``first_global_layer`` names the first module whose centre
unit already sees the whole input, and ``trf_or_support`` is what the jobs call: the exact TRF
when the graph analysis can give it, else the measured support with the reason.
Conventions: (row, col), inclusive boxes ``((r0, r1), (c0, c1))`` in input pixels, the centre
of an h x w map is (h // 2, w // 2).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from erf.device import resolve_device
from erf.probe.forward import probing
from erf.probe.held import HeldContext, hold_context
from erf.probe.layout import Grid
from erf.probe.measure import probe_units
from erf.probe.options import ProbeOptions
from erf.rf.theory import theoretical_rf
from erf.rf.trf import LOCAL_CONVENTION, Pair, TheoreticalRF

log = logging.getLogger("erf")


@contextmanager
def _quiet():
    """Drop the ``erf`` logger's warnings while an internal support probe runs (e.g. the
    LayerNorm note of every norm that ``first_global_layer`` passes on its search)."""

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING

    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


Box = tuple[Pair, Pair]

_REDRAWN = (
    "measured support of a float64 copy with redrawn norm affines and zero-initialised weights"
)
# A held gate or norm statistic ran on the way to the unit: the graph's local box convention.
SUPPORT_CONVENTION = f"{LOCAL_CONVENTION}; {_REDRAWN}"
# None did (or the box is the whole input anyway): nothing was left out of the box.
SUPPORT_PLAIN_CONVENTION = f"{_REDRAWN}; every dependence counts, no gate or norm statistic held"
OWN_WEIGHTS_CONVENTION = (
    "measured support of the model's own weights; every dependence counts, gates included"
)
# Redraws of ``support_copy``: norm weight ~ U(NORM_WEIGHT), norm bias ~ N(0, NORM_BIAS_STD),
# an all-zero parameter ~ N(0, ZERO_PARAM_STD).
NORM_WEIGHT = (0.5, 1.5)
NORM_BIAS_STD = 0.1
ZERO_PARAM_STD = 0.02
# torch's norm layers (timm's BatchNormAct2d, GroupNormAct, LayerNorm2d are subclasses).
_NORM_TYPES = tuple(
    t
    for t in (
        nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
        nn.GroupNorm,
        nn.LayerNorm,
        getattr(nn, "RMSNorm", None),
    )
    if t is not None
)


def is_norm(module: nn.Module) -> bool:
    """A normalisation layer: one of torch's, or a class whose name says "norm" (timm's
    RmsNorm, torchvision's FrozenBatchNorm2d, ...). Only its own ``weight``/``bias`` count as
    its affine, so a container named so (LeViT's ConvNorm) changes nothing."""
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def _own_tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """``module``'s own (not a child's) floating parameter or buffer ``name``, else None."""
    t = module._parameters.get(name, module._buffers.get(name))
    return t if isinstance(t, torch.Tensor) and t.is_floating_point() else None


def support_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A float64 deep copy of ``model`` whose function has no dead branch and whose gates and
    spatial norm statistics are held constant: what the measured support probes
    (``SUPPORT_CONVENTION``). ``model`` itself is not touched.

    In the copy, every norm layer (``is_norm``) gets weight ~ U(0.5, 1.5) and bias ~
    N(0, 0.1) (parameters or buffers, as FrozenBatchNorm2d keeps them) and running mean 0,
    variance 1; then every parameter tensor that is entirely zero (zero-initialised convs,
    layer-scale gammas, biases) gets N(0, 0.02). Drawn on the CPU from ``seed``, in module
    and parameter order. Zero-initialised branch norms (timm's ``zero_init_last``, LeViT)
    would otherwise pass no gradient, and an unscaled norm output has a constant channel sum.
    Any parameter values are a point of the architecture's weight space, so the copy's
    support is still a lower bound of the TRF, only no longer an accidentally small one.

    Then ``erf.probe.held.hold_context``: squeeze-excitation gates return
    ``x * gate(x).detach()`` and GroupNorm/InstanceNorm/LayerNorm-over-space normalise with
    detached statistics (the same values; the gradient keeps the per-pixel path only), as the
    graph analysis treats them (``erf.rf.trf.LOCAL_CONVENTION``).
    """
    return _support_copy(model, seed)[0]


def _support_copy(model: nn.Module, seed: int) -> tuple[nn.Module, HeldContext]:
    """``support_copy`` and what its ``hold_context`` changed."""
    dup = copy.deepcopy(model).to(torch.float64)
    gen = torch.Generator().manual_seed(int(seed))

    def put(t: torch.Tensor, value: torch.Tensor) -> None:
        t.copy_(value.to(t.device))

    def cpu(t: torch.Tensor) -> torch.Tensor:
        return torch.empty(t.shape, dtype=torch.float64)

    with torch.no_grad():
        for module in dup.modules():
            if not is_norm(module):
                continue
            weight, bias = _own_tensor(module, "weight"), _own_tensor(module, "bias")
            if weight is not None:
                put(weight, cpu(weight).uniform_(*NORM_WEIGHT, generator=gen))
            if bias is not None:
                put(bias, cpu(bias).normal_(0.0, NORM_BIAS_STD, generator=gen))
            mean, var = _own_tensor(module, "running_mean"), _own_tensor(module, "running_var")
            if mean is not None:
                mean.zero_()
            if var is not None:
                var.fill_(1.0)
        for p in dup.parameters():
            if p.is_floating_point() and p.numel() and not bool(p.any()):
                put(p, cpu(p).normal_(0.0, ZERO_PARAM_STD, generator=gen))
    return dup, hold_context(dup)


def _support_dtype(options: ProbeOptions | None) -> torch.dtype:
    """float64 for the support copy, except on MPS (no float64 there): float32."""
    device = resolve_device((options or ProbeOptions()).device)
    return torch.float32 if device.type == "mps" else torch.float64


@dataclass(frozen=True)
class SupportResult:
    """Input pixels where one unit's gradient was nonzero for at least one of ``n_inputs``
    N(0, 1) inputs (drawn from ``seed``).

    ``mask`` is a boolean ``[H, W]`` array; ``box`` its inclusive bounding box
    ``((r0, r1), (c0, c1))`` (None when the mask is empty); ``covers_input`` is True when every
    pixel is in it (then the unit's TRF is global: the lower bound is everything).
    ``target``/``position`` name the unit (position resolved to (row, col) of the target map,
    whose shape is ``target_shape``). ``convention``: what was measured
    (``SUPPORT_CONVENTION``: the ``support_copy``, where a held gate or norm statistic ran on
    the way to the unit; ``SUPPORT_PLAIN_CONVENTION``: the ``support_copy``, none did or the
    support covers the input anyway; ``OWN_WEIGHTS_CONVENTION``: the model as is). ``held``:
    the modules of the copy whose held computation (``erf.probe.held``) ran in the forward pass
    up to the target, in order. That is upstream in execution order, not strictly on a path to
    the unit: a side branch computed before the target that does not feed it counts too.
    """

    mask: np.ndarray
    box: Box | None
    covers_input: bool
    n_inputs: int
    seed: int
    target: str | None
    position: Pair | str  # (row, col), or a prefix token ("prefix:K")
    target_shape: tuple[int, ...]
    convention: str = SUPPORT_PLAIN_CONVENTION
    held: tuple[str, ...] = ()

    @property
    def global_context(self) -> bool:
        """A local support that holds per-sample scalars of the whole map constant (as the
        graph's ``TheoreticalRF.global_context``): the unit depends on every pixel through
        them."""
        return bool(self.held) and not self.covers_input

    @property
    def size(self) -> Pair:
        """Span ``(rows, cols)`` of the box; (0, 0) for an empty support."""
        if self.box is None:
            return (0, 0)
        (r0, r1), (c0, c1) = self.box
        return (r1 - r0 + 1, c1 - c0 + 1)


def _support_options(
    options: ProbeOptions | None, n_inputs: int, seed: int, dtype: torch.dtype | None = None
) -> ProbeOptions:
    """``options``' device, dtype (unless ``dtype`` is given) and output reading (``layout``,
    ``grid``, ``prefix_tokens``, ``output``), with every setting that shapes the map fixed: abs
    reduction, all channels, Gaussian inputs, one batch, no speed tricks."""
    base = options or ProbeOptions()
    return ProbeOptions(
        n_samples=n_inputs,
        batch_size=n_inputs,
        reduce="abs",
        inputs="gaussian",
        device=base.device,
        dtype=base.dtype if dtype is None else dtype,
        seed=seed,
        progress=False,
        layout=base.layout,
        grid=base.grid,
        prefix_tokens=base.prefix_tokens,
        output=base.output,
    )


def _layer_options(options: ProbeOptions | None, name: str, target: str | None) -> ProbeOptions:
    """The target keeps ``options``' output reading; other layers are read with layout "auto"
    (their own tensor output), keeping only the model-wide ``prefix_tokens`` hint."""
    base = options or ProbeOptions()
    if name == target:
        return base
    return ProbeOptions.of(base, layout="auto", grid=None, output=None)


def measured_support(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: str | None,
    position: str | tuple[int, int] = "center",
    *,
    n_inputs: int = 4,
    seed: int = 0,
    options: ProbeOptions | None = None,
    redraw: bool = True,
) -> SupportResult:
    """The union over ``n_inputs`` Gaussian inputs of the input pixels where the gradient of
    unit ``position`` of ``target`` (module name, None = model output) is nonzero.

    Each sample's map is sum_c |dy/dx| >= 0 (``reduce="abs"``) and the probe sums maps over
    samples, so ``total > 0`` is exactly the union. A lower bound of the TRF (module
    docstring). ``options`` only lends its device, its output reading and (``redraw=False``)
    its dtype. ``redraw`` (default): measured on ``support_copy(model, seed)`` in float64
    (gates and spatial norm statistics held constant); False: on ``model``'s own weights (its
    function as it is, every dependence counted).
    """
    if int(n_inputs) < 1:
        raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
    probed = _Probed.of(model, seed, options, redraw)
    return _measure(probed, input_shape, target, position, int(n_inputs), int(seed), options)


@dataclass(frozen=True)
class _Probed:
    """The model a support is measured on, the dtype to probe it in and what it is."""

    model: nn.Module
    dtype: torch.dtype | None  # None: the options' own
    held: HeldContext | None  # None: the model's own function, nothing held

    @classmethod
    def of(cls, model: nn.Module, seed: int, options: ProbeOptions | None, redraw: bool) -> _Probed:
        if not redraw:
            return cls(model, None, None)
        dup, held = _support_copy(model, int(seed))
        return cls(dup, _support_dtype(options), held)

    def options(self, options: ProbeOptions | None) -> ProbeOptions | None:
        """``options`` with this probe's dtype (for the forward passes outside the probe)."""
        return options if self.dtype is None else ProbeOptions.of(options, dtype=self.dtype)


def _measure(
    probed: _Probed,
    input_shape: tuple[int, int, int],
    target: str | None,
    position: str | tuple[int, int],
    n_inputs: int,
    seed: int,
    options: ProbeOptions | None,
) -> SupportResult:
    opts = _support_options(options, n_inputs, seed, probed.dtype)
    if probed.held is not None:
        probed.held.clear()
    with _quiet():  # the probe's own warnings are about maps; this probe wants only support
        (result,) = probe_units(probed.model, input_shape, [(target, position)], opts)
    held = () if probed.held is None else tuple(probed.held.ran)
    mask = np.asarray(result.total > 0)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = None
    if rows.size:
        box = ((int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])))
    if probed.held is None:
        convention = OWN_WEIGHTS_CONVENTION
    elif held and not mask.all():
        convention = SUPPORT_CONVENTION
    else:
        convention = SUPPORT_PLAIN_CONVENTION
    return SupportResult(
        mask=mask,
        box=box,
        covers_input=bool(mask.all()),
        n_inputs=n_inputs,
        seed=seed,
        target=target,
        position=(
            result.position
            if isinstance(result.position, str)
            else tuple(int(v) for v in result.position)
        ),
        target_shape=tuple(int(v) for v in result.target_shape),
        convention=convention,
        held=held,
    )


def support_note(support: SupportResult, why: str | None = None) -> str:
    """The one-line warning a measured-support TRF carries (its ``notes[0]``)."""
    head = f"TRF from measured support over {support.n_inputs} random inputs (a lower bound)"
    return f"{head}: {why}" if why else head


def support_trf(
    support: SupportResult, why: str | None = None, global_from: str | None = None
) -> TheoreticalRF:
    """A ``TheoreticalRF`` record of a measured support (``source="measured_support"``).

    ``size`` = the box's span (rows, cols), ``is_global`` = ``covers_input``; stride and padding
    are unknown and set to (0, 0); ``interval`` returns the box for the probed unit only (see
    ``TheoreticalRF``); ``convention`` and ``global_context`` are the support's. ``notes[0]`` is
    ``support_note(support, why)``. ValueError when the
    support is empty (no pixel reaches the unit for these inputs).
    """
    if support.box is None:
        raise ValueError(
            f"the measured support of unit {support.position} of {support.target!r} is empty: "
            f"its gradient was zero everywhere for {support.n_inputs} random inputs"
        )
    h, w = support.mask.shape
    out_shape = tuple(support.target_shape[-2:]) if len(support.target_shape) >= 2 else None
    return TheoreticalRF(
        size=support.size,
        stride=(0, 0),
        padding=(0, 0),
        input_shape=(int(h), int(w)),
        out_shape=out_shape,
        is_global=support.covers_input,
        global_context=support.global_context,
        notes=(support_note(support, why),),
        target=support.target,
        source="measured_support",
        global_from=global_from,
        box=support.box,
        unit=support.position,
        convention=support.convention,
    )


class _Stop(Exception):
    """Ends the order pass once the target module has completed."""


def completion_order(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: str | None = None,
    options: ProbeOptions | None = None,
) -> list[str]:
    """Module paths in the order their first calls complete in one forward pass (one N(0, 1)
    input), up to and including ``target`` (None: the whole forward), keeping only modules
    whose output the probe can read (a tensor that ``erf.probe.layout.resolve_grid`` reads
    with layout "auto": NCHW/NHWC maps, token sequences, vectors; the target always counts).
    The root module is left out."""
    return [row["name"] for row in readable_layers(model, input_shape, target, options)]


def readable_layers(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: str | None = None,
    options: ProbeOptions | None = None,
) -> list[dict[str, Any]]:
    """``completion_order``'s modules as rows: ``name``, ``type``, ``layout`` (None for a
    target the probe cannot read with ``options``), ``out_shape`` ([C, h, w] of the grid) and
    ``prefix_tokens`` -- what ``erf.layers`` lists where the graph analysis stops."""
    modules = dict(model.named_modules())
    if target is not None and target not in modules:
        raise ValueError(f"model has no module named {target!r}")
    opts = options or ProbeOptions()
    input_hw = (int(input_shape[1]), int(input_shape[2]))
    rows: list[dict[str, Any]] = []
    done: set[str] = set()

    def grid_of(name: str, module: nn.Module, output: object) -> Grid | None:
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            return None
        layer = _layer_options(opts, name, target)
        try:
            return layer.read_grid(output, input_hw, where=name, module=module, model=model)
        except ValueError:
            return None

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, _inputs: object, output: object) -> None:
            if name in done:
                return
            done.add(name)
            grid = grid_of(name, module, output)
            if grid is not None or name == target:
                rows.append(
                    {
                        "name": name,
                        "type": type(module).__name__,
                        "layout": None if grid is None else grid.layout,
                        "out_shape": None if grid is None else list(grid.shape),
                        "prefix_tokens": None if grid is None else grid.prefix_tokens,
                    }
                )
            if name == target:
                raise _Stop

        return hook

    dev = resolve_device(opts.device)
    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules.items() if n]
    try:
        with probing(model, dev, opts.dtype), torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            x = torch.randn((1, *input_shape), generator=gen).to(device=dev, dtype=opts.dtype)
            with contextlib.suppress(_Stop):
                model(x)
    finally:
        for h in handles:
            h.remove()
    if target is not None and target not in done:
        raise ValueError(f"module {target!r} was not called in the forward pass")
    return rows


def first_global_layer(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: str | None,
    *,
    n_inputs: int = 4,
    seed: int = 0,
    options: ProbeOptions | None = None,
    redraw: bool = True,
) -> str | None:
    """The first module, in forward completion order up to ``target``, whose centre unit's
    measured support covers the whole input; None when ``target``'s own centre unit does not.

    Because the support is a lower bound of the TRF, "covers the input" proves that module's
    TRF is global. The search is a binary search over ``completion_order`` (about log2 of the
    number of modules probes of ``n_inputs`` inputs each); it assumes that once a module's
    output is global, every later one is too. That holds along a chain (later modules are
    functions of the global one), and fails when a module that completes later is not
    downstream of the global one: a side branch (e.g. a local branch computed after a global
    one and merged at the end), a module used only on another path, or a support that misses
    pixels by accident. Also, the candidates' centre units need not sit over the same input
    position (a strided or cropped map), and a map with a 1 x 1 grid (a vector, a pooled map)
    is global by construction. ``target=None``: the candidates are all modules, and the model
    output itself is not a candidate. ``redraw``: as ``measured_support``'s (one
    ``support_copy`` serves every probe of the search); the submodules of its held gates are
    not candidates (their pooled squeeze path is global, the gated map is not).
    """
    probed = _Probed.of(model, seed, options, redraw)
    return _first_global(probed, input_shape, target, int(n_inputs), int(seed), options)


def _first_global(
    probed: _Probed,
    input_shape: tuple[int, int, int],
    target: str | None,
    n_inputs: int,
    seed: int,
    options: ProbeOptions | None,
) -> str | None:
    def is_global(name: str) -> bool:
        layer = _layer_options(options, name, target)
        s = _measure(probed, input_shape, name, "center", n_inputs, seed, layer)
        return s.covers_input

    order = completion_order(probed.model, input_shape, target, probed.options(options))
    if probed.held is not None:
        order = [n for n in order if n == target or not probed.held.inside_gate(n)]
    if not order:
        return None
    if target is not None and not is_global(order[-1]):
        return None
    lo, hi = 0, len(order) - 1  # order[hi] is global (or, with target=None, unknown)
    if target is None and not is_global(order[hi]):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if is_global(order[mid]):
            hi = mid
        else:
            lo = mid + 1
    return order[lo]


def trf_or_support(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: str | None,
    position: str | tuple[int, int] = "center",
    seed: int = 0,
    *,
    n_inputs: int = 4,
    options: ProbeOptions | None = None,
) -> TheoreticalRF:
    """The exact TRF (``erf.rf.theory.theoretical_rf``: closed form or graph analysis) when it
    can be computed, else the measured support of the probed unit (``support_trf``), with why
    the analysis could not say in ``notes[0]`` and one log line. A support that covers the input
    gets ``global_from`` from ``first_global_layer``. The support is measured on one
    ``support_copy`` of ``model``, gates and spatial norm statistics held constant as the graph
    holds them (``convention`` and ``global_context`` say so); ``model`` is left as it was.

    The analysis fails with ValueError (torch.fx cannot trace the model: control flow as in
    torchvision detectors; token outputs of ViT/Swin; misaligned branches) or TypeError (an op
    without a rule).
    """
    try:
        trf = theoretical_rf(model, input_shape=input_shape, target=target)
        if isinstance(position, str) and position != "center" and not trf.is_global:
            raise ValueError("the graph analysis boxes grid units only, not prefix tokens")
        return trf
    except (ValueError, TypeError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if int(n_inputs) < 1:
        raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
    n_inputs, seed = int(n_inputs), int(seed)
    probed = _Probed.of(model, seed, options, redraw=True)
    support = _measure(probed, input_shape, target, position, n_inputs, seed, options)
    global_from = None
    if support.covers_input:
        global_from = _first_global(probed, input_shape, target, n_inputs, seed, options)
    log.warning("%s", support_note(support, why))
    return support_trf(support, why, global_from)


__all__ = [
    "OWN_WEIGHTS_CONVENTION",
    "SUPPORT_CONVENTION",
    "SUPPORT_PLAIN_CONVENTION",
    "SupportResult",
    "completion_order",
    "first_global_layer",
    "is_norm",
    "measured_support",
    "support_copy",
    "support_note",
    "support_trf",
    "trf_or_support",
]
