"""Per-sample scalars held constant in a copy: the graph TRF's ``LOCAL_CONVENTION`` for the
measured support (``erf.probe.support``).

The graph analysis reports a local box where a unit depends on the whole map only through
per-sample scalars: squeeze-excitation gates ``x * gate(pool(x))`` and the statistics of
GroupNorm, InstanceNorm and LayerNorm over spatial dims. ``hold_context(model)`` makes the
measured support count the same way: in ``model`` (meant for a copy: it is changed in place)
each such module computes the same value with those scalars detached, so the input gradient
flows through the per-pixel path only.

- Gates (the known classes of ``GATES``: torchvision's ``SqueezeExcitation``; timm's
  ``SEModule``, ``EffectiveSEModule``, ``SqueezeExciteCl``, the EfficientNet/MobileNet
  ``SqueezeExcite``, SENet's ``SEModule``, HGNet's ``EseModule``, ``EcaModule``,
  ``CecaModule`` and CBAM's channel attention ``ChannelAttn``/``LightChannelAttn``) return
  ``x * gate(x).detach()``, the gate recomputed as the class computes it: the same value,
  bit for bit. CBAM's spatial attention is a local map (a conv over per-pixel channel
  statistics), not a gate, and is left as it is, as the graph reads it.
- Norms (``nn.GroupNorm`` and timm's ``GroupNorm``/``GroupNorm1``/``GroupNormAct``/
  ``GroupNorm1Act``; ``nn.InstanceNorm1d/2d/3d`` unless they use running statistics, i.e.
  ``track_running_stats`` in eval mode; ``nn.LayerNorm``, timm's ``LayerNorm``/
  ``LayerNormAct`` whose ``normalized_shape`` has two or more dims, so it covers a dim
  besides the channels) normalise with detached mean and variance: the same value up to
  float rounding. A LayerNorm over one dim is read as one over the channels (tokens,
  channels-last maps, timm's ``LayerNorm2d``): pointwise, nothing to hold.

A module matches by the class that defines its ``forward`` (so plain subclasses such as a
model's own ``class MyNorm(nn.GroupNorm): pass`` match, and a subclass with its own forward
does not unless it is listed). The swap is an instance attribute (``types.MethodType``): module
names, parameters and hooks stay as they were.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

GateFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _mean(x: torch.Tensor, dims: tuple[int, ...] = (2, 3)) -> torch.Tensor:
    return x.mean(dims, keepdim=True)


def _timm_se(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    s = _mean(x)
    if m.add_maxpool:
        s = 0.5 * s + 0.5 * x.amax((2, 3), keepdim=True)
    return m.gate(m.fc2(m.act(m.bn(m.fc1(s)))))


def _timm_effective_se(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    s = _mean(x)
    if m.add_maxpool:
        s = 0.5 * s + 0.5 * x.amax((2, 3), keepdim=True)
    return m.gate(m.fc(s))


def _timm_se_cl(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.gate(m.fc2(m.act(m.fc1(_mean(x, (1, 2))))))


def _timm_effnet_se(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.gate(m.conv_expand(m.act1(m.conv_reduce(_mean(x)))))


def _timm_senet_se(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.sigmoid(m.fc2(m.relu(m.fc1(_mean(x)))))


def _timm_ese(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.sigmoid(m.conv(_mean(x)))


def _timm_eca(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = m.conv(x.mean((2, 3)).view(x.shape[0], 1, -1))
    if m.conv2 is not None:
        y = m.conv2(m.act(y))
    return m.gate(y).view(x.shape[0], -1, 1, 1)


def _timm_ceca(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = F.pad(x.mean((2, 3)).view(x.shape[0], 1, -1), (m.padding, m.padding), mode="circular")
    return m.gate(m.conv(y)).view(x.shape[0], -1, 1, 1)


def _timm_channel_attn(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    avg = m.fc2(m.act(m.fc1(_mean(x))))
    top = m.fc2(m.act(m.fc1(x.amax((2, 3), keepdim=True))))
    return m.gate(avg + top)


def _timm_light_channel_attn(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    pooled = 0.5 * _mean(x) + 0.5 * x.amax((2, 3), keepdim=True)
    return torch.sigmoid(m.fc2(m.act(m.fc1(pooled))))


def _torchvision_se(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m._scale(x)


# "module.QualName" of the class that defines forward -> (attributes it needs, its gate).
GATES: dict[str, tuple[tuple[str, ...], GateFn]] = {
    "torchvision.ops.misc.SqueezeExcitation": (("_scale",), _torchvision_se),
    "timm.layers.squeeze_excite.SEModule": (
        ("add_maxpool", "fc1", "bn", "act", "fc2", "gate"), _timm_se
    ),
    "timm.layers.squeeze_excite.EffectiveSEModule": (
        ("add_maxpool", "fc", "gate"), _timm_effective_se
    ),
    "timm.layers.squeeze_excite.SqueezeExciteCl": (("fc1", "act", "fc2", "gate"), _timm_se_cl),
    "timm.models._efficientnet_blocks.SqueezeExcite": (
        ("conv_reduce", "act1", "conv_expand", "gate"), _timm_effnet_se
    ),
    "timm.models.senet.SEModule": (("fc1", "relu", "fc2", "sigmoid"), _timm_senet_se),
    "timm.models.hgnet.EseModule": (("conv", "sigmoid"), _timm_ese),
    "timm.layers.eca.EcaModule": (("conv", "conv2", "act", "gate"), _timm_eca),
    "timm.layers.eca.CecaModule": (("padding", "conv", "gate"), _timm_ceca),
    "timm.layers.cbam.ChannelAttn": (("fc1", "act", "fc2", "gate"), _timm_channel_attn),
    "timm.layers.cbam.LightChannelAttn": (("fc1", "act", "fc2"), _timm_light_channel_attn),
}  # fmt: skip

# Classes defining forward as a plain norm, and those that add timm's ``drop`` then ``act``.
GROUP_NORMS = ("torch.nn.modules.normalization.GroupNorm", "timm.layers.norm.GroupNorm",
               "timm.layers.norm.GroupNorm1")  # fmt: skip
GROUP_NORM_ACTS = ("timm.layers.norm_act.GroupNormAct", "timm.layers.norm_act.GroupNorm1Act")
LAYER_NORMS = ("torch.nn.modules.normalization.LayerNorm", "timm.layers.norm.LayerNorm")
LAYER_NORM_ACTS = ("timm.layers.norm_act.LayerNormAct",)
INSTANCE_NORM = "torch.nn.modules.instancenorm._InstanceNorm"  # forward, _apply_instance_norm


def forward_owner(module: nn.Module, method: str = "forward") -> str:
    """``"module.QualName"`` of the class in ``module``'s MRO that defines ``method``."""
    cls = next((c for c in type(module).__mro__ if method in vars(c)), type(module))
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class HeldContext:
    """What ``hold_context`` changed: ``gates`` and ``norms`` (module names), and ``ran``:
    the names whose held computation ran (in first-run order) since the last ``clear()``.
    A norm that used its running statistics (InstanceNorm with ``track_running_stats`` in
    eval mode) held nothing and is not listed in ``ran``."""

    gates: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    ran: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.ran.clear()

    def mark(self, name: str) -> None:
        if name not in self.ran:
            self.ran.append(name)

    def inside_gate(self, name: str) -> bool:
        """``name`` is a submodule of a held gate: part of its per-sample squeeze path."""
        return any(name.startswith(f"{g}.") for g in self.gates if g)


