"""Config to objects: the model, its input shape and inputs, the probed target and layers,
the probe's options (``probe_options``: every job takes its options from here), and for
training jobs the data, the trained model, the probe inputs and the training settings.

Nothing here writes a file; the jobs (``erf.app.jobs``) do.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import typing
from collections.abc import Iterable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from erf.app.dims import input_axes
from erf.app.groups import PLAIN_PROBE
from erf.nets.hf import hf_image_size
from erf.nets.zoo import input_normalization, load_checkpoint
from erf.normalization import IMAGENET_MEAN, IMAGENET_STD
from erf.probe.inputs import RANDOM_SOURCES, image_folder
from erf.probe.options import ProbeOptions
from erf.probe.photos import PhotoSource
from erf.rf.graph import graph_rf, layer_table
from erf.rf.targets import auto_target, stage_layers
from erf.rf.theory import TheoreticalRF, theoretical_rf
from erf.settings import from_config as settings_from_config
from erf.training.data import DataBundle, build_data
from erf.training.loop import TrainSettings

REAL_SOURCES = ("imagefolder", "photos")  # real images, normalised with the model's mean/std
INPUT_SOURCES = (*RANDOM_SOURCES, *REAL_SOURCES)  # what a probe job accepts (``build_inputs``)
DEFAULT_SIZE = 224  # input side for models whose TRF cannot size the input (graphs, global RFs)

# probe.* settings that are not ProbeOptions fields, at their plain values (``refuse_probe``).


def build_model(model_cfg: DictConfig) -> nn.Module:
    """Instantiate ``model._target_`` with the other keys; then load ``checkpoint`` if set.
    Every ``_target_`` in the spec is checked first (``check_model_targets``): nothing is
    called that is not a model."""
    spec = OmegaConf.to_container(model_cfg, resolve=True)
    checkpoint = spec.pop("checkpoint", None)
    check_model_targets(spec, "model")
    model = instantiate(spec, _convert_="all")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model._target_ built a {type(model).__name__}, not a torch nn.Module")
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model


def check_model_targets(spec: Any, where: str) -> None:
    """Refuse, before anything is called, a ``_target_`` (at any depth of ``spec``) that is
    not a torch ``nn.Module`` class or a function annotated to return one (erf's
    ``torchvision_model``/``timm_model``, torchvision's builders, ``timm.create_model``, your
    own factory with ``-> nn.Module``): a config names a model, never ``torch.load``, ``open``
    or any other callable. Importing the target's module is the only thing that runs."""
    if isinstance(spec, dict):
        target = spec.get("_target_")
        if target is not None:
            _check_target(str(target), f"{where}._target_")
        for key, value in spec.items():
            check_model_targets(value, f"{where}.{key}")
    elif isinstance(spec, list):
        for i, value in enumerate(spec):
            check_model_targets(value, f"{where}[{i}]")


def _check_target(path: str, where: str) -> None:
    obj = locate_target(path, where)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        try:
            returns = typing.get_type_hints(obj).get("return")
        except Exception:  # an annotation that does not evaluate: not declared a model
            returns = None
        if isinstance(returns, type) and issubclass(returns, nn.Module):
            return
    raise ValueError(
        f"{where}={path!r} is not a torch nn.Module class or a function annotated to return "
        "one; erf builds models only (e.g. model._target_=my_pkg.MyNet, or a factory "
        "declared `def make(...) -> nn.Module`)"
    )


