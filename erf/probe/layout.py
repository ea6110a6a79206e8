"""Where the probed unit lives in a target's output.

A target module may return one tensor or a tuple, list, dict or dataclass of them
(``select_output`` picks one by key or index, ``probe.output``), and that tensor may be laid out
in several ways. ``resolve_grid`` reads the layout and the spatial grid of the map, so every
probe engine seeds the unit gradient in the right place:

- ``NCHW`` ``[B, C, H, W]``: PyTorch convolutions;
- ``NHWC`` ``[B, H, W, C]``: channels-last maps (Swin stages, MetaFormer/ConvNeXt blocks that
  work channels-last, many user models);
- ``tokens`` ``[B, N, C]``: ``N = P + h * w`` with ``P`` prefix tokens (class, distillation,
  register tokens) before the row-major ``h x w`` patch grid (ViT, DeiT);
- ``vector`` ``[B, C]``: one unit per channel (classifier logits), a 1 x 1 grid;
- ``NCL`` ``[B, C, L]`` and ``NCDHW`` ``[B, C, D, H, W]``: sequences (audio, time series;
  Conv1d) and volumes (Conv3d) probed from inputs ``(C, L)`` and ``(C, D, H, W)``; their
  positions are ``(t,)`` and ``(d, h, w)``, their centre ``(L // 2,)`` and
  ``(D // 2, H // 2, W // 2)``. On such inputs "auto" reads an output of the input's rank as
  channels-first only on evidence (a Conv1d/Conv3d-like module made it, or the graph analysis
  followed its last dims as the input's axes) and otherwise refuses in one line.

It never guesses silently: the layout is taken from the option (``layout``), else from what
the model declares (``erf.probe.declared``: timm's and torchvision's attributes, a
transformers config) or the module that made the tensor (a Conv2d output is NCHW), else from
the shape and the input's aspect ratio; when two readings both fit (a square map whose
channel count is its side, say) it refuses in one line naming the option that decides it.
``Grid.decided_by`` records how the layout was decided, and the probe stores it in the
result's meta.

Positions on the grid are ``(row, col)``, the centre of an ``h x w`` grid is
``(h // 2, w // 2)``; a prefix token is named ``"cls"`` (prefix token 0) or ``"prefix:K"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from erf.probe.declared import declared_map_layout, declared_patch, declared_prefix
from erf.probe.units import POSITION_NAMES, named_position
from erf.rf.builder import nchw_modules
from erf.rf.graph import graph_rf

LAYOUTS = ("auto", "NCHW", "NHWC", "tokens", "NCL", "NCDHW")
# The channels-first layout of each number of spatial axes other than 2 (the input's rank
# decides which one "auto" may read), and the modules whose outputs always have it.
ND_LAYOUTS = {1: "NCL", 3: "NCDHW"}
ND_MODULES = {
    1: (
        nn.Conv1d, nn.ConvTranspose1d, nn.MaxPool1d, nn.AvgPool1d, nn.LPPool1d,
        nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.ConstantPad1d, nn.ReflectionPad1d,
        nn.ReplicationPad1d, nn.InstanceNorm1d,
    ),
    3: (
        nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d,
        nn.AdaptiveMaxPool3d, nn.ConstantPad3d, nn.ReflectionPad3d, nn.ReplicationPad3d,
        nn.InstanceNorm3d,
    ),
}  # fmt: skip
# Prefix-token counts tried when neither the option nor the model says: none, a class token,
# class + distillation (DeiT), 4 or 8 registers with or without a class token.
PREFIX_COUNTS = (0, 1, 2, 4, 5, 8, 9)

# Modules whose outputs are [B, C, H, W] whatever their shape (the layout's best witness):
# the rule table's NCHW entries (erf.rf.builder.OpRule.nchw).
NCHW_MODULES = nchw_modules()


@dataclass(frozen=True)
class Grid:
    """The probe's view of one target tensor: its layout, its ``channels`` and its
    ``height x width`` spatial grid (patch grid for tokens; 1 x 1 for vectors), the number of
    ``prefix_tokens`` before the patch tokens, and what decided the layout (``decided_by``)."""

    layout: str
    channels: int
    height: int
    width: int
    prefix_tokens: int = 0
    decided_by: str = ""
    # NCL / NCDHW: the spatial sizes, (L,) or (D, H, W); () for the 2-D layouts
    extent: tuple[int, ...] = ()

    @classmethod
    def nd(cls, layout: str, channels: int, sizes: Sequence[int], decided_by: str) -> Grid:
        """A channels-first grid of a sequence (``NCL``, sizes ``(L,)``) or a volume
        (``NCDHW``, ``(D, H, W)``); ``height x width`` are its last two axes (1 x L)."""
        sizes = tuple(int(v) for v in sizes)
        h, w = (1, *sizes)[-2:]
        return cls(layout, int(channels), h, w, decided_by=decided_by, extent=sizes)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The spatial sizes: ``(h, w)``, or ``(L,)`` / ``(D, H, W)`` for NCL / NCDHW."""
        return self.extent or (self.height, self.width)

    @property
    def shape(self) -> tuple[int, ...]:
        """``(C, h, w)`` (``(C, L)``, ``(C, D, H, W)``): the target map's shape as the result
        records it."""
        if self.extent:
            return (self.channels, *self.extent)
        return self.channels, self.height, self.width

    def position(self, position: Any) -> tuple[int, ...] | str:
        """A named position (``erf.probe.units.POSITION_NAMES``: ``"center"`` ->
        ``(h // 2, w // 2)``, ...); ``(row, col)`` checked against the grid; ``"cls"`` /
        ``"prefix:K"`` -> ``"prefix:K"`` (tokens with prefix tokens only). NCL / NCDHW
        grids take ``(t,)`` / ``(d, h, w)`` (``nd_position``)."""
        if self.extent:
            return nd_position(position, self.extent, self.layout)
        if isinstance(position, str):
            if position in POSITION_NAMES:
                return named_position(
                    position, self.height, self.width, tokens=self.layout == "tokens"
                )
            k = prefix_index(position)
            if self.layout != "tokens" or self.prefix_tokens == 0:
                raise ValueError(
                    f"position {position!r} names a prefix token, but the target is a "
                    f"{self.layout} map without prefix tokens; use 'center' or [row, col]"
                )
            if not 0 <= k < self.prefix_tokens:
                raise ValueError(
                    f"position {position!r}: the target has {self.prefix_tokens} prefix "
                    f"token(s), 0..{self.prefix_tokens - 1}"
                )
            return f"prefix:{k}"
        row, col = (int(v) for v in position)
        if not (0 <= row < self.height and 0 <= col < self.width):
            size = f"{self.height}x{self.width}"
            raise ValueError(f"position {(row, col)} is outside the {size} target feature map")
        return row, col

    def index(self, position: tuple[int, int] | str, channel: int | None) -> tuple[Any, ...]:
        """Index of the unit in one sample's tensor (the dims after the batch): set the seed
        gradient with ``seed[..., *index] = 1`` (``...`` covers the batch and any leading
        dims such as weight draws)."""
        ch = slice(None) if channel is None else int(channel)
        if isinstance(position, str):  # a prefix token
            return prefix_index(position), ch
        if self.layout == "vector":  # the 1 x 1 grid (one entry per axis of the input)
            return (ch,)
        if self.extent:  # NCL, NCDHW
            return (ch, *position)
        row, col = position
        if self.layout == "NCHW":
            return ch, row, col
        if self.layout == "NHWC":
            return row, col, ch
        return self.prefix_tokens + row * self.width + col, ch  # tokens

    def check_channel(self, channel: int | None) -> None:
        if channel is not None and not 0 <= channel < self.channels:
            raise ValueError(f"channel {channel} is outside 0..{self.channels - 1}")

    def describe(self) -> dict[str, Any]:
        """The layout as plain data for the result's meta."""
        out = {"layout": self.layout, "grid": list(self.sizes)}
        if self.layout == "tokens":
            out["prefix_tokens"] = self.prefix_tokens
        out["layout_decided_by"] = self.decided_by
        return out