def _dims_shape(x: torch.Tensor, n_lead: int) -> tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.dim() - n_lead)


def held_group_norm(
    x: torch.Tensor, groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:  # fmt: skip
    """``F.group_norm`` with the group mean and variance detached."""
    g = x.reshape(x.shape[0], groups, -1)
    mean = g.mean(-1, keepdim=True).detach()
    var = g.var(-1, unbiased=False, keepdim=True).detach()
    y = ((g - mean) * torch.rsqrt(var + eps)).reshape(x.shape)
    if weight is not None:
        y = y * weight.reshape(_dims_shape(x, 2))
    if bias is not None:
        y = y + bias.reshape(_dims_shape(x, 2))
    return y


def held_layer_norm(
    x: torch.Tensor, n_dims: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:  # fmt: skip
    """``F.layer_norm`` over the last ``n_dims`` dims with the mean and variance detached."""
    dims = tuple(range(-n_dims, 0))
    mean = x.mean(dims, keepdim=True).detach()
    var = x.var(dims, unbiased=False, keepdim=True).detach()
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _act(m: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """timm's norm-act tail: ``act(drop(y))``."""
    return m.act(m.drop(y))


def _swap(module: nn.Module, method: str, fn: Callable) -> None:
    setattr(module, method, types.MethodType(fn, module))


def _hold_gate(module: nn.Module, name: str, gate: GateFn, ctx: HeldContext) -> None:
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = x * gate(self, x).detach()
        ctx.mark(name)
        return out

    _swap(module, "forward", forward)


def _hold_group_norm(module: nn.Module, name: str, act: bool, ctx: HeldContext) -> None:
    plain = type(module).forward

    def forward(self: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        if x.dim() <= 2:  # no spatial dims: nothing per sample to hold
            return plain(self, x)
        y = held_group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        ctx.mark(name)
        return _act(self, y) if act else y

    _swap(module, "forward", forward)


def _hold_layer_norm(module: nn.Module, name: str, act: bool, ctx: HeldContext) -> None:
    n_dims = len(module.normalized_shape)

    def forward(self: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        y = held_layer_norm(x, n_dims, self.weight, getattr(self, "bias", None), self.eps)
        ctx.mark(name)
        return _act(self, y) if act else y

    _swap(module, "forward", forward)


def _hold_instance_norm(module: nn.Module, name: str, ctx: HeldContext) -> None:
    plain = type(module)._apply_instance_norm

    def apply(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.track_running_stats and not self.training:  # running stats: pointwise
            return plain(self, x)
        dims = tuple(range(2, x.dim()))
        mean = x.mean(dims, keepdim=True).detach()
        var = x.var(dims, unbiased=False, keepdim=True).detach()
        y = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.reshape(_dims_shape(x, 2))
        if self.bias is not None:
            y = y + self.bias.reshape(_dims_shape(x, 2))
        ctx.mark(name)
        return y

    _swap(module, "_apply_instance_norm", apply)


def hold_context(model: nn.Module) -> HeldContext:
    """Make ``model`` (in place: pass a copy) hold its gates and spatial norm statistics
    constant (module docstring); returns what it changed. Each output keeps its value (gates
    bit for bit, norms up to float rounding); only the input gradient loses the path through
    those per-sample scalars."""
    ctx = HeldContext()
    gates: list[str] = []
    norms: list[str] = []
    for name, m in model.named_modules():
        owner = forward_owner(m)
        if owner in GATES:
            attrs, gate = GATES[owner]
            if all(hasattr(m, a) for a in attrs):
                _hold_gate(m, name, gate, ctx)
                gates.append(name)
        elif owner in GROUP_NORMS or owner in GROUP_NORM_ACTS:
            _hold_group_norm(m, name, owner in GROUP_NORM_ACTS, ctx)
            norms.append(name)
        elif owner in LAYER_NORMS or owner in LAYER_NORM_ACTS:
            if len(m.normalized_shape) >= 2:
                _hold_layer_norm(m, name, owner in LAYER_NORM_ACTS, ctx)
                norms.append(name)
        elif owner == INSTANCE_NORM and forward_owner(m, "_apply_instance_norm") == owner:
            _hold_instance_norm(m, name, ctx)
            norms.append(name)
    ctx.gates, ctx.norms = tuple(gates), tuple(norms)
    return ctx


__all__ = ["GATES", "HeldContext", "forward_owner", "hold_context"]