def locate_target(path: str, where: str) -> Any:
    """The object a dotted ``path`` (a ``_target_``) names: its longest importable module,
    then attributes; a one-line ValueError naming ``where`` when there is none."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as exc:
            if exc.name is not None and not ".".join(parts[:i]).startswith(exc.name):
                raise  # a module that exists failed to import one of its own imports
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            break
        return obj
    raise ValueError(
        f"{where}={path!r}: no such module or attribute to import (is its package installed or "
        "on PYTHONPATH? the `erf` command does not add the current folder, `python -m erf.run` "
        "does: run `PYTHONPATH=. erf run ...` or pip install your package)"
    )


def _chain_trf(model: nn.Module) -> TheoreticalRF | None:
    """Closed-form TRF when the model is a plain chain, else None."""
    try:
        return theoretical_rf(model)
    except (TypeError, ValueError):
        return None


def input_shape_for(cfg: DictConfig, model: nn.Module) -> tuple[int, ...]:
    """(C, H, W) from ``inputs.channels``/``inputs.size``. When null: the in_channels of the
    model's first conv, and for chains the TRF plus a 16-pixel margin (at least 32) per axis,
    for transformers models their config's ``image_size``, for other models 224. Sequences
    and volumes (``erf.app.dims.input_axes`` 1 or 3): ``(C, L)`` and ``(C, D, H, W)``
    (``nd_input_shape``)."""
    if input_axes(cfg) != 2:
        return nd_input_shape(cfg, model, input_axes(cfg))
    channels = cfg.inputs.channels
    if channels is None:
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if first_conv is None:
            raise ValueError("inputs.channels is null and the model has no Conv2d to infer it from")
        channels = first_conv.in_channels
    if cfg.inputs.size is not None:
        h, w = (int(v) for v in cfg.inputs.size)
    elif hf_image_size(model) is not None:
        h, w = hf_image_size(model)
    else:
        chain = _chain_trf(model)
        h, w = (max(32, s + 16) for s in chain.size) if chain else (DEFAULT_SIZE, DEFAULT_SIZE)
    if min(channels, h, w) < 1:
        raise ValueError(f"input shape must be positive, got {(channels, h, w)}")
    return int(channels), int(h), int(w)


ND_CONVS = {1: nn.Conv1d, 3: nn.Conv3d}
ND_PROBE_SIZE = 64  # the input side the TRF of a sequence or volume model is computed on


def nd_input_shape(cfg: DictConfig, model: nn.Module, axes: int) -> tuple[int, ...]:
    """``(C, L)`` or ``(C, D, H, W)``: ``inputs.channels`` (else the first Conv1d/Conv3d's
    in_channels) and ``inputs.size`` (else the TRF from the graph analysis plus a 16-sample
    margin, at least 32, per axis)."""
    channels = cfg.inputs.channels
    if channels is None:
        conv = next((m for m in model.modules() if isinstance(m, ND_CONVS[axes])), None)
        if conv is None:
            kind = ND_CONVS[axes].__name__
            raise ValueError(f"inputs.channels is null and the model has no {kind} to infer it")
        channels = conv.in_channels
    if cfg.inputs.size is not None:
        sizes = tuple(int(v) for v in cfg.inputs.size)
    else:
        trf = theoretical_rf(model, input_shape=(int(channels), *[ND_PROBE_SIZE] * axes))
        sizes = tuple(max(32, int(s) + 16) for s in trf.size)
    return (int(channels), *sizes)


def seeded_model(model_cfg: DictConfig, seed: int) -> nn.Module:
    """``build_model(model_cfg)`` with the global torch RNG seeded to ``seed`` (torchvision,
    timm and most user classes draw their init from it), restored afterwards: the same seed
    gives the same weights for every model source."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build_model(model_cfg)


def inputs_normalization(
    cfg: DictConfig, model: nn.Module | None
) -> tuple[tuple[float, ...], tuple[float, ...], str] | None:
    """(mean, std, source) that real-image inputs are normalised with: the model's own
    (``erf.nets.zoo.input_normalization``; ImageNet's without a model). None for random
    inputs (already in normalised units) and with ``inputs.normalize=false``."""
    if cfg.inputs.source not in REAL_SOURCES or not cfg.inputs.get("normalize", True):
        return None
    if model is None:
        return IMAGENET_MEAN, IMAGENET_STD, "ImageNet default"
    return input_normalization(model)


def build_inputs(
    cfg: DictConfig, input_shape: tuple[int, int, int], model: nn.Module | None = None
) -> str | PhotoSource | Iterable:
    """The probe's input source: a random source name, the scikit-image photos
    (``erf.probe.photos.PhotoSource``) or a DataLoader for ``imagefolder``; real images are
    normalised with ``model``'s mean/std (``inputs_normalization``)."""
    source = cfg.inputs.source
    if source in RANDOM_SOURCES:
        return source
    norm = inputs_normalization(cfg, model)
    mean, std = (None, None) if norm is None else norm[:2]
    if source == "photos":
        return PhotoSource(mean=mean, std=std)
    if source == "imagefolder":
        return image_folder(
            cfg.inputs.root,
            input_shape[1:],
            cfg.probe.batch_size,
            normalize=norm is not None,
            seed=cfg.seed,
            n_samples=cfg.probe.n_samples,
            **({} if norm is None else {"mean": mean, "std": std}),
        )
    raise ValueError(f"inputs.source={source!r}; allowed: {list(INPUT_SOURCES)}")


