"""Luo et al. 2016's network family: plain conv stacks with named inits and activations."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from erf.checks import (
    MAX_CHANNELS,
    MAX_KERNEL,
    MAX_LAYERS,
    check_int,
    check_positive,
    check_weights,
)

ACTIVATIONS = {"none": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
INITS = ("uniform", "random", "kaiming", "rim_heavy")
DROPOUT_MODES = ("eval", "mask")
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
# The layers of a stack over 1, 2 or 3 spatial axes (sequences, images, volumes).
DIMS = (1, 2, 3)
CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_TYPES = tuple(CONVS.values())
POOLS_BY_DIMS = {
    1: {"avg": nn.AvgPool1d, "max": nn.MaxPool1d},
    2: POOLS,
    3: {"avg": nn.AvgPool3d, "max": nn.MaxPool3d},
}
# torch.nn.Conv2d's padding modes: what a "same"-padded conv reads past the border.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(mode: str) -> None:
    """A one-line ValueError unless ``mode`` is one of ``PADDING_MODES``."""
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode={mode!r} is not allowed: expected one of {PADDING_MODES}")


def set_padding_mode(model: nn.Module, mode: str) -> nn.Module:
    """Set ``padding_mode`` of every ``nn.Conv2d`` of ``model`` that pads (in place; returned
    for chaining). Pooling layers keep their own padding (a max pool pads with -inf)."""
    check_padding_mode(mode)
    for conv in model.modules():
        pads = getattr(conv, "padding", 0)
        if isinstance(conv, nn.Conv2d) and (pads == "same" or (pads != "valid" and any(pads))):
            conv.padding_mode = mode
    return model


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
    ``pool_size``. At stride 1 the spatial size is preserved (odd ``kernel_size``). With
    ``dims=1`` the layers are Conv1d / pool1d (a sequence model, inputs ``(C, L)``), with
    ``dims=3`` Conv3d / pool3d (a volume model, inputs ``(C, D, H, W)``).

    Args:
        depth: number of conv layers (>= 1).
        kernel_size: odd kernel side k.
        channels: channels of every conv output.
        in_channels: channels of the input (default: ``channels``).
        activation: "none", "relu", "tanh" or "sigmoid" (after every conv, the last included).
        init: "uniform" (every weight of a layer equals 1/fan_in: each unit is the mean of its
            window, so deep stacks neither overflow nor underflow; Luo's "Uniform"),
            "random" (i.i.d. N(0, weight_std²); default std 1/sqrt(fan_in)),
            "kaiming" (He normal, fan_in, ReLU gain), or "rim_heavy" ("random" with the
            variance moved from the kernel centre to its rim; ``rim_heavy_profile``).
            Biases are zero in every init.
        dilation: an int or one dilation per layer (e.g. [1, 2, 4, 8]).
        stride: an int or one stride per layer (subsampling by strided convolution).
        pool_at: layer indices after which a pooling layer subsamples.
        pool: "avg" or "max".
        pool_size: pooling window and stride.
        weight_std: std of the "random" and "rim_heavy" inits (default 1/sqrt(fan_in)).
        weight_scale: factor (> 0) on every conv weight after the init: the gain of the
            init, e.g. 4 for N(0, 16/fan_in) "random" weights. In a stack without bias it
            only scales the gradient of linear and ReLU stacks; tanh and sigmoid saturate
            at large gains (``experiment=activation_saturation``).
        bias: whether convs have a (zero-initialised) bias.
        dropout: dropout probability after every activation (0 = none).
        dropout_mode: "eval" (nn.Dropout: identity while probing, active in training) or
            "mask" (MaskDropout: masks are drawn in eval mode too, so the ERF is measured
            through them).
        seed: seeds the random inits (a private generator; the global RNG is untouched).
        padding_mode: what the convs read past the border: "zeros" (Luo's), "reflect",
            "replicate" or "circular" (``torch.nn.Conv2d``'s modes; ``PADDING_MODES``).
        dims: spatial axes of the input: 2 (images, the default), 1 (sequences) or 3
            (volumes); "rim_heavy" needs 2.
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
        dropout: float = 0.0,
        dropout_mode: str = "eval",
        seed: int = 0,
        weight_scale: float = 1.0,
        padding_mode: str = "zeros",
        dims: int = 2,
    ) -> None:
        _check_dims(dims, init)
        check_int("depth", depth, 1, MAX_LAYERS)
        check_padding_mode(padding_mode)
        check_positive("weight_scale", weight_scale)
        check_int("kernel_size", kernel_size, 1, MAX_KERNEL)
        check_int("channels", channels, 1, MAX_CHANNELS)
        if in_channels is not None:
            check_int("in_channels", in_channels, 1, MAX_CHANNELS)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd and >= 1 for 'same' padding, got {kernel_size}"
            )
        if channels < 1 or (in_channels is not None and in_channels < 1):
            raise ValueError("channels and in_channels must be >= 1")
        check_weights(depth, channels, kernel_size, in_channels or 1)
        _check_layer_choices(activation, init, pool, pool_at, depth)
        depth = int(depth)
        dilations = _per_layer("dilation", dilation, depth)
        strides = _per_layer("stride", stride, depth)
        pool_layers = {int(i) for i in pool_at}
        c_in = channels if in_channels is None else in_channels

        layers: list[nn.Module] = []
        for i in range(depth):
            d = dilations[i]
            layers.append(
                CONVS[dims](
                    c_in if i == 0 else channels,
                    channels,
                    kernel_size,
                    stride=strides[i],
                    padding=d * (kernel_size - 1) // 2,
                    dilation=d,
                    bias=bias,
                    padding_mode=padding_mode,
                )
            )
            if ACTIVATIONS[activation] is not None:
                layers.append(ACTIVATIONS[activation]())
            drop = _dropout(dropout, dropout_mode, seed + 7919 * (i + 1))
            if drop is not None:
                layers.append(drop)
            if i in pool_layers:
                layers.append(POOLS_BY_DIMS[dims][pool](pool_size, stride=pool_size))
        super().__init__(*layers)
        self.dims = int(dims)
        self.depth = depth
        self.init = init
        self.activation = activation
        self.weight_scale = float(weight_scale)
        initialise(self, init, weight_std=weight_std, seed=seed)
        _scale_weights(self, weight_scale)


def _check_layer_choices(
    activation: str, init: str, pool: str, pool_at: Sequence[int], depth: int
) -> None:
    """ConvStack's named choices and its pooled layer indices, each a one-line ValueError."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {list(ACTIVATIONS)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {list(INITS)}")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; allowed: {list(POOLS)}")
    bad_pools = [i for i in pool_at if not 0 <= int(i) < depth]
    if bad_pools:
        raise ValueError(f"pool_at indices {bad_pools} are outside 0..{depth - 1}")


