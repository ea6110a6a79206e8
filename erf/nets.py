"""Luo et al. 2016's network family: plain conv stacks with named inits and activations."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
INITS = ("uniform", "random", "kaiming")
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def _per_layer(name: str, value: int | Sequence[int], depth: int) -> list[int]:
    """Broadcast an int to ``depth`` layers, or check a per-layer list has ``depth`` entries."""
    values = [int(value)] * depth if isinstance(value, int) else [int(v) for v in value]
    if len(values) != depth:
        raise ValueError(f"{name} has {len(values)} entries but depth is {depth}")
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be >= 1 for every layer, got {values}")
    return values


class ConvStack(nn.Sequential):
    """``depth`` k×k convolutions with "same" padding, as in Luo et al. 2016.

    Layer ``i`` (0-based) is ``Conv2d(k, stride[i], dilation[i], padding=dilation[i]*(k-1)//2)``,
    then the activation, then (if ``i in pool_at``) a ``pool_size`` pooling with stride
    ``pool_size``. At stride 1 the spatial size is preserved (odd ``kernel_size``).

    Args:
        depth: number of conv layers (>= 1).
        kernel_size: odd kernel side k.
        channels: channels of every conv output.
        in_channels: channels of the input (default: ``channels``).
        activation: "none", "relu", "tanh" or "sigmoid" (after every conv, the last included).
        init: "uniform" (every weight of a layer equals 1/fan_in: each unit is the mean of its
            window, so deep stacks neither overflow nor underflow; Luo's "Uniform"),
            "random" (i.i.d. N(0, weight_std²); default std 1/sqrt(fan_in)), or
            "kaiming" (He normal, fan_in, ReLU gain). Biases are zero in every init.
        dilation: an int or one dilation per layer (e.g. [1, 2, 4, 8]).
        stride: an int or one stride per layer (subsampling by strided convolution).
        pool_at: layer indices after which a pooling layer subsamples.
        pool: "avg" or "max".
        pool_size: pooling window and stride.
        weight_std: std of the "random" init (default 1/sqrt(fan_in)).
        bias: whether convs have a (zero-initialised) bias.
        seed: seeds the random inits (a private generator; the global RNG is untouched).
    """

    def __init__(
        self,
        depth: int,
        kernel_size: int = 3,
        channels: int = 1,
        in_channels: int | None = None,
        activation: str = "none",
        init: str = "uniform",
        dilation: int | Sequence[int] = 1,
        stride: int | Sequence[int] = 1,
        pool_at: Sequence[int] = (),
        pool: str = "avg",
        pool_size: int = 2,
        weight_std: float | None = None,
        bias: bool = False,
        seed: int = 0,
    ) -> None:
        if int(depth) < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd and >= 1 for 'same' padding, got {kernel_size}"
            )
        if channels < 1 or (in_channels is not None and in_channels < 1):
            raise ValueError("channels and in_channels must be >= 1")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {list(ACTIVATIONS)}")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; allowed: {list(INITS)}")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; allowed: {list(POOLS)}")
        bad_pools = [i for i in pool_at if not 0 <= int(i) < depth]
        if bad_pools:
            raise ValueError(f"pool_at indices {bad_pools} are outside 0..{depth - 1}")
        depth = int(depth)
        dilations = _per_layer("dilation", dilation, depth)
        strides = _per_layer("stride", stride, depth)
        pool_layers = {int(i) for i in pool_at}
        c_in = channels if in_channels is None else in_channels

        layers: list[nn.Module] = []
        for i in range(depth):
            d = dilations[i]
            layers.append(
                nn.Conv2d(
                    c_in if i == 0 else channels,
                    channels,
                    kernel_size,
                    stride=strides[i],
                    padding=d * (kernel_size - 1) // 2,
                    dilation=d,
                    bias=bias,
                )
            )
            if ACTIVATIONS[activation] is not None:
                layers.append(ACTIVATIONS[activation]())
            if i in pool_layers:
                layers.append(POOLS[pool](pool_size, stride=pool_size))
        super().__init__(*layers)
        self.depth = depth
        self.init = init
        self.activation = activation
        initialise(self, init, weight_std=weight_std, seed=seed)


def initialise(
    model: nn.Module, init: str, *, weight_std: float | None = None, seed: int = 0
) -> None:
    """Re-initialise every Conv2d of ``model`` in place with a named init (see ConvStack)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {list(INITS)}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
            w = conv.weight
            fan_in = w.shape[1] * w.shape[2] * w.shape[3]
            if init == "uniform":
                w.fill_(1.0 / fan_in)
            else:
                std = (
                    math.sqrt(2.0 / fan_in)
                    if init == "kaiming"
                    else (weight_std if weight_std is not None else 1.0 / math.sqrt(fan_in))
                )
                w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64).to(w.dtype) * std)
            if conv.bias is not None:
                conv.bias.zero_()