def inputs_record(cfg: DictConfig, model: nn.Module | None) -> dict[str, Any]:
    """What the inputs were, for metrics.json: ``inputs_normalization`` ({mean, std, source},
    or None for random inputs and ``inputs.normalize=false``) and, for photos, the photos
    used, their number and the crops."""
    norm = inputs_normalization(cfg, model)
    record: dict[str, Any] = {
        "inputs_normalization": None
        if norm is None
        else {"mean": list(norm[0]), "std": list(norm[1]), "source": norm[2]}
    }
    if cfg.inputs.source == "photos":
        record.update(PhotoSource().describe())
    return record


def resolve_target(target: str | None, model: nn.Module, input_shape) -> str | None:
    """``auto`` -> the last local feature map (``erf.rf.targets.auto_target``); else as given.

    The layer table lists [B, C, H, W] maps only: where a model turns its map into a token
    sequence (ViT, Swin) the layers after it are not in the table, and "auto" would pick the
    patch embedding; that is refused, naming a layer to probe instead."""
    if target != "auto":
        return target
    if graph_stops_at_tokens(model, input_shape):
        raise ValueError(
            "probe.target=auto: the model turns its map into tokens, and the layer table of "
            f"maps ends there, so it cannot pick the last layer; name it, e.g. "
            f"probe.target={last_block(model)}"
        )
    try:
        table = layer_table(model, input_shape)
    except ValueError as exc:  # no torch.fx trace (transformers models, control flow)
        why = str(exc).strip().splitlines()[0]
        raise ValueError(
            f"probe.target=auto reads the layer table of the torch.fx trace, and here: {why}; "
            f"name the layer, e.g. probe.target={last_block(model)}"
        ) from None
    return auto_target(table)


def graph_stops_at_tokens(model: nn.Module, input_shape) -> str | None:
    """Where ``model`` turns its map into a token sequence (ViT, Swin: the layer table of
    [C, H, W] maps ends there), or None when it does not or cannot be traced."""
    try:
        return graph_rf(model, input_shape).token_stage()
    except (ValueError, TypeError):
        return None


def last_block(model: nn.Module) -> str:
    """The last entry of the model's longest block list (``blocks.11`` of a timm ViT,
    ``layers.3`` of a Swin, ``encoder.layers.encoder_layer_11`` of torchvision's ViT; the
    shallowest list wins ties), or the model's last child: a probe target to suggest."""
    lists = [
        (-len(m), name.count("."), name, list(dict(m.named_children()))[-1])
        for name, m in model.named_modules()
        if name and isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m)
    ]
    if lists:
        *_, name, last = min(lists)
        return f"{name}.{last}"
    children = [name for name, _ in model.named_children()]
    return children[-1] if children else "<module>"


def layer_names(spec: Any, key: str, model: nn.Module, input_shape) -> list[str]:
    """A list of module names from ``spec``: "stages" (one layer per resolution,
    ``erf.rf.targets.stage_layers``) or names (``[1, 3]`` for nn.Sequential children "1", "3")."""
    if isinstance(spec, str):
        if spec != "stages":
            raise ValueError(f"{key}={spec!r}; use 'stages' or a list of module names")
        return stage_layers(layer_table(model, input_shape))
    return [str(name) for name in spec]


def model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The model's config values (what a sweep varies), without Hydra keys."""
    settings = OmegaConf.to_container(cfg.model, resolve=True)
    return {k: v for k, v in settings.items() if not k.startswith("_")}


def model_for_seed(cfg: DictConfig, seed: int) -> nn.Module:
    """The configured model built with ``seed`` and ``model.seed`` (when it has one) set to
    ``seed``; the global torch RNG is seeded too (torchvision/timm inits draw from it) and
    restored afterwards."""
    cfg = copy.deepcopy(cfg)
    cfg.seed = int(seed)
    if "seed" in cfg.model:
        cfg.model.seed = int(seed)
    return seeded_model(cfg.model, seed)