def _check_dims(dims: int, init: str) -> None:
    """ConvStack's ``dims``: 1, 2 or 3, and 2 for the k x k "rim_heavy" init."""
    if dims not in DIMS:
        raise ValueError(f"dims must be 1, 2 or 3 (spatial axes of the input), got {dims!r}")
    if init == "rim_heavy" and dims != 2:
        raise ValueError(f"init=rim_heavy shapes k x k kernels; it needs dims=2, got {dims}")


def _scale_weights(model: nn.Module, factor: float) -> None:
    """Multiply every Conv1d/2d/3d weight of ``model`` by ``factor`` in place (no-op at 1)."""
    if factor == 1:
        return
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, CONV_TYPES)):
            conv.weight.mul_(float(factor))


def rim_heavy_profile(kernel_size: int) -> torch.Tensor:
    """Per-position weight variance of the "rim_heavy" init, ``[k, k]``, mean 1.

    Luo et al. 2016 (§4.1) propose lighter weights at the kernel centre and heavier ones at
    the rim to enlarge the ERF at initialisation, and try it on CIFAR-10. The variance grows
    with the squared distance from the centre: ``v(i, j) ∝ 1 + ((i - c)² + (j - c)²) / c²``
    with ``c = (k - 1) / 2`` (centre 1, edge midpoints 2, corners 3 before normalising),
    scaled to mean 1 so a layer's
    total variance (and hence the forward signal scale) equals the "random" init's.
    """
    k = int(kernel_size)
    if k == 1:
        return torch.ones(1, 1, dtype=torch.float64)
    c = (k - 1) / 2
    offsets = torch.arange(k, dtype=torch.float64) - c
    v = 1 + (offsets[:, None] ** 2 + offsets[None, :] ** 2) / c**2
    return v / v.mean()


