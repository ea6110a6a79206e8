"""Names of the torch functions and tensor methods the graph analysis knows, grouped by rule.

A call_function target has a rule only when it is the function of that name in torch,
torch.nn.functional, operator, builtins, math or torchvision.ops (``function_name``); in-place
methods share the rule of their out-of-place form (``method_name``).
"""

from __future__ import annotations

import builtins
import functools
import math
import operator
from typing import Any

import torch
import torch.nn.functional as F


@functools.cache
def _function_homes() -> tuple[Any, ...]:
    """Namespaces whose functions have rules by name (torchvision.ops: stochastic_depth)."""
    homes: tuple[Any, ...] = (operator, torch, F, torch._C._nn, torch.Tensor, builtins, math)
    try:  # torchvision is optional: its ops get rules when it is installed
        import torchvision.ops

        homes += (torchvision.ops,)
    except ImportError:  # pragma: no cover
        pass
    return homes


def function_name(target: Any) -> str | None:
    """Canonical name of a call_function target, or None when it is not torch/operator's own."""
    name = getattr(target, "__name__", None)
    if name is None:
        return None
    if any(getattr(home, name, None) is target for home in _function_homes()):
        return name
    return None


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def method_name(name: str) -> str:
    """In-place methods share the rule of their out-of-place form (``relu_`` -> ``relu``)."""
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


POINTWISE = _words(
    """relu relu6 leaky_relu elu selu celu gelu silu mish hardswish hardsigmoid hardtanh
    sigmoid tanh softplus softsign logsigmoid tanhshrink threshold rrelu prelu hardshrink
    softshrink exp log log1p log2 expm1 sqrt rsqrt abs neg reciprocal square sin cos erf
    sign floor ceil round nan_to_num dropout dropout1d dropout2d dropout3d alpha_dropout
    feature_alpha_dropout batch_norm contiguous clone detach float double half bfloat16 to
    type type_as requires_grad stochastic_depth local_response_norm channel_shuffle
    native_channel_shuffle pos invert not_ logical_not isnan isfinite"""
)

ELEMENTWISE = _words(
    """add sub mul div true_divide floor_divide truediv floordiv mod remainder pow maximum
    minimum fmax fmin where lerp addcmul addcdiv atan2 iadd isub imul itruediv ifloordiv
    rsub and_ or_ xor eq ne lt le gt ge logical_and logical_or clamp clip clamp_min
    clamp_max masked_fill"""
)

REDUCTIONS = _words(
    """mean sum amax amin max min std var norm logsumexp prod median nanmean nansum argmax
    argmin all any count_nonzero"""
)

DIM_POINTWISE = _words("""softmax log_softmax softmin normalize""")

RESHAPES = _words("""flatten reshape view unflatten squeeze unsqueeze view_as reshape_as""")

CONST_OPS = _words(
    """size dim numel zeros_like ones_like empty_like full_like rand_like randn_like
    randint_like new_zeros new_ones new_empty new_full new_tensor is_contiguous get_device
    _assert len is_floating_point"""
)

META_ATTRS = _words("""shape ndim dtype device is_cuda requires_grad layout""")


__all__ = [
    "CONST_OPS",
    "DIM_POINTWISE",
    "ELEMENTWISE",
    "META_ATTRS",
    "POINTWISE",
    "RESHAPES",
    "REDUCTIONS",
    "function_name",
    "method_name",
]
