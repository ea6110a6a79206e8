"""What a model declares about the layout of its outputs, read without importing its library.

- timm: ``num_prefix_tokens`` and ``patch_embed.patch_size``;
- torchvision's ViT: ``class_token`` and ``patch_size``;
- Hugging Face ``transformers`` (a ``config`` with a ``model_type``): the config's
  ``patch_size`` and ``num_register_tokens``, and the tokens the embeddings put before the
  patch tokens (``cls_token``, ``distillation_token``, ``register_tokens``); the 4-D tensors
  the model returns (``last_hidden_state`` of ConvNeXt, ``reshaped_hidden_states`` of Swin,
  SegFormer's ``logits``) are ``[B, C, H, W]``, transformers' convention for its outputs.

Each reader returns the value and the words that say where it came from (recorded in
``Grid.decided_by``), or ``(None, "")`` when the model declares nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Tokens a transformers embedding module puts before the patch tokens, by attribute name.
HF_PREFIX_TOKENS = ("cls_token", "distillation_token", "register_tokens")
# Embedding tensors that are not prepended (DINOv2's mask token replaces masked patches).
HF_OTHER_TOKENS = ("mask_token",)


def hf_config(model: nn.Module | None) -> Any | None:
    """The transformers config of ``model`` (an object with a ``model_type``), else None."""
    cfg = getattr(model, "config", None)
    return cfg if isinstance(getattr(cfg, "model_type", None), str) else None


def _hf_prefix(model: nn.Module, cfg: Any) -> tuple[int | None, str]:
    """The prefix tokens of a transformers model: its embeddings' class and distillation
    tokens and ``config.num_register_tokens`` registers. None when the embeddings hold a token
    tensor of another kind (YOLOS's detection tokens, say): the count is then not known."""
    base = getattr(model, "base_model", model)
    embed = getattr(base, "embeddings", None)
    where = f"hf config ({cfg.model_type})"
    if not isinstance(embed, nn.Module):
        return 0, f"{where}: no token embeddings"
    own = dict(embed.named_parameters(recurse=False))
    unknown = [n for n in own if "token" in n and n not in HF_PREFIX_TOKENS + HF_OTHER_TOKENS]
    if unknown:
        return None, ""
    count, parts = 0, []
    for name in ("cls_token", "distillation_token"):
        if isinstance(own.get(name), torch.Tensor):
            count, parts = count + 1, [*parts, name]
    registers = getattr(cfg, "num_register_tokens", None)
    if isinstance(registers, int) and registers > 0 and "register_tokens" in own:
        count, parts = count + registers, [*parts, f"num_register_tokens={registers}"]
    return count, f"{where}: " + (" + ".join(parts) if parts else "no prefix tokens")


def declared_prefix(model: nn.Module | None) -> tuple[int | None, str]:
    """The number of prefix tokens ``model`` puts before its patch tokens, with its source:
    timm's ``num_prefix_tokens``, torchvision's ``class_token``, a transformers config."""
    if model is None:
        return None, ""
    count = getattr(model, "num_prefix_tokens", None)
    if isinstance(count, int):
        return count, "model.num_prefix_tokens"
    if isinstance(getattr(model, "class_token", None), torch.Tensor):
        return 1, "model.class_token"
    cfg = hf_config(model)
    if cfg is not None:
        return _hf_prefix(model, cfg)
    return None, ""


def _pair(size: Any) -> tuple[int, int] | None:
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return int(size[0]), int(size[1])
    return None


def declared_patch(model: nn.Module | None) -> tuple[tuple[int, int] | None, str]:
    """The patch size (rows, cols, input pixels per patch token) ``model`` declares, with its
    source: timm's ``patch_embed.patch_size``, torchvision's ``patch_size``, a transformers
    config's ``patch_size`` (a single one: SegFormer's per-stage ``patch_sizes`` are not a
    patch grid)."""
    if model is None:
        return None, ""
    embed = getattr(model, "patch_embed", None)
    size = _pair(getattr(embed, "patch_size", None))
    if size is not None:
        return size, "model.patch_embed.patch_size"
    size = _pair(getattr(model, "patch_size", None))
    if size is not None:
        return size, "model.patch_size"
    cfg = hf_config(model)
    size = _pair(getattr(cfg, "patch_size", None)) if cfg is not None else None
    if size is not None:
        return size, f"config.patch_size={size[0]}"
    return None, ""


def declared_map_layout(model: nn.Module | None, module: nn.Module | None) -> str | None:
    """How a 4-D tensor is laid out when the model says so: "NCHW (...)" for what a
    transformers model itself returns (``module`` is the model: transformers' outputs are
    ``[B, C, H, W]``), else None. Submodules inside transformers blocks may work channels-last
    (ConvNeXt's layers permute to ``[B, H, W, C]``), so their outputs are not covered."""
    cfg = hf_config(model)
    if cfg is not None and module is model:
        return f"NCHW (hf config ({cfg.model_type}): transformers outputs are [B, C, H, W])"
    return None


__all__ = [
    "HF_PREFIX_TOKENS",
    "declared_map_layout",
    "declared_patch",
    "declared_prefix",
    "hf_config",
]