def initialise(
    model: nn.Module, init: str, *, weight_std: float | None = None, seed: int = 0
) -> None:
    """Re-initialise every Conv1d/2d/3d of ``model`` in place with a named init (see
    ConvStack; the fan-in is in_channels x the kernel's entries).

    "rim_heavy" draws N(0, std² · v(i, j)) with ``v = rim_heavy_profile(k)`` and the "random"
    std, so it differs from "random" only in how the variance is spread over the kernel.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {list(INITS)}")
    if weight_std is not None:
        check_positive("weight_std", weight_std)  # NaN/Inf weights would make every map NaN
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, CONV_TYPES)):
            w = conv.weight
            fan_in = math.prod(w.shape[1:])
            if init == "uniform":
                w.fill_(1.0 / fan_in)
            else:
                std = (
                    math.sqrt(2.0 / fan_in)
                    if init == "kaiming"
                    else (weight_std if weight_std is not None else 1.0 / math.sqrt(fan_in))
                )
                draw = torch.randn(w.shape, generator=gen, dtype=torch.float64) * std
                if init == "rim_heavy":
                    if w.dim() != 4 or w.shape[2] != w.shape[3]:
                        raise ValueError(f"rim_heavy needs square kernels, got {tuple(w.shape)}")
                    draw = draw * rim_heavy_profile(w.shape[2]).sqrt()
                w.copy_(draw.to(w.dtype))
            if conv.bias is not None:
                conv.bias.zero_()


class MaskDropout(nn.Dropout):
    """Dropout that stays on in eval mode: a fresh Bernoulli(1 - p) mask per call, scaled by
    1 / (1 - p), as at training time.

    The probe puts models in eval mode, where ``nn.Dropout`` is the identity; this module is
    how an ERF is measured *through* dropout masks (Luo et al. 2016, §2.5). Masks come from a
    private generator per device seeded with ``seed``, so a run is reproducible for a given
    batch size (masks are drawn per batch, in call order).
    """

    erf_pointwise = True  # erf.rf.graph: elementwise, shape-preserving

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        super().__init__(p)
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0:
            return x
        gen = self._generators.get(x.device)
        if gen is None:
            gen = torch.Generator(device=x.device).manual_seed(self.seed)
            self._generators[x.device] = gen
        keep = torch.rand(x.shape, generator=gen, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


def _dropout(p: float, mode: str, seed: int) -> nn.Module | None:
    if not 0 <= p < 1:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    if mode not in DROPOUT_MODES:
        raise ValueError(f"unknown dropout_mode {mode!r}; allowed: {list(DROPOUT_MODES)}")
    if p == 0:
        return None
    return nn.Dropout(p) if mode == "eval" else MaskDropout(p, seed=seed)


class ResidualBlock(nn.Module):
    """``out = act(x + α·branch(x))`` with ``branch = conv, [bn], act, [dropout], conv, [bn]``
    ("basic block", post-activation); ``skip=False`` drops the identity (a plain 2-conv
    stage). ``branch_scale`` is α (>= 0; 1 is the usual block, 0 leaves only the identity);
    ``batch_norm`` adds a BatchNorm2d after each conv of the branch (before α).

    With ``stride`` 2 the first conv subsamples and the identity becomes a 1×1 stride-2
    average pool (it keeps pixel 2u, the centre of the conv's window [2u-1, 2u+1], so both
    paths stay aligned and the TRF is shift-invariant).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        activation: str = "relu",
        stride: int = 1,
        skip: bool = True,
        dropout: nn.Module | None = None,
        in_channels: int | None = None,
        branch_scale: float = 1.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if not (isinstance(branch_scale, (int, float)) and math.isfinite(branch_scale)) or (
            branch_scale < 0
        ):
            raise ValueError(
                f"branch_scale={branch_scale!r} is not allowed: expected a number >= 0"
            )
        pad = (kernel_size - 1) // 2
        c_in = channels if in_channels is None else in_channels
        act = ACTIVATIONS[activation]
        self.conv1 = nn.Conv2d(c_in, channels, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()
        self.act1 = act() if act is not None else nn.Identity()
        self.dropout = dropout if dropout is not None else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)
        self.bn2: nn.Module = nn.BatchNorm2d(channels) if batch_norm else nn.Identity()
        self.act2 = act() if act is not None else nn.Identity()
        self.branch_scale = float(branch_scale)
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or c_in != channels):
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(1, stride=stride),
                nn.Conv2d(c_in, channels, 1, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.dropout(self.act1(self.bn1(self.conv1(x))))))
        if self.branch_scale != 1:
            out = out * self.branch_scale
        if self.skip:
            out = out + self.shortcut(x)
        return self.act2(out)