def nd_position(position: Any, sizes: Sequence[int], layout: str) -> tuple[int, ...]:
    """The unit of a sequence or volume grid of ``sizes``: "center" (and "openerf_center")
    ``n // 2`` per axis, "center_upper_left" ``(n - 1) // 2``, or a tuple of one index per
    axis checked against the grid; anything else is a one-line ValueError."""
    sizes = tuple(int(v) for v in sizes)
    grid = "x".join(map(str, sizes))
    if isinstance(position, str):
        if position in ("center", "openerf_center"):
            return tuple(n // 2 for n in sizes)
        if position == "center_upper_left":
            return tuple((n - 1) // 2 for n in sizes)
        raise ValueError(
            f"position {position!r} on the {grid} {layout} grid: use 'center' or one index "
            f"per axis ({len(sizes)})"
        )
    unit = tuple(int(v) for v in position)
    if len(unit) != len(sizes):
        raise ValueError(
            f"position {list(unit)} has {len(unit)} indices; the {grid} {layout} grid has "
            f"{len(sizes)} axes"
        )
    if not all(0 <= u < n for u, n in zip(unit, sizes)):
        raise ValueError(f"position {unit} is outside the {grid} target feature map")
    return unit


def prefix_index(position: str) -> int:
    """``"cls"`` -> 0, ``"prefix:K"`` -> K; anything else is a one-line ValueError."""
    if position == "cls":
        return 0
    head, _, k = position.partition(":")
    if head == "prefix" and k.isdigit():
        return int(k)
    names = ", ".join(repr(n) for n in POSITION_NAMES)
    raise ValueError(f"position must be {names}, [row, col], 'cls' or 'prefix:K', got {position!r}")


# --------------------------------------------------------------------------- choosing the tensor


def _choices(out: Any) -> dict[str, Any] | None:
    """The named parts of a container output (dict keys, field names, indices), else None."""
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items()}
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    if isinstance(out, (tuple, list)):
        names = getattr(out, "_fields", None)  # namedtuple: names and indices both work
        parts = {str(i): v for i, v in enumerate(out)}
        if names:
            parts.update(zip(names, out))
        return parts
    return None


def _describe(value: Any) -> str:
    """A part of a target's output, for a message: a tensor's shape with its batch dim as
    ``B`` (``[B, 21, 64, 64]``: the same whatever the probe's batch), else its type."""
    if isinstance(value, torch.Tensor):
        return "[" + ", ".join(["B", *(str(s) for s in value.shape[1:])][: value.dim()]) + "]"
    return type(value).__name__


def _empty_field(out: Any, name: str) -> bool:
    """Whether ``name`` is a field of the dataclass ``out`` that holds None (a transformers
    ``ModelOutput`` lists only the fields it filled)."""
    if not dataclasses.is_dataclass(out) or isinstance(out, type):
        return False
    return name in {f.name for f in dataclasses.fields(out)} and getattr(out, name) is None


def select_output(out: Any, output: str | int | None, where: str) -> torch.Tensor:
    """The tensor to probe in ``out`` (what the target returned).

    ``output``: None for a tensor output; a key, field name or index for a dict, dataclass
    (Hugging-Face-style model outputs), tuple or list; ``"a.0"`` follows a path. A container
    without ``output``, or a missing key, is a one-line ValueError listing the choices.
    """
    if output is None:
        if isinstance(out, torch.Tensor):
            return out
        parts = _choices(out)
        if parts is None:
            raise ValueError(f"{where} returned a {type(out).__name__}, not a tensor")
        shown = ", ".join(f"{k}: {_describe(v)}" for k, v in parts.items())
        raise ValueError(
            f"{where} returns a {type(out).__name__} ({shown}): choose the tensor to probe "
            "with probe.output=<key or index>"
        )
    value = out
    for step in str(output).split("."):
        parts = _choices(value)
        if parts is None:
            raise ValueError(
                f"probe.output={output}: {where} gives a {_describe(value)} at {step!r}, "
                "which has no parts to choose from"
            )
        if step not in parts and _empty_field(value, step):
            raise ValueError(
                f"probe.output={output}: {where}'s {step!r} is None in this call (transformers "
                f"fills hidden_states only with output_hidden_states=True: model=hf does)"
            )
        if step not in parts:
            raise ValueError(
                f"probe.output={output}: no {step!r} in {where}'s output; choices: "
                + ", ".join(f"{k}: {_describe(v)}" for k, v in parts.items())
            )
        value = parts[step]
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"probe.output={output} selects a {type(value).__name__}, not a tensor")
    return value


