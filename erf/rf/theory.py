"""Theoretical receptive field (TRF) of a chain of layers (Araujo, Norris, Sim, Distill 2019).

Per axis, layer ``l`` has effective kernel ``k_l = d_l (K_l - 1) + 1`` (dilation applied),
stride ``s_l`` and left/top padding ``p_l``; with products over the layers before ``l``:

    size              r0 = 1 + sum_l (k_l - 1) * prod_{i<l} s_i
    effective stride  S0 = prod_l s_l
    effective padding P0 = sum_l p_l * prod_{i<l} s_i

Output unit ``u`` sees input pixels ``[-P0 + u S0, -P0 + u S0 + r0 - 1]`` (inclusive; may run
outside the input). All pairs are ``(rows, cols)`` in input pixels. The math is pure Python
(erf.rf.intervals); this module validates layer specs, reads module attributes to turn an
``nn.Sequential`` into specs, and ``theoretical_rf`` dispatches to the graph analysis
(erf.rf.graph) for anything that is not a plain chain.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from erf.rf.graph import graph_rf
from erf.rf.intervals import chain_1d, output_size
from erf.rf.trf import LayerRF, Pair, TheoreticalRF

# --------------------------------------------------------------------------- layer specs


@dataclass(frozen=True)
class _Spec:
    """One validated layer: raw kernel, stride, left padding, dilation, right padding, ceil."""

    name: str
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    pad_right: Pair
    ceil_mode: bool = False

    @property
    def eff_kernel(self) -> Pair:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))


def _pair(value: Any, where: str, field: str, minimum: int) -> Pair:
    """``int`` or ``(rows, cols)`` pair of ints ``>= minimum``, else ValueError naming the field."""

    def is_int(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(value):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(map(is_int, value))):
        raise ValueError(f"{where}: {field} must be an int or a (rows, cols) pair, got {value!r}")
    pair = (int(value[0]), int(value[1]))
    if min(pair) < minimum:
        raise ValueError(f"{where}: {field} must be >= {minimum}, got {value!r}")
    return pair


def _spec(
    index: int,
    name: str,
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any = 1,
    pad_right: Any = None,
    ceil_mode: bool = False,
) -> _Spec:
    where = f"layer {index} ({name!r})"
    pad = _pair(padding, where, "padding", 0)
    return _Spec(
        name=name,
        kernel=_pair(kernel, where, "kernel", 1),
        stride=_pair(stride, where, "stride", 1),
        padding=pad,
        dilation=_pair(dilation, where, "dilation", 1),
        pad_right=pad if pad_right is None else _pair(pad_right, where, "pad_right", 0),
        ceil_mode=bool(ceil_mode),
    )


def _specs_from_tuples(layers: Sequence[Any]) -> list[_Spec]:
    """``(kernel, stride, padding[, dilation])`` tuples -> specs, named by their index."""
    specs = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (3, 4):
            raise ValueError(
                f"layer {i}: expected (kernel, stride, padding[, dilation]), got {layer!r}"
            )
        specs.append(_spec(i, str(i), *layer))
    return specs


def _pointwise_types() -> tuple[type, ...]:
    """Spatially 1x1 modules. Norms' spatial statistics are treated as constants (as in the TF
    receptive_field library): GroupNorm/InstanceNorm, or BatchNorm in train mode, strictly make
    every output depend on the whole input."""
    return (
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
        nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
        nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.BatchNorm2d, nn.GroupNorm,
        nn.InstanceNorm2d, nn.LocalResponseNorm,
    )  # fmt: skip


def _flatten(module: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of nested Sequential/ModuleList containers in forward order, with module paths.

    Reads ``_modules`` (what ``Sequential.forward`` iterates) rather than ``named_children``,
    which skips a module instance that appears twice (e.g. ``[conv, relu] * 3``).
    """
    for name, child in module._modules.items():
        if child is None:
            continue
        path = f"{prefix}{name}"
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            yield from _flatten(child, path + ".")
        else:
            yield path, child


