"""Real models: torchvision, timm and user classes, with optional weights or checkpoints.

Downloading weights needs the internet, which CI and many users lack; so weights are off by
default (``weights=None``), and a failed load says in one line which file to put where.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn


class WeightsUnavailable(ValueError):
    """Pretrained weights could not be loaded (offline, missing or corrupt file)."""


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict (or a dict holding one under "state_dict"/"model") into ``model``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors differ by torch version
        raise WeightsUnavailable(f"checkpoint {path} could not be read ({exc})") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsUnavailable(f"checkpoint {path} does not fit the model: {first}") from None
    return model


def torchvision_model(name: str, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """A torchvision classification or segmentation model by name.

    ``weights``: None (random init, the default), a weights enum name such as "DEFAULT" or
    "IMAGENET1K_V2" (downloaded once into torch's hub cache), or a path to a state dict.
    """
    import torchvision.models as tvm

    available = tvm.list_models()
    if name not in available:
        raise ValueError(f"unknown torchvision model {name!r}; available: {', '.join(available)}")
    if "weights_backbone" in inspect.signature(tvm.get_model_builder(name)).parameters:
        kwargs.setdefault("weights_backbone", None)  # segmentation models: no backbone download
    if weights is None or str(weights).lower() in ("none", "null", ""):
        return tvm.get_model(name, weights=None, **kwargs)
    weights = str(weights)
    if Path(weights).expanduser().suffix in (".pth", ".pt", ".bin", ".ckpt") or "/" in weights:
        return load_checkpoint(tvm.get_model(name, weights=None, **kwargs), weights)
    try:
        enum = tvm.get_model_weights(name)[weights]
    except KeyError:
        names = ", ".join(w.name for w in tvm.get_model_weights(name))
        raise ValueError(
            f"model {name} has no weights {weights!r}; available: DEFAULT, {names}"
        ) from None
    try:
        return tvm.get_model(name, weights=enum, **kwargs)
    except Exception as exc:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise WeightsUnavailable(
            f"could not load {name} weights {enum} ({type(exc).__name__}); without internet, "
            f"put {Path(enum.url).name} at {cache} or pass model.weights=<path to a state dict>"
        ) from None


def timm_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A timm model by name (timm is optional: ``pip install timm``)."""
    try:
        import timm
    except ImportError:
        raise ValueError("model=timm needs the timm package: pip install timm") from None
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}; see timm.list_models()")
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as exc:
        if not pretrained:
            raise
        raise WeightsUnavailable(
            f"could not load pretrained timm weights for {name} ({type(exc).__name__}); without "
            f"internet, fill the Hugging Face cache (HF_HOME) or pass model.checkpoint=<path>"
        ) from None
