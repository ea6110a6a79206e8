"""Hugging Face ``transformers`` vision models (optional: ``pip install 'erf-lab[hf]'``).

``hf_model`` builds a model from its config with random weights (drawn from torch's global
RNG, so the run's seed drives them as for torchvision and timm), or loads its weights with
``from_pretrained`` from a local folder or the local Hugging Face cache. Nothing is ever
downloaded: every load passes ``local_files_only=True``, and a missing file is a one-line
``WeightsUnavailable`` naming what to put where.

Their outputs are ``ModelOutput`` objects (``last_hidden_state``, ``hidden_states``,
``logits``, ...): the probe picks one with ``probe.output`` and reads its token grid from the
model's config (``erf.probe.declared``).
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from erf.nets.zoo import (
    NORMALIZATION_ATTR,
    WeightsUnavailable,
    hf_cache_dir,
    load_checkpoint,
)

log = logging.getLogger(__name__)
PREPROCESSOR_FILE = "preprocessor_config.json"  # where a checkpoint keeps its image mean/std


def _transformers() -> Any:
    """The transformers package, imported on first use (a heavy, optional dependency)."""
    try:
        import transformers
    except ImportError:
        raise ValueError(
            "model=hf needs the transformers package: pip install 'erf-lab[hf]'"
        ) from None
    return transformers


def _is_source(name: str) -> bool:
    """Whether ``name`` is a folder or a hub repo id ("org/name") rather than a class or type."""
    return Path(name).expanduser().is_dir() or "/" in name


def _model_class(tf: Any, name: str, config: Any | None) -> Any:
    """The model class ``name`` names: a model class ("ViTModel"), a config class
    ("ViTConfig": its AutoModel class), a model type ("vit": likewise) or, with ``config``
    (read from a folder), the class its ``architectures`` names, else its AutoModel class."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    if config is not None:
        arch = (getattr(config, "architectures", None) or [None])[0]
        found = getattr(tf, arch, None) if arch else None
        return found if found is not None else getattr(tf, MODEL_MAPPING_NAMES[config.model_type])
    obj = getattr(tf, name, None) if name[:1].isupper() else None
    if isinstance(obj, type) and issubclass(obj, nn.Module) and hasattr(obj, "config_class"):
        return obj

    types = {cls.__name__: t for t, cls in CONFIG_MAPPING.items()}
    model_type = types.get(name, name)
    if model_type in MODEL_MAPPING_NAMES:
        return getattr(tf, MODEL_MAPPING_NAMES[model_type])
    known = [n for n in dir(tf) if n.endswith("Model") or "For" in n] + list(MODEL_MAPPING_NAMES)
    close = difflib.get_close_matches(name, known, n=4)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise ValueError(
        f"model.name={name!r} is not a transformers model class, config class, model type or "
        f"local folder{hint}"
    )


def _split_overrides(cls: Any, overrides: dict[str, Any], name: str) -> tuple[dict, dict]:
    """``overrides`` as (config settings, constructor keywords of ``cls`` such as ViTModel's
    ``add_pooling_layer``); a key that is neither is refused (transformers would store a
    misspelt config key silently and build the default model)."""
    default = cls.config_class()
    known = set(default.to_dict())
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "config"}
    settings, keywords = {}, {}
    for key, value in overrides.items():
        if key in known or hasattr(default, key):
            settings[key] = value
        elif key in params:
            keywords[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(known | params), n=3)
            hint = f" (close: {', '.join(close)})" if close else ""
            raise ValueError(
                f"model.{key}: neither {cls.config_class.__name__} nor {cls.__name__} "
                f"of {name} has such a setting{hint}"
            )
    return settings, keywords


def _local_config(tf: Any, source: str, overrides: dict[str, Any]) -> Any:
    """The config of a local folder or a cached hub repo, with ``overrides``; offline only."""
    folder = Path(source).expanduser()
    if folder.is_dir() and not (folder / "config.json").is_file():  # transformers: ValueError
        raise WeightsUnavailable(_missing(source, "config.json"))
    try:
        return tf.AutoConfig.from_pretrained(
            source, local_files_only=True, cache_dir=_cache_for(source), **overrides
        )
    except OSError:
        raise WeightsUnavailable(_missing(source, "config.json")) from None


def _cache_for(source: str) -> str | None:
    """The hub cache to search (read from the environment now), None for a local folder."""
    return None if Path(source).expanduser().is_dir() else str(hf_cache_dir())


