"""Real models: torchvision, timm and user classes, with optional weights or checkpoints.

Downloading weights needs the internet, which CI and many users lack; so weights are off by
default (``weights=None``), and a failed load says in one line which file to put where.
"""

from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from erf.nets.luo import set_padding_mode
from erf.normalization import IMAGENET_MEAN, IMAGENET_STD

# The ImageNet statistics most pretrained models expect (inputs in [0, 1], per RGB channel);
# erf.probe.inputs keeps the same numbers (the probe does not import the nets).

# The attribute torchvision_model and timm_model set on the models they build:
# (mean, std, source) of the normalisation the model's weights expect (input_normalization).
NORMALIZATION_ATTR = "erf_normalization"

Normalization = tuple[tuple[float, ...], tuple[float, ...], str]


class WeightsUnavailable(ValueError):
    """Pretrained weights could not be loaded (offline, missing or corrupt file)."""


def input_normalization(model: nn.Module) -> Normalization:
    """(mean, std, source) that real images in [0, 1] are normalised with before they enter
    ``model``, per input channel: ``(x - mean) / std``.

    timm models: their ``pretrained_cfg`` mean/std (source "timm pretrained_cfg (<name>)");
    torchvision models built by ``torchvision_model`` with a weights enum: the weights'
    ``transforms()`` mean/std ("torchvision <weights>"); any other model: the ImageNet
    statistics ("ImageNet default").
    """
    recorded = getattr(model, NORMALIZATION_ATTR, None)
    if recorded is not None:
        mean, std, source = recorded
        return tuple(map(float, mean)), tuple(map(float, std)), str(source)
    cfg = getattr(model, "pretrained_cfg", None)  # a timm model built without timm_model
    if isinstance(cfg, dict) and cfg.get("mean") and cfg.get("std"):
        name = cfg.get("architecture", type(model).__name__)
        return _floats(cfg["mean"]), _floats(cfg["std"]), f"timm pretrained_cfg ({name})"
    return IMAGENET_MEAN, IMAGENET_STD, "ImageNet default"


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict into ``model``: the file's own, or the one a training checkpoint
    holds under any key ("state_dict", "model", "model_state_dict", "ema", ...), with the
    prefixes of DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") taken
    off (``_state_dict_in``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors differ by torch version
        raise WeightsUnavailable(f"checkpoint {path} could not be read ({exc})") from None
    state = _state_dict_in(state, model)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsUnavailable(f"checkpoint {path} does not fit the model: {first}") from None
    return model


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def _state_dict_in(state: Any, model: nn.Module) -> Any:
    """The dict of tensors in ``state`` whose keys (wrapper prefixes taken off) best match
    ``model``'s own: ``state`` itself or one of its values, one level down. ``state``
    unchanged when no candidate shares a key with the model (the load then says why)."""
    own = set(model.state_dict())

    def unwrapped(d: dict) -> dict:
        for prefix in _WRAPPER_PREFIXES:
            if d and all(isinstance(k, str) and k.startswith(prefix) for k in d):
                d = {k[len(prefix) :]: v for k, v in d.items()}
        return d

    candidates = [state] if isinstance(state, dict) else []
    if isinstance(state, dict):
        candidates += [v for v in state.values() if isinstance(v, dict)]
    best, score = state, 0
    for c in candidates:
        c = unwrapped(c)
        shared = len(own & set(c))
        if shared > score:
            best, score = c, shared
    return best


def torchvision_model(
    name: str, weights: str | None = None, padding_mode: str | None = None, **kwargs: Any
) -> nn.Module:
    """A torchvision classification or segmentation model by name.

    ``weights``: None (random init, the default), a weights enum name such as "DEFAULT" or
    "IMAGENET1K_V2" (downloaded once into torch's hub cache), or a path to a state dict.
    ``padding_mode``: None (the model's own), or "zeros", "reflect", "replicate" or
    "circular" for every padded ``Conv2d`` (``erf.nets.luo.set_padding_mode``; pooling keeps
    its padding).
    """
    if padding_mode is not None:
        model = torchvision_model(name, weights, **kwargs)
        return set_padding_mode(model, padding_mode)
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
        model = tvm.get_model(name, weights=enum, **kwargs)
    except Exception as exc:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise WeightsUnavailable(
            f"could not load {name} weights {enum} ({type(exc).__name__}); without internet, "
            f"put {Path(enum.url).name} at {cache} or pass model.weights=<path to a state dict>"
        ) from None
    preset = enum.transforms()
    normalization = (_floats(preset.mean), _floats(preset.std), f"torchvision {enum}")
    setattr(model, NORMALIZATION_ATTR, normalization)
    return model


def timm_model(
    name: str, pretrained: bool = False, checkpoint: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """A timm model by name (timm is optional: ``pip install 'erf-lab[timm]'``).

    ``pretrained=True`` loads the weights through timm's own cache (the Hugging Face hub);
    offline (``HF_HUB_OFFLINE=1``) only a cached file is used, and a missing one is a one-line
    ``WeightsUnavailable`` naming the file to download. ``checkpoint``: a state dict loaded
    after construction (``load_checkpoint``). The model records its pretrained_cfg mean/std
    for ``input_normalization``. Other keyword arguments go to ``timm.create_model``.
    """
    try:
        import timm
    except ImportError:
        raise ValueError("model=timm needs the timm package: pip install timm") from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
        raise ValueError(f"unknown timm model {name!r}{hint}")
    if pretrained:
        model = _pretrained_timm(timm, name, kwargs)
    else:
        model = timm.create_model(name, pretrained=False, **kwargs)
    if checkpoint:
        load_checkpoint(model, checkpoint)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("mean") and cfg.get("std"):
        normalization = (_floats(cfg["mean"]), _floats(cfg["std"]), f"timm pretrained_cfg ({name})")
        setattr(model, NORMALIZATION_ATTR, normalization)
    return model


HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm asks the hub for


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment names it now: ``HF_HUB_CACHE``, else
    ``HF_HOME``/hub, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / (
        "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set now (huggingface_hub reads it only at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _pretrained_timm(timm: Any, name: str, kwargs: dict[str, Any]) -> nn.Module:
    """``timm.create_model(name, pretrained=True)``; offline, from the cached file only."""
    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    url = getattr(cfg, "url", None) if cfg is not None else None
    cache = hf_cache_dir()
    if hub_id:
        where = (
            f"download {HF_WEIGHT_FILES[0]} from https://huggingface.co/{hub_id} and pass "
            f"model.checkpoint=<path>, or fill the Hugging Face cache at {cache} "
            f"(huggingface-cli download {hub_id})"
        )
    elif url:
        where = f"download {url} and pass model.checkpoint=<path>"
    else:
        raise WeightsUnavailable(f"timm has no pretrained weights for {name}")
    if hf_offline():
        cached = _cached_hub_file(hub_id, cache) if hub_id else None
        if cached is None:
            raise WeightsUnavailable(
                f"no cached pretrained timm weights for {name} (HF_HUB_OFFLINE is set); {where}"
            )
        overlay = {**(kwargs.pop("pretrained_cfg_overlay", None) or {}), "file": cached}
        kwargs["pretrained_cfg_overlay"] = overlay
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:
        raise WeightsUnavailable(
            f"could not load pretrained timm weights for {name} ({type(exc).__name__}); "
            f"without internet, {where}"
        ) from None


def _cached_hub_file(hub_id: str, cache: Path) -> str | None:
    """The path of ``hub_id``'s weights in the hub cache ``cache``, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HF_WEIGHT_FILES:
        found = try_to_load_from_cache(hub_id, filename, cache_dir=cache)
        if isinstance(found, str):
            return found
    return None
