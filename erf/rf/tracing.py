"""Tracing a model with torch.fx and propagating shapes through the trace.

``trace_model`` keeps modules with a rule (erf.rf.builder) and other torch.nn modules as
leaves and records which node each module call returned; ``propagate_shapes`` stores every
node's shape (and small non-tensor values such as sizes) in its ``meta``, on the meta device
when the model can run there; ``eval_mode`` wraps both.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from erf.rf.builder import module_rule

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class _Tracer(fx.Tracer):
    """Keeps modules with a rule (and other torch.nn modules) as leaves, traces through the
    rest, and records which node each module call returned (``module_calls``)."""

    def __init__(self) -> None:
        super().__init__()
        self.module_calls: dict[str, list[str]] = {}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _CONTAINERS) and type(m).__module__.startswith("torch.nn"):
            return False
        if module_rule(m) is not None:
            return True
        return type(m).__module__.startswith("torch.nn")

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.module_calls.setdefault(self.path_of_module(m), []).append(out.node.name)
        return out


class _ValueProp(ShapeProp):
    """ShapeProp that also keeps small non-tensor results (ints, sizes, slices) in
    ``node.meta["erf_value"]`` so rules can read shape arithmetic done in forward."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if _is_plain(result):
            n.meta["erf_value"] = result
        return result


def _is_plain(v: Any) -> bool:
    if isinstance(v, (bool, int, float, str, slice, torch.dtype, torch.device)) or v is None:
        return True
    if v is Ellipsis:
        return True
    if isinstance(v, (tuple, list)):  # torch.Size included
        return all(_is_plain(x) for x in v)
    return False


def trace_model(model: nn.Module) -> tuple[fx.GraphModule, dict[str, list[str]]]:
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # any tracer failure becomes one clear error
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx (symbolic_trace): "
            f"{type(e).__name__}: {e}"
        ) from e
    return fx.GraphModule(tracer.root, graph, type(model).__name__), tracer.module_calls


def propagate_shapes(
    gm: fx.GraphModule, model: nn.Module, input_shape: tuple[int, int, int]
) -> None:
    """Shapes of every node for an input of ``(1, *input_shape)``: first on the meta device
    (no arithmetic, so the cost does not grow with the input size), else by running the model
    once on zeros (no grad), e.g. when forward mixes in unregistered CPU tensors."""
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    try:
        _run_shape_prop(gm, torch.zeros(1, *input_shape, dtype=dtype, device="meta"), meta=True)
        return
    except Exception:  # any failure on meta: fall back to real tensors
        for n in gm.graph.nodes:
            n.meta.pop("tensor_meta", None)
            n.meta.pop("erf_value", None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, *input_shape, dtype=dtype, device=device)
    try:
        _run_shape_prop(gm, x, meta=False)
    except Exception as e:
        cause = e.__cause__ or e
        raise ValueError(
            f"running {type(model).__name__} on an input of shape {tuple(x.shape)} failed: "
            f"{type(cause).__name__}: {cause}"
        ) from e


class _ShapeRunner(nn.Module):
    """Holds the trace so ``torch.func.functional_call`` can swap in meta parameters."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, x: torch.Tensor) -> None:
        _ValueProp(self.gm).propagate(x)


def _run_shape_prop(gm: fx.GraphModule, x: torch.Tensor, meta: bool) -> None:
    runner = _ShapeRunner(gm)
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints errors
        if not meta:
            runner(x)
            return
        state = {**dict(runner.named_parameters()), **dict(runner.named_buffers())}
        fake = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
        torch.func.functional_call(runner, fake, (x,))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for tracing and shape propagation; every module's flag restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


__all__ = ["eval_mode", "propagate_shapes", "trace_model"]