# --------------------------------------------------------------------------- reading the layout


def aspect_error(h: int, w: int, height: int, width: int) -> float:
    """How far an ``h x w`` grid is from the ``height x width`` input seen at one stride
    ``s`` (``h = height / s``, ``w = width / s``), in grid units: ``|h * width - w * height|
    / (height + width)``. 0 is an exact fit; up to 1 is what rounding (odd sizes, padding)
    gives; more means the two axes have different strides."""
    return abs(h * width - w * height) / (height + width)


def shrink_fits(h: int, w: int, height: int, width: int) -> bool:
    """Whether an ``h x w`` map can be the ``height x width`` input shrunk by valid
    (unpadded) layers at one stride: ``h = (height - a) / s`` and ``w = (width - a) / s`` with
    the same margin ``a`` in ``[0, min(height, width))`` and ``s > 0`` (up to rounding)."""
    if aspect_error(h, w, height, width) <= 1:
        return True
    if height == width or h == w:
        return False
    stride = (height - width) / (h - w)
    margin = height - h * stride
    return stride > 0 and -stride <= margin < min(height, width)


def _module_layout(module: nn.Module | None) -> str | None:
    """NCHW when ``module`` (or the last child of a Sequential) always returns NCHW maps."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[-1]
    if isinstance(module, NCHW_MODULES):
        return f"NCHW ({type(module).__name__} output)"
    return None


def _token_grid(
    n: int,
    input_hw: tuple[int, int],
    model: nn.Module | None,
    grid: tuple[int, int] | None,
    prefix_tokens: int | None,
    where: str,
) -> tuple[int, int, int, str]:
    """(prefix tokens, h, w, decided by) of an ``N``-token sequence."""
    height, width = input_hw
    hint = "set probe.grid=[h,w] and probe.prefix_tokens=P"
    declared, prefix_from = declared_prefix(model)
    if prefix_tokens is not None:
        declared, prefix_from = int(prefix_tokens), "probe.prefix_tokens"
    if grid is not None:
        gh, gw = (int(v) for v in grid)
        prefix = n - gh * gw if declared is None else declared
        if prefix < 0 or prefix + gh * gw != n:
            raise ValueError(
                f"{where} has {n} tokens, which is not {declared or 0} prefix + "
                f"{gh}x{gw} grid tokens; {hint}"
            )
        return prefix, gh, gw, "probe.grid" + (f" + {prefix_from}" if prefix_from else "")
    patch, patch_from = declared_patch(model)
    if patch is not None:
        gh, gw = height // patch[0], width // patch[1]
        if declared is not None and declared + gh * gw == n:
            return declared, gh, gw, f"{prefix_from} + {patch_from}"
        if gh * gw == n and prefix_tokens is None:  # before the prefix tokens are added
            return 0, gh, gw, f"{patch_from}; no prefix tokens yet"
    counts = [declared] if declared is not None else PREFIX_COUNTS
    found = []
    for prefix in counts:
        m = n - prefix
        for gh in range(1, m + 1):
            # a patch grid has one stride on both axes: gh / gw = H / W to within a quarter
            # of a patch (square inputs: a square grid)
            if m % gh == 0 and abs(gh * width - (m // gh) * height) * 4 <= height + width:
                found.append((prefix, gh, m // gh))
    if len(found) == 1:
        prefix, gh, gw = found[0]
        how = f"{prefix_from} + " if declared is not None else ""
        return prefix, gh, gw, f"{how}N = {prefix} + {gh}x{gw} fits the input's aspect ratio"
    if not found:
        raise ValueError(
            f"{where} has {n} tokens, which no patch grid of the {height}x{width} input "
            f"explains; {hint}"
        )
    shown = ", ".join(f"{p} + {gh}x{gw}" for p, gh, gw in found[:4])
    raise ValueError(f"{where}: {n} tokens could be {shown} (prefix + grid); {hint}")


def graph_spatial_dims(
    model: nn.Module, input_shape: Sequence[int], target: str | None
) -> tuple[int, int] | None:
    """The dims of ``target``'s output that the torch.fx analysis followed as image rows and
    cols (``GraphRF.spatial_dims``), or None when the model cannot be analysed."""
    try:
        return graph_rf(model, tuple(int(v) for v in input_shape)).spatial_dims(target)
    except Exception:  # any trace failure only means no evidence from the graph
        return None


def resolve_grid(
    y: torch.Tensor,
    input_hw: tuple[int, int],
    *,
    where: str,
    module: nn.Module | None = None,
    model: nn.Module | None = None,
    layout: str = "auto",
    grid: Sequence[int] | None = None,
    prefix_tokens: int | None = None,
    graph_dims: Callable[[], tuple[int, int] | None] | None = None,
) -> Grid:
    """The layout and grid of the probed tensor ``y`` (batch first), for an input of
    ``input_hw`` = (H, W) (sequences and volumes: ``resolve_nd_grid``). ``layout``: "auto" or
    one of ``LAYOUTS``; ``grid`` (h, w) and ``prefix_tokens`` decide token sequences;
    ``module`` (the target module), ``model`` (the prefix-token count and patch size it
    declares) and ``graph_dims`` (called only when the shape alone does not decide: the dims
    the torch.fx analysis followed as rows and cols) are evidence for "auto". Raises a
    one-line ValueError when the tensor cannot be read or nothing decides between readings.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"probe.layout={layout!r}; allowed: {list(LAYOUTS)}")
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{where} returned a {type(y).__name__}, not a tensor")
    if len(input_hw) != 2 or layout in ND_LAYOUTS.values():
        return resolve_nd_grid(
            y, tuple(input_hw), where=where, module=module, layout=layout, graph_dims=graph_dims
        )
    height, width = (int(v) for v in input_hw)
    shape = tuple(int(s) for s in y.shape[1:])
    if layout == "auto" and len(shape) == 1:
        return Grid("vector", shape[0], 1, 1, decided_by="a [B, C] vector: one unit per channel")
    if layout in ("NCHW", "NHWC") or (layout == "auto" and len(shape) == 3):
        if len(shape) != 3:
            raise ValueError(f"probe.layout={layout} needs a 4-D output; {where} is {list(shape)}")
        if layout == "NCHW":
            return Grid("NCHW", *shape, decided_by="probe.layout")
        if layout == "NHWC":
            return Grid("NHWC", shape[2], shape[0], shape[1], decided_by="probe.layout")
        witness = declared_map_layout(model, module) or _module_layout(module)
        if witness:
            return Grid("NCHW", *shape, decided_by=witness)
        # The reading whose spatial dims fit the input's aspect ratio (to within rounding)
        # better; equal fits of two different readings are refused.
        nchw = aspect_error(shape[1], shape[2], height, width)
        nhwc = aspect_error(shape[0], shape[1], height, width)
        undecided = (nchw <= 1 and nhwc <= 1 and nchw == nhwc) or (nchw > 1 and nhwc > 1)
        dims = graph_dims() if undecided and graph_dims is not None else None
        if dims == (2, 3):
            return Grid("NCHW", *shape, decided_by="[C, H, W]: the graph analysis")
        if dims == (1, 2):
            return Grid("NHWC", shape[2], shape[0], shape[1], decided_by="[H, W, C]: the graph")
        if nchw <= 1 and nhwc <= 1 and nchw == nhwc:
            raise ValueError(
                f"{where} is {list(shape)}: both [C, H, W] and [H, W, C] fit the "
                f"{height}x{width} input; set probe.layout=NCHW or probe.layout=NHWC"
            )
        if nhwc <= 1 and nhwc < nchw:
            return Grid(
                "NHWC", shape[2], shape[0], shape[1],
                decided_by="[H, W, C]: fits the input's aspect ratio better than [C, H, W]",
            )  # fmt: skip
        if nchw <= 1:
            return Grid("NCHW", *shape, decided_by="[C, H, W]: fits the input's aspect ratio")
        if shrink_fits(shape[1], shape[2], height, width):
            return Grid("NCHW", *shape, decided_by="[C, H, W]: the input shrunk by valid layers")
        raise ValueError(
            f"{where} is {list(shape)}: neither [C, H, W] nor [H, W, C] matches the "
            f"{height}x{width} input at one stride; set probe.layout=NCHW or probe.layout=NHWC"
        )
    if len(shape) != 2:
        raise ValueError(
            f"{where} is {list(shape)} per sample; the probe reads [C, H, W], [H, W, C], "
            "[N tokens, C] or [C] outputs (probe.layout, probe.output)"
        )
    prefix, gh, gw, how = _token_grid(
        shape[0], (height, width), model, None if grid is None else tuple(grid), prefix_tokens,
        where,
    )  # fmt: skip
    return Grid("tokens", shape[1], gh, gw, prefix_tokens=prefix, decided_by=how)


