"""Theoretical RF of arbitrary PyTorch graphs: exact interval back-propagation over torch.fx.

The model is traced with torch.fx (known spatial/pointwise modules stay leaves, containers and
other user modules are traced through) and ``ShapeProp`` runs it on a zero input of
``(1, C, H, W)`` to get every node's shape (on the meta device, so nothing is computed; a real
forward if the model cannot run there). A forward pass over the graph then classifies each node:

- ``local``: a tensor whose (rows, cols) are tracked through permutes/reshapes; each local node
  has back-edges ``(input node, rule)`` where ``rule`` maps an inclusive box of its units
  ``((r0, r1), (c0, c1))`` to the box of the input node's units it reads (the one-axis rules are
  the pure functions of erf.rf.intervals). Unknown ops on a local path raise TypeError.
- ``global``: every unit sees the whole input (adaptive pooling to 1, spatial means, softmax over
  a spatial dim, flatten + Linear, anything downstream of those).
- ``const``: does not depend on the input (parameters, shapes, ``zeros_like``).
- ``tokens``: spatial dims flattened into tokens in a way no rule follows; ValueError on use.
- ``refused``: an op no rule answers for every unit (a zero-padded unit beside a pooled map);
  ValueError on use of it or what follows it, the rest of the graph unaffected.

The span of an output unit is the box reached at the input by one reverse-topological pass
(hull at every node; exact because every rule is monotone). Multi-input nodes (add, mul, cat along
channels, ...) must be aligned (Araujo et al. 2019): all branches agree on the effective stride and
on the centre of the span, checked at two units; else ValueError "not aligned". A global branch
that gates a local one (squeeze-excitation: a per-channel scalar multiplies the map) is not a
branch: the TRF is the local one and ``global_context`` is set. Conventions: (rows, cols), units
and pixels inclusive, the centre of an h x w map is (h // 2, w // 2), eval-mode BatchNorm.

This module holds the entry points. The pieces, in import order: erf.rf.boxes (box rules) and
erf.rf.node_values (what is recorded per node); erf.rf.op_names (known function and method
names); erf.rf.builder_core, erf.rf.tensor_rules and erf.rf.spatial_rules (the rules), put
together by erf.rf.builder (the classification pass); erf.rf.tracing (torch.fx trace and
shapes); erf.rf.graph_result (``GraphRF``: back-propagation, alignment, paths, layer table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import fx, nn

from erf.rf.graph_result import GraphRF, NodeRF
from erf.rf.tracing import eval_mode, propagate_shapes, trace_model


def graph_rf(model: nn.Module, input_shape: Sequence[int]) -> GraphRF:
    """Trace ``model`` with torch.fx and propagate shapes for zeros of ``(1, *input_shape)``
    (both in eval mode, no grad; training flags restored), then classify every node.

    Args:
        model: any ``nn.Module`` taking one ``[B, C, H, W]`` tensor (or ``[B, C, L]`` for
            sequences, ``[B, C, D, H, W]`` for volumes: boxes then have one interval per axis).
        input_shape: ``(C, H, W)`` (``(C, L)``, ``(C, D, H, W)``).

    Raises:
        ValueError: the model cannot be traced or run at that shape.
        TypeError: an op on a path from the input has no rule (names the op and its node).
    """
    if len(input_shape) not in (2, 3, 4):
        raise ValueError(
            "input_shape must be (C, L), (C, H, W) or (C, D, H, W) for graph analysis, got "
            f"{input_shape!r}"
        )
    shape = tuple(int(s) for s in input_shape)
    with eval_mode(model):
        gm, calls = trace_model(model)
        propagate_shapes(gm, model, shape)
    return GraphRF(model, gm, calls, shape)


def truncated_model(model: nn.Module, targets: Sequence[str | None]) -> fx.GraphModule:
    """A torch.fx trace of ``model`` that returns the outputs of ``targets`` (module paths, the
    first call of each; None = the model output) as a tuple and computes nothing after them:
    a forward pass that stops at the targets without hooks, which ``torch.compile`` can fuse.
    The trace shares the model's modules (and so its parameters).

    Raises:
        ValueError: the model cannot be traced, or a target is not a module called in forward.
    """
    with eval_mode(model):
        gm, calls = trace_model(model)
    nodes = {n.name: n for n in gm.graph.nodes}
    output = next(n for n in gm.graph.nodes if n.op == "output")
    outs = []
    for t in targets:
        if t is None:
            outs.append(output.args[0])
        elif t in calls:
            outs.append(nodes[calls[t][0]])
        else:
            raise ValueError(f"module {t!r} is not called with a tensor result in forward")
    with gm.graph.inserting_before(output):
        gm.graph.output(tuple(outs))
    gm.graph.erase_node(output)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> list[dict[str, Any]]:
    """Targetable layers: one row per module (``named_modules`` path, called once in forward)
    whose output is a spatial [C, H, W] map, with keys name, type, out_shape ([C, H, W]),
    trf_size ([rows, cols]), trf_stride (ints, or floats after upsampling), trf_padding,
    is_global, and note (the error text when the TRF is undefined, e.g. misaligned branches)."""
    return graph_rf(model, input_shape).layer_table()


__all__ = ["GraphRF", "NodeRF", "graph_rf", "layer_table", "truncated_model"]
