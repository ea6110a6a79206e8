"""Many random networks in one pass: the ERF of M weight draws of one architecture.

Random-weight ERF studies (Luo et al. 2016) average over many weight draws. Instead of M
probes one after another, the M networks are stacked (``torch.func.stack_module_state``) and
evaluated together with ``torch.func.vmap`` over ``torch.func.functional_call``: one forward
and one backward pass per batch serve every draw. vmap is generic (any module whose forward
vmap can batch: conv stacks, residual nets, batch norm in eval mode, ...); for convolutions
its batching rule is exactly the grouped-convolution rewrite (M networks as one conv with
``groups=M``), so nothing is lost against writing that by hand for ConvStack only. On CPU,
where grouped convolutions are slower than plain ones, the default is a loop over the draws
inside each batch instead (``vectorize``).

Draw ``m`` is the network ``make_model(seed + m)`` probed on the random inputs of seed
``seed + m``: the result equals ``measure_erf(make_model(seed + m), ..., seed=seed + m)``;
the float64 sums are added in the same order, and the vmapped gradient differs from the
plain one only by the rounding of the grouped-convolution kernel (the loop is bitwise
measure_erf). Knows nothing of Hydra or files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from erf.device import resolve_device
from erf.probe.accumulate import Accumulator
from erf.probe.batches import with_twin
from erf.probe.forward import forward_to, probing
from erf.probe.inputs import input_batches
from erf.probe.layout import graph_spatial_dims, select_output
from erf.probe.measure import ProbeInterrupted, reduce_gradient
from erf.probe.options import BATCHED_SEEDINGS, SPEED_KEYS, ProbeOptions
from erf.result import ERFResult


class DrawsInterrupted(ProbeInterrupted):
    """The many-draws probe stopped early on request; ``partials`` holds one partial result
    per draw (``partial`` is the first, as for ``ProbeInterrupted``)."""

    def __init__(self, partials: list[ERFResult]) -> None:
        super().__init__(partials[0])
        self.partials = partials


class _UpTo(nn.Module):
    """``forward_to(model, x, target)`` as a module, so ``functional_call`` can swap weights."""

    def __init__(self, model: nn.Module, target: str | None, output: str | int | None) -> None:
        super().__init__()
        self.model = model
        self.target = target
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        where = "the model output" if self.target is None else f"module {self.target!r}"
        return select_output(forward_to(self.model, x, self.target), self.output, where)


def _same_architecture(models: Sequence[nn.Module]) -> None:
    """ValueError unless every model has the parameters and buffers (names, shapes) of the first."""

    def layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
        tensors = [*model.named_parameters(), *model.named_buffers()]
        return [(name, tuple(t.shape)) for name, t in tensors]

    first = layout(models[0])
    for m, model in enumerate(models[1:], start=1):
        if layout(model) != first:
            raise ValueError(
                f"draw {m} has other parameters or shapes than draw 0: make_model(seed) must "
                "build the same architecture for every seed"
            )


def _draw_batches(
    inputs: str | Iterable,
    input_shape: tuple[int, int, int],
    n_samples: int,
    batch_size: int,
    seeds: Sequence[int],
    start: int,
):
    """Batches ``[M, B, C, H, W]``: draw m's random inputs of seed ``seeds[m]``, or, for an
    iterable source, the same batch for every draw."""
    if isinstance(inputs, str):
        streams = [
            input_batches(inputs, input_shape, n_samples, batch_size, s, start=start) for s in seeds
        ]
        yield from (torch.stack(xs) for xs in zip(*streams))
        return
    for x in input_batches(inputs, input_shape, n_samples, batch_size, start=start):
        yield x.unsqueeze(0).expand(len(seeds), *x.shape)


def measure_erf_draws(
    make_model: Callable[[int], nn.Module],
    input_shape: tuple[int, int, int],
    *,
    draws: int,
    target: str | None = None,
    position: str | tuple[int, int] = "center",
    options: ProbeOptions | None = None,
    resume: Sequence[ERFResult] | None = None,
    on_checkpoint: Callable[[list[ERFResult]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    vectorize: bool | None = None,
    **settings: Any,
) -> list[ERFResult]:
    """ERFs of ``draws`` random networks of one architecture, measured in one batched pass.

    Draw ``m`` (0-based) is ``make_model(seed + m)`` probed on inputs of seed ``seed + m``:
    result ``m`` equals ``measure_erf(make_model(seed + m), input_shape, seed=seed + m, ...)``
    with the same options, up to rounding of the gradient (vmap computes the M convolutions as
    one grouped convolution). With an iterable ``inputs`` (e.g. a DataLoader) every draw sees
    the same batches.

    Each forward/backward pass holds ``draws * batch_size`` inputs; lower ``batch_size`` when
    memory is short. ``options`` (``ProbeOptions``; or its settings by name in ``settings``,
    e.g. ``seed=0, n_samples=32``) are those of ``erf.measure_erf``, except the speed settings
    and ``batch_size="auto"``, which are refused; ``resume`` is one partial result per draw
    (from ``on_checkpoint``, which receives the list of partial results, or from
    ``DrawsInterrupted.partials``).

    ``vectorize``: True runs the draws as one vmapped (grouped-convolution) network, False as
    a loop over the draws inside each batch (the plain kernels of ``measure_erf``, so the
    maps are bitwise its maps); None (default) picks vmap on CUDA and the loop elsewhere. On
    CPU, grouped convolutions cost more per FLOP than plain ones (1.2-1.6x, measured with
    torch 2.14 / oneDNN), and there are no kernel launches to save; on a GPU one vmapped
    pass fills the device where M small passes would not.

    Returns:
        One ERFResult per draw, in draw order; ``meta`` holds ``seed`` (= seed + m), ``draw``
        (= m) and ``draws``, and ``wall_time_s`` is the time of the whole pass.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    options = ProbeOptions.of(options, **settings)
    options.refuse((*SPEED_KEYS, "batch_size"), "the many-draws probe")
    if options.seeding in BATCHED_SEEDINGS:  # one backward per channel and draw: not here
        options.refuse(("seeding",), "the many-draws probe")
    n_samples, batch_size, seed = options.n_samples, int(options.batch_size), options.seed
    reduce, inputs, dtype = options.reduce, options.inputs, options.dtype
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
    if resume is not None and len(resume) != draws:
        raise ValueError(f"resume holds {len(resume)} partial results for {draws} draws")
    seeds = [int(seed) + m for m in range(draws)]
    dev = resolve_device(options.device)
    if vectorize is None:
        vectorize = dev.type == "cuda"
    n_batches = -(-int(n_samples) // int(batch_size))
    show = n_batches > 1 if options.progress is None else options.progress

    accs = []
    for m, s in enumerate(seeds):
        fingerprint = {
            "input_shape": list(input_shape),
            "target": target,
            "position": position if isinstance(position, str) else [int(v) for v in position],
            **options.fingerprint(),  # the speed settings are refused: all off
            "seed": s,
        }
        accs.append(Accumulator(fingerprint, dev, None if resume is None else resume[m]))
    if len({acc.seen for acc in accs}) > 1:
        raise ValueError("the partial results to resume from have different sample counts")

    def results() -> list[ERFResult]:
        return [acc.result() for acc in accs]

    models = [make_model(s) for s in seeds]
    _same_architecture(models)
    start = time.perf_counter()
    with ExitStack() as stack:
        for model in models:
            stack.enter_context(probing(model, dev, dtype))
        if vectorize:
            params, buffers = stack_module_state(models)
            params = {f"model.{k}": v for k, v in params.items()}
            buffers = {f"model.{k}": v for k, v in buffers.items()}
            up_to = _UpTo(models[0], target, options.output)
            batched = vmap(lambda p, b, x: functional_call(up_to, (p, b), (x,)))
        bar = stack.enter_context(
            tqdm(
                total=int(n_samples),
                initial=accs[0].seen,
                disable=not show,
                desc=f"ERF probe, {draws} draws",
                unit="img",
                leave=False,
            )
        )
        batches = _draw_batches(
            inputs, input_shape, int(n_samples), int(batch_size), seeds, accs[0].seen
        )

        def input_gradient(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            """dx of a unit gradient at the probed unit of y ([..., c, h, w])."""
            if accs[0].grid is None:  # the first output fixes the probed unit
                where = "the model output" if target is None else f"module {target!r}"
                grid = options.read_grid(
                    y[0] if vectorize else y, x.shape[-2:], where=where,
                    module=dict(models[0].named_modules()).get(target, models[0]), model=models[0],
                    graph_dims=lambda: graph_spatial_dims(models[0], x.shape[-3:], target),
                )  # fmt: skip
                for acc in accs:
                    acc.set_grid(grid)
            seed_grad = accs[0].seed(y)
            return torch.autograd.grad(y, x, grad_outputs=seed_grad)[0]

        for batch_number, x in enumerate(batches, start=1):
            x, n = with_twin(x.to(device=dev, dtype=dtype), dim=1)  # [M, B, C, H, W]
            if vectorize:  # all draws at once: input [M, B, C, H, W], output [M, B, c, h, w]
                x.requires_grad_(True)
                grad = input_gradient(batched(params, buffers, x), x).flatten(0, 1)
                per_sample = reduce_gradient(grad, reduce).to(torch.float64)
                per_sample = per_sample.view(draws, x.shape[1], *per_sample.shape[1:])[:, :n]
            else:  # one draw after the other (one network's activations in memory at a time)
                maps = []
                for model, x_m in zip(models, x.unbind(0)):
                    x_m.requires_grad_(True)
                    where = "the model output" if target is None else f"module {target!r}"
                    y_m = select_output(forward_to(model, x_m, target), options.output, where)
                    grad = input_gradient(y_m, x_m)
                    maps.append(reduce_gradient(grad, reduce).to(torch.float64)[:n])
                per_sample = torch.stack(maps)
            for m, acc in enumerate(accs):
                finite = torch.isfinite(per_sample[m]).flatten(1).all(1)
                bad = int((~finite).sum())
                if bad and options.on_nonfinite == "raise":
                    raise FloatingPointError(f"draw {m}: {bad} sample(s) gave NaN/Inf gradients")
                acc.add(per_sample[m], finite)
            bar.update(n)
            stop = should_stop is not None and should_stop()
            every = options.checkpoint_every
            if on_checkpoint is not None and (stop or batch_number % every == 0):
                on_checkpoint(results())
            if stop:
                raise DrawsInterrupted(results())
    if accs[0].total is None:
        raise ValueError("the input source yielded no batches")
    out = results()
    wall = time.perf_counter() - start
    for m, result in enumerate(out):
        result.meta.update(
            device=str(dev),
            batch_size=int(batch_size),
            wall_time_s=wall,
            draw=m,
            draws=draws,
            vectorized=bool(vectorize),
        )
    return out