def _missing(source: str, what: str) -> str:
    if Path(source).expanduser().is_dir():
        return f"no {what} usable in the folder {source}"
    return (
        f"no {what} for {source} in the local Hugging Face cache {hf_cache_dir()} (erf never "
        f"downloads): run `huggingface-cli download {source}` or pass a local folder"
    )


def hf_model(
    name: str,
    weights: str | None = None,
    checkpoint: str | Path | None = None,
    output_hidden_states: bool = True,
    **config: Any,
) -> nn.Module:
    """A Hugging Face ``transformers`` model, offline.

    ``name``: a model class ("ViTModel", "SegformerForSemanticSegmentation"), a config class
    ("Dinov2Config") or a model type ("swin") -- built from its default config -- or a local
    folder / cached hub repo id holding a ``config.json`` (its ``architectures`` class).
    ``config``: overrides of that config (``image_size=32``, ``num_hidden_layers=2``, ...) or
    keywords of the class (ViTModel's ``add_pooling_layer=False``); any other key is refused.
    ``weights``: None for random weights drawn from torch's global RNG (seed it for
    reproducible weights), or a local folder / cached hub repo id loaded with
    ``from_pretrained(..., local_files_only=True)``. ``checkpoint``: a state dict loaded
    afterwards (``load_checkpoint``). ``output_hidden_states`` (default on) fills the outputs'
    ``hidden_states`` so that ``probe.output=hidden_states.K`` can pick block K. Loaded weights
    record the mean/std of their ``preprocessor_config.json`` for ``input_normalization``.
    """
    tf = _transformers()
    name = str(name)
    hidden = {"output_hidden_states": bool(output_hidden_states)}
    folder = _is_source(name)
    cls = _model_class(tf, name, _local_config(tf, name, {}) if folder else None)
    settings, keywords = _split_overrides(cls, config, name)
    weights = None if str(weights).lower() in ("none", "null", "") else str(weights)
    if folder or weights is not None:  # the config that comes with the files
        cfg = _local_config(tf, name if folder else weights, {**settings, **hidden})
    else:
        cfg = cls.config_class(**settings, **hidden)
    if weights is None:
        model = cls(cfg, **keywords)
    else:
        model = _pretrained(cls, weights, cfg, keywords)
        _record_normalization(model, weights)
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model


def _pretrained(cls: Any, source: str, cfg: Any, keywords: dict[str, Any]) -> nn.Module:
    """``cls.from_pretrained(source, config=cfg)`` from local files only. Tensors whose shapes
    do not fit the model are a one-line error; tensors the files lack (a task head over a
    backbone's weights) keep their random init, and a log line says which."""
    try:
        model, info = cls.from_pretrained(
            source, config=cfg, local_files_only=True, cache_dir=_cache_for(source),
            output_loading_info=True, **keywords,
        )  # fmt: skip
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailable(f"{_missing(source, 'weights')} ({first[:120]})") from None
    except RuntimeError:  # transformers' size-mismatch report (ignore_mismatched_sizes=False)
        raise WeightsUnavailable(
            f"the weights in {source} do not fit {cls.__name__} with this config: tensors "
            "differ in shape (drop the model.* settings that change the architecture)"
        ) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        log.warning(
            "%s: %d tensors not in %s keep their random init (%s%s)", cls.__name__,
            len(missing), source, ", ".join(missing[:3]), ", ..." if len(missing) > 3 else "",
        )  # fmt: skip
    return model


def _record_normalization(model: nn.Module, source: str) -> None:
    """The ``image_mean``/``image_std`` of the weights' ``preprocessor_config.json`` (in the
    folder or the cache), when there is one, so real images are normalised as the weights
    expect (``input_normalization``); without it the ImageNet default applies."""
    if Path(source).expanduser().is_dir():
        path: Path | None = Path(source).expanduser() / PREPROCESSOR_FILE
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, PREPROCESSOR_FILE, cache_dir=hf_cache_dir())
        path = Path(found) if isinstance(found, str) else None
    if path is None or not path.is_file():
        return
    spec = json.loads(path.read_text())
    mean, std = spec.get("image_mean"), spec.get("image_std")
    if mean and std:
        record = (
            tuple(map(float, mean)),
            tuple(map(float, std)),
            f"hf {PREPROCESSOR_FILE} ({source})",
        )
        setattr(model, NORMALIZATION_ATTR, record)


def hf_image_size(model: nn.Module) -> tuple[int, int] | None:
    """``(H, W)`` the model's config is built for (``config.image_size``, an int or a pair),
    or None for a model without one (not a transformers model, or a size-free config)."""
    size = getattr(getattr(model, "config", None), "image_size", None)
    if isinstance(size, int) and size > 0:
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


__all__ = ["hf_image_size", "hf_model"]