class ResidualStack(nn.Sequential):
    """``blocks`` residual blocks (``ResidualBlock``) of k×k "same" convolutions: Luo et al.
    2016's skip-connection study (§2.6) and the body of the trained networks.

    With ``skip=True`` the stack has 2^blocks input-to-output paths whose RFs follow a
    binomial distribution (a path through j branches spans 1 + 2j(k - 1) pixels); the TRF
    (all branches) equals that of the ``skip=False`` plain stack of 2·blocks convs.

    Args:
        blocks: number of residual blocks (>= 1).
        kernel_size: odd kernel side k.
        channels: channels of every block.
        in_channels: channels of the input (default ``channels``; when they differ the first
            block's shortcut is a 1×1 conv).
        activation: as in ConvStack ("none" gives a linear residual stack).
        init: as in ConvStack; shortcut 1×1 convs get the same named init.
        skip: False removes every identity path (the plain-stack control).
        subsample_at: block indices whose first conv has stride 2.
        dropout: dropout probability between the two convs of each block.
        dropout_mode: "eval" is nn.Dropout (identity while probing), "mask" keeps drawing
            masks in eval mode.
        weight_std: as in ConvStack.
        seed: as in ConvStack.
        branch_scale: α of every block, ``act(x + α·branch(x))`` (>= 0; 1 = the usual block).
        batch_norm: a BatchNorm2d after each branch conv. Its statistics are those of the
            network's own inputs: right after the init, ``calibrate_batch_norm`` runs 4
            batches of 16 N(0, 1) 32×32 inputs (seeded by ``seed``) through it in training
            mode, then the stack is left in eval mode, so a probe sees a fixed normalisation,
            as in a trained network (at default statistics a BN would be the identity).
    """

    def __init__(
        self,
        blocks: int,
        kernel_size: int = 3,
        channels: int = 16,
        in_channels: int | None = None,
        activation: str = "relu",
        init: str = "kaiming",
        skip: bool = True,
        subsample_at: Sequence[int] = (),
        dropout: float = 0.0,
        dropout_mode: str = "eval",
        weight_std: float | None = None,
        seed: int = 0,
        branch_scale: float = 1.0,
        batch_norm: bool = False,
    ) -> None:
        check_int("blocks", blocks, 1, MAX_LAYERS)
        check_int("kernel_size", kernel_size, 1, MAX_KERNEL)
        check_int("channels", channels, 1, MAX_CHANNELS)
        if in_channels is not None:
            check_int("in_channels", in_channels, 1, MAX_CHANNELS)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        check_weights(2 * blocks, channels, kernel_size, in_channels or 1)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {list(ACTIVATIONS)}")
        bad = [i for i in subsample_at if not 0 <= int(i) < blocks]
        if bad:
            raise ValueError(f"subsample_at indices {bad} are outside 0..{blocks - 1}")
        subsample = {int(i) for i in subsample_at}
        layers = [
            ResidualBlock(
                channels,
                kernel_size,
                activation,
                stride=2 if i in subsample else 1,
                skip=skip,
                dropout=_dropout(dropout, dropout_mode, seed + 7919 * (i + 1)),
                in_channels=in_channels if i == 0 else None,
                branch_scale=branch_scale,
                batch_norm=bool(batch_norm),
            )
            for i in range(int(blocks))
        ]
        super().__init__(*layers)
        self.blocks = int(blocks)
        self.batch_norm = bool(batch_norm)
        initialise(self, init, weight_std=weight_std, seed=seed)
        if batch_norm:
            calibrate_batch_norm(self, channels if in_channels is None else in_channels, seed)


def calibrate_batch_norm(
    model: nn.Module, in_channels: int, seed: int, batches: int = 4, side: int = 32
) -> None:
    """Set every BatchNorm2d's running statistics to their average over ``batches`` batches
    of 16 N(0, 1) ``in_channels`` × ``side`` × ``side`` inputs (a private generator seeded
    with ``seed``), then put ``model`` in eval mode. The statistics are per channel, so any
    input size the probe uses later sees the same normalisation."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    gen = torch.Generator().manual_seed(int(seed) + 15_485_863)
    dtype = next(model.parameters()).dtype
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(int(batches)):
            model(torch.randn(16, int(in_channels), side, side, generator=gen).to(dtype))
    for bn in norms:
        bn.momentum = 0.1
    model.eval()


# --------------------------------------------------------------------------- trained networks


def _init_head(layer: nn.Module, seed: int) -> None:
    """N(0, 1/fan_in) weights (a private generator) and zero bias for a classifier head."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        w = layer.weight
        fan_in = w[0].numel()
        w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in))
        if layer.bias is not None:
            layer.bias.zero_()


def _scale_branches(body: ResidualStack, branch_scale: float) -> None:
    """Multiply the last conv of every residual branch by ``branch_scale`` (at init only)."""
    if branch_scale <= 0:
        raise ValueError(f"branch_scale must be > 0, got {branch_scale}")
    with torch.no_grad():
        for block in body:
            block.conv2.weight.mul_(branch_scale)