def _module_spec(index: int, path: str, m: Any) -> _Spec:
    """Spec of one leaf module; TypeError for anything the chain analysis cannot handle."""
    if isinstance(m, nn.Conv2d):
        k, s, d = m.kernel_size, m.stride, m.dilation
        if m.padding == "same":  # PyTorch: total d(k-1), left total // 2, rest on the right
            total = [di * (ki - 1) for ki, di in zip(k, d, strict=True)]
            left, right = [t // 2 for t in total], [t - t // 2 for t in total]
            return _spec(index, path, k, s, tuple(left), d, pad_right=tuple(right))
        pad = 0 if m.padding == "valid" else m.padding
        return _spec(index, path, k, s, pad, d)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = m.kernel_size if m.stride is None else m.stride
        d = getattr(m, "dilation", 1)  # AvgPool2d has none
        return _spec(index, path, m.kernel_size, stride, m.padding, d, ceil_mode=m.ceil_mode)
    if isinstance(m, _pointwise_types()):
        return _spec(index, path, 1, 1, 0)
    raise TypeError(
        f"module {path!r} of type {type(m).__name__} is not supported by the chain analysis of "
        "theoretical_rf (Conv2d, MaxPool2d, AvgPool2d and pointwise/normalisation layers only)"
    )


def _specs_from_module(model: Any) -> list[_Spec]:
    if not isinstance(model, (nn.Sequential, nn.ModuleList)):
        raise TypeError(
            f"theoretical_rf: model of type {type(model).__name__} is not supported by the chain "
            "analysis; pass an nn.Sequential or a list of (kernel, stride, padding[, dilation])"
        )
    return [_module_spec(i, path, m) for i, (path, m) in enumerate(_flatten(model))]


def _hw(input_shape: Sequence[int] | None) -> Pair | None:
    if input_shape is None:
        return None
    if len(input_shape) not in (2, 3):
        raise ValueError(f"input_shape must be (C, H, W) or (H, W), got {input_shape!r}")
    return int(input_shape[-2]), int(input_shape[-1])


# --------------------------------------------------------------------------- entry point


def theoretical_rf(
    model_or_layers: Any, input_shape: Sequence[int] | None = None, target: str | None = None
) -> TheoreticalRF:
    """TRF of a chain (closed form) or of any ``nn.Module`` (graph analysis, erf.rf.graph).

    Args:
        model_or_layers: a list/tuple of ``(kernel, stride, padding[, dilation])`` tuples (each
            entry an int or a ``(rows, cols)`` pair; padding is the left/top padding), or an
            ``nn.Sequential``/``nn.ModuleList`` (nested ones are flattened) of Conv2d, MaxPool2d,
            AvgPool2d and pointwise layers: closed form. Any other ``nn.Module`` (or a
            Sequential with other layers, or a ``target``): graph analysis with torch.fx.
        input_shape: ``(C, H, W)`` (or ``(H, W)`` for the closed form); optional for the closed
            form (gives every layer its PyTorch output shape), required for graph analysis.
        target: graph analysis: a module path as in ``model.named_modules()`` (called once) or
            an fx node name; None = the model output. Closed form: a layer name (``.at``).
    """
    if isinstance(model_or_layers, (list, tuple)):
        rf = _closed_form(_specs_from_tuples(model_or_layers), input_shape)
        return rf if target is None else rf.at(str(target))
    if isinstance(model_or_layers, nn.ModuleList) or (
        isinstance(model_or_layers, nn.Sequential) and target is None and _is_chain(model_or_layers)
    ):
        rf = _closed_form(_specs_from_module(model_or_layers), input_shape)
        return rf if target is None else rf.at(str(target))
    if not isinstance(model_or_layers, nn.Module):
        raise TypeError(
            f"theoretical_rf: expected an nn.Module or a list of (kernel, stride, padding"
            f"[, dilation]) tuples, got {type(model_or_layers).__name__}"
        )
    if input_shape is None:
        raise ValueError(
            f"input_shape is needed for graph analysis of {type(model_or_layers).__name__} "
            "(pass (C, H, W))"
        )
    return graph_rf(model_or_layers, input_shape).for_target(target)


def _is_chain(model: Any) -> bool:
    """True when every leaf of the (nested) Sequential has a closed-form spec."""
    try:
        _specs_from_module(model)
    except TypeError:
        return False
    return True


def _closed_form(specs: list[_Spec], input_shape: Sequence[int] | None) -> TheoreticalRF:
    """Closed-form TRF of validated layer specs (see the module docstring)."""
    hw = _hw(input_shape)
    axes = [
        chain_1d(
            [s.eff_kernel[ax] for s in specs],
            [s.stride[ax] for s in specs],
            [s.padding[ax] for s in specs],
        )
        for ax in range(2)
    ]
    layers, shape = [], hw
    for i, spec in enumerate(specs):
        if shape is not None:
            new = tuple(
                output_size(
                    shape[ax],
                    spec.kernel[ax],
                    spec.stride[ax],
                    spec.padding[ax],
                    spec.dilation[ax],
                    spec.pad_right[ax],
                    spec.ceil_mode,
                )  # fmt: skip
                for ax in range(2)
            )
            if min(new) < 1:
                raise ValueError(
                    f"layer {i} ({spec.name!r}): input of size {shape} is too small "
                    f"(output size would be {new})"
                )
            shape = new
        (r0, s0, p0), (r1, s1, p1) = axes[0][i], axes[1][i]
        layers.append(
            LayerRF(
                name=spec.name,
                kernel=spec.eff_kernel,
                stride=spec.stride,
                padding=spec.padding,
                size=(r0, r1),
                eff_stride=(s0, s1),
                eff_padding=(p0, p1),
                out_shape=shape,
            )
        )
    last = layers[-1] if layers else None
    return TheoreticalRF(
        size=last.size if last else (1, 1),
        stride=last.eff_stride if last else (1, 1),
        padding=last.eff_padding if last else (0, 0),
        layers=tuple(layers),
        input_shape=hw,
        out_shape=shape,
        source="closed_form",
    )


__all__ = ["LayerRF", "TheoreticalRF", "theoretical_rf"]