def probe_options(cfg: DictConfig, inputs: str | Iterable) -> ProbeOptions:
    """The probe's options from ``probe.*``, ``seed`` and ``device``, probing ``inputs`` (a
    random source name or an iterable of batches: ``build_inputs``). Every job (measure,
    profile, draws, torchrun, benchmark, training) takes its options from here."""
    probe = OmegaConf.to_container(cfg.probe, resolve=True)
    return ProbeOptions.from_config(probe, inputs=inputs, device=cfg.device, seed=cfg.seed)


def probe_position(cfg: DictConfig) -> str | tuple[int, int]:
    """``probe.position``: "center", a prefix token ("cls", "prefix:K") or a (row, col)
    tuple."""
    position = cfg.probe.position
    return position if isinstance(position, str) else tuple(int(v) for v in position)


def refuse_probe(cfg: DictConfig, keys: Iterable[str], job: str) -> None:
    """One-line ValueError naming every ``probe.<key>`` among ``keys`` (target, position,
    draws: the settings outside ``ProbeOptions``) that differs from its plain value, for a
    ``job`` that cannot honour it (``ProbeOptions.refuse`` does the same for the options)."""
    used = []
    for key in keys:
        value = cfg.probe.get(key, PLAIN_PROBE[key])
        if value != PLAIN_PROBE[key]:
            shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            used.append(f"probe.{key}={str(shown).replace(' ', '')}")
    if used:
        raise ValueError(f"{', '.join(used)} does not combine with {job}")


# --------------------------------------------------------------------------- training jobs


def training_settings(cfg: DictConfig) -> TrainSettings:
    """``TrainSettings`` from the ``train`` config, the global ``seed`` and ``device``."""
    train = OmegaConf.to_container(cfg.train, resolve=True)
    return settings_from_config(TrainSettings, train, seed=cfg.seed, device=cfg.device)


def build_data_from(cfg: DictConfig) -> DataBundle:
    """The ``data`` config as a ``DataBundle`` (FileNotFoundError for missing real data)."""
    options = OmegaConf.to_container(cfg.data, resolve=True)
    return build_data(options.pop("name"), **options)


def build_trained_model(cfg: DictConfig, data: DataBundle) -> nn.Module:
    """The model config with ``classes`` (when null) and the channels taken from the data,
    built with the global torch RNG seeded to ``seed`` (``seeded_model``: torchvision, timm
    and user classes draw their init from it); a mismatch with the data is a one-line
    ValueError."""
    spec = OmegaConf.to_container(cfg.model, resolve=True)
    if "classes" in spec:
        if spec["classes"] is None:
            spec["classes"] = data.num_classes
        elif spec["classes"] != data.num_classes:
            raise ValueError(
                f"model.classes={spec['classes']} but {data.name} has {data.num_classes} "
                "classes; set model.classes=null to take it from the data"
            )
    if spec.get("in_channels") not in (None, data.in_channels):
        raise ValueError(
            f"model.in_channels={spec['in_channels']} but {data.name} images have "
            f"{data.in_channels} channels"
        )
    return seeded_model(OmegaConf.create(spec), cfg.seed)


def probe_shape(cfg: DictConfig, data: DataBundle) -> tuple[int, int, int]:
    """(C, H, W) of the probe inputs: ``inputs.size`` or the data's image size."""
    channels = cfg.inputs.channels
    if channels is not None and channels != data.in_channels:
        raise ValueError(f"inputs.channels={channels} but the data has {data.in_channels}")
    size = tuple(int(v) for v in cfg.inputs.size) if cfg.inputs.size else data.image_size
    if cfg.inputs.source == "dataset" and tuple(size) != tuple(data.image_size):
        raise ValueError(
            f"inputs.source=dataset probes on the {data.image_size[0]}x{data.image_size[1]} "
            f"val images; inputs.size={list(size)} differs (set inputs.size=null)"
        )
    return data.in_channels, int(size[0]), int(size[1])


def probe_inputs(cfg: DictConfig, data: DataBundle, shape: tuple[int, int, int]) -> str | Iterable:
    """Random inputs (``inputs=gaussian|uniform``), an ImageFolder, the photos, or
    (``inputs=dataset``) the data's val images in order (real images with ImageNet's
    normalisation: the trained nets record none of their own)."""
    if cfg.inputs.source == "dataset":
        return DataLoader(data.val, batch_size=cfg.probe.batch_size, shuffle=False)
    return build_inputs(cfg, shape)