class _TrainedNet(nn.Module):
    """Shared stem + residual body of the two trained networks (see their docstrings)."""

    ERF_TARGET = "body"  # probe target: the output of the body's last block

    def __init__(
        self,
        classes: int,
        blocks: int,
        channels: int,
        in_channels: int,
        kernel_size: int,
        activation: str,
        init: str,
        weight_std: float | None,
        subsample_at: Sequence[int],
        branch_scale: float,
        dropout: float,
        seed: int,
    ) -> None:
        super().__init__()
        if classes is None:
            raise ValueError("classes is null: set model.classes (training jobs take it from data)")
        if int(classes) < 2:
            raise ValueError(f"classes must be >= 2, got {classes}")
        if int(in_channels) < 1 or int(channels) < 1:
            raise ValueError("channels and in_channels must be >= 1")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {list(ACTIVATIONS)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        act = ACTIVATIONS[activation]
        pad = (kernel_size - 1) // 2
        self.stem = nn.Conv2d(in_channels, channels, kernel_size, padding=pad, bias=False)
        self.stem_act = act() if act is not None else nn.Identity()
        self.body = ResidualStack(
            blocks,
            kernel_size=kernel_size,
            channels=channels,
            activation=activation,
            init=init,
            subsample_at=subsample_at,
            dropout=dropout,
            weight_std=weight_std,
            seed=seed,
        )
        initialise(self.stem, init, weight_std=weight_std, seed=seed + 104_729)
        _scale_branches(self.body, branch_scale)
        self.classes, self.blocks, self.init = int(classes), int(blocks), init

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem_act(self.stem(x)))


class ResidualClassifier(_TrainedNet):
    """Luo et al. 2016's CIFAR-10 network: a residual net without downsampling.

    ``stem`` (k×k conv, ``in_channels`` -> ``channels``) and its activation, ``body`` =
    ``ResidualStack(blocks)`` at full resolution, global average pooling and a linear
    ``head``. TRF of ``body`` (the ERF target, ``ERF_TARGET``): ``1 + (k - 1)(1 + 2 blocks)``
    pixels, 71 for 17 blocks of 3×3 convs, more than a 32×32 image.

    Args:
        classes: number of output classes.
        blocks, channels, kernel_size, activation, init, weight_std, dropout, seed: as in
            ``ResidualStack`` (the stem gets the same named init).
        in_channels: image channels.
        branch_scale: factor on the last conv of every residual branch at initialisation
            (1 = the plain named init; < 1 keeps a deep normalisation-free stack trainable,
            as in Fixup). The ERF at init is measured with it applied.
    """

    def __init__(
        self,
        classes: int = 10,
        blocks: int = 17,
        channels: int = 16,
        in_channels: int = 3,
        kernel_size: int = 3,
        activation: str = "relu",
        init: str = "kaiming",
        weight_std: float | None = None,
        branch_scale: float = 1.0,
        dropout: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            classes,
            blocks,
            channels,
            in_channels,
            kernel_size,
            activation,
            init,
            weight_std,
            (),
            branch_scale,
            dropout,
            seed,
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, classes)
        _init_head(self.head, seed + 2 * 104_729)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, classes]``."""
        return self.head(self.pool(self.features(x)).flatten(1))


class ResidualSegmenter(_TrainedNet):
    """Luo et al. 2016's CamVid network: a fully convolutional residual front-end.

    ``stem`` (k×k conv) and activation, ``body`` = ``ResidualStack(blocks)`` whose blocks in
    ``subsample_at`` have a stride-2 first conv (default 4 of them: output stride 16), a 1×1
    conv ``head`` to class scores, and bilinear upsampling back to the input size. The ERF
    target (``ERF_TARGET``) is ``body``. Args as in ``ResidualClassifier``, plus
    ``subsample_at`` (block indices).
    """

    def __init__(
        self,
        classes: int = 11,
        blocks: int = 16,
        channels: int = 16,
        in_channels: int = 3,
        kernel_size: int = 3,
        activation: str = "relu",
        init: str = "kaiming",
        weight_std: float | None = None,
        subsample_at: Sequence[int] = (0, 4, 8, 12),
        branch_scale: float = 1.0,
        dropout: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(
            classes,
            blocks,
            channels,
            in_channels,
            kernel_size,
            activation,
            init,
            weight_std,
            subsample_at,
            branch_scale,
            dropout,
            seed,
        )
        self.head = nn.Conv2d(channels, classes, 1)
        _init_head(self.head, seed + 2 * 104_729)
        self.output_stride = 2 ** len(set(int(i) for i in subsample_at))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``[B, classes, H, W]`` at the input's size."""
        scores = self.head(self.features(x))
        return nn.functional.interpolate(
            scores, size=x.shape[-2:], mode="bilinear", align_corners=False
        )