def _input_words(n_axes: int) -> str:
    """How a message names an input with ``n_axes`` spatial axes."""
    return {1: "a 1-D input (C, L)", 2: "a 2-D input (C, H, W)", 3: "a 3-D input (C, D, H, W)"}[
        n_axes
    ]


def _nd_witness(module: nn.Module | None, n_axes: int) -> str | None:
    """Why ``module`` (or the last child of a Sequential) always returns channels-first maps
    of ``n_axes`` spatial axes, or None."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[-1]
    if isinstance(module, ND_MODULES.get(n_axes, ())):
        return f"{ND_LAYOUTS[n_axes]} ({type(module).__name__} output)"
    return None


def resolve_nd_grid(
    y: torch.Tensor,
    input_sizes: tuple[int, ...],
    *,
    where: str,
    module: nn.Module | None = None,
    layout: str = "auto",
    graph_dims: Callable[[], tuple[int, ...] | None] | None = None,
) -> Grid:
    """``resolve_grid`` for a sequence or volume input (``input_sizes`` ``(L,)`` or
    ``(D, H, W)``), or a layout of those (``NCL``, ``NCDHW``): the target is read as ``[B, C]``
    (a vector) or channels-first with the input's number of axes. A 2-D layout on such an
    input, a sequence layout on another input, or an output whose layout nothing decides
    (no option, no Conv-like module, no graph evidence) is a one-line ValueError."""
    n_axes = len(input_sizes)
    shape = tuple(int(s) for s in y.shape[1:])
    wanted = ND_LAYOUTS.get(n_axes)
    if wanted is None:
        needs = {v: k for k, v in ND_LAYOUTS.items()}[layout]
        raise ValueError(
            f"probe.layout={layout} needs {_input_words(needs)}; this is "
            f"{_input_words(n_axes)}: use probe.layout=auto"
        )
    if layout not in ("auto", wanted):
        raise ValueError(
            f"probe.layout={layout} does not fit {_input_words(n_axes)}: use "
            f"probe.layout={wanted} or auto"
        )
    if layout == "auto" and len(shape) == 1:
        how = "a [B, C] vector: one unit per channel"
        return Grid.nd("vector", shape[0], (1,) * n_axes, how)
    if len(shape) != n_axes + 1:
        axes = {1: "[C, L]", 3: "[C, D, H, W]"}[n_axes]
        raise ValueError(
            f"{where} is {list(shape)} per sample; on {_input_words(n_axes)} the probe reads "
            f"{axes} or [C] outputs (probe.layout, probe.output)"
        )
    if layout == wanted:
        return Grid.nd(wanted, shape[0], shape[1:], "probe.layout")
    witness = _nd_witness(module, n_axes)
    if witness:
        return Grid.nd(wanted, shape[0], shape[1:], witness)
    dims = graph_dims() if graph_dims is not None else None
    if dims is not None and tuple(dims) == tuple(range(2, 2 + n_axes)):
        return Grid.nd(wanted, shape[0], shape[1:], f"{wanted}: the graph analysis")
    raise ValueError(
        f"{where} is {list(shape)} on {_input_words(n_axes)}: nothing says which dim holds "
        f"the channels; set probe.layout={wanted} (channels first) if it is {wanted}"
    )


def seed_warning(module: nn.Module | None, grid: Grid, channel: int | None) -> str | None:
    """Why the unit gradient on every channel would measure nothing, or None.

    A LayerNorm over the channels (per position) with uniform weights makes a unit's channels
    sum to a constant (the normalised values sum to 0), so the gradient of that sum -- the
    all-channel probe -- is exactly 0 and the map is rounding noise. Trained weights are not
    uniform, and one channel (``channel``) or the layer before the norm is unaffected."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[-1]
    if channel is not None or not isinstance(module, nn.LayerNorm):
        return None
    if tuple(module.normalized_shape) != (grid.channels,):
        return None
    weight = module.weight
    if weight is not None and not bool((weight == weight.flatten()[0]).all()):
        return None
    return (
        "the target is a LayerNorm over the channels with uniform weights: a unit's channels "
        "sum to a constant, so the unit gradient on every channel gives a zero map (rounding "
        "noise); probe one channel (probe.channel) or the layer before the norm"
    )


class NormWatch:
    """Remembers the outputs of every LayerNorm call of ``model`` until ``close``, so that
    ``producer(y)`` can tell whether a target's tensor came straight out of a LayerNorm (as
    the output of timm's PatchEmbed does) -- exact, unlike guessing from module order."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[tuple[nn.Module, Any]] = []
        self.handles = [
            m.register_forward_hook(lambda mod, _i, out: self.calls.append((mod, out)))
            for m in model.modules()
            if isinstance(m, nn.LayerNorm)
        ]

    def producer(self, y: torch.Tensor) -> nn.Module | None:
        """The LayerNorm whose output is the tensor ``y`` itself, if any."""
        return next((m for m, out in self.calls if out is y), None)

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles, self.calls = [], []


def unit_in_input(
    position: tuple[int, ...] | str, grid_hw: tuple[int, ...], input_hw: tuple[int, ...]
) -> tuple[float, ...] | None:
    """Where the centre of unit ``position`` of an ``h x w`` grid falls in the ``H x W`` input
    (row, col in pixels), for a grid that spans the input evenly: ``(row + 0.5) * H / h - 0.5``
    (a dense output at twice the input's resolution maps unit 2r to r - 0.25); the same per
    axis for sequences and volumes. None for a prefix token, which sits on no grid cell."""
    if isinstance(position, str):
        return None
    return tuple((u + 0.5) * n / g - 0.5 for u, g, n in zip(position, grid_hw, input_hw))


__all__ = [
    "LAYOUTS",
    "ND_LAYOUTS",
    "Grid",
    "NormWatch",
    "nd_position",
    "prefix_index",
    "resolve_grid",
    "resolve_nd_grid",
    "seed_warning",
    "select_output",
    "unit_in_input",
]
