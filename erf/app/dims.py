"""How many spatial axes a run's inputs have, and the config rules that follow from it.

Images are ``(C, H, W)``; sequence models (``model=conv_stack_1d``: Conv1d, audio, time
series) take ``(C, L)`` and volume models (``model=conv_stack_3d``: Conv3d, video, volumes)
``(C, D, H, W)``. The number of axes is ``len(inputs.size)`` when the size is given, else
``model.dims`` (our ConvStack), else 2. ``check_input_axes`` refuses, in one line and before
any folder is made (``erf.app.validate``), an ``inputs.size`` or ``probe.position`` with the
wrong number of entries and the settings that exist for images only.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from erf.app.rules import ConfigError

# The model configs of sequence and volume stacks (erf/configs/model/), for hints.
ND_MODELS = {1: "conv_stack_1d", 3: "conv_stack_3d"}
AXES_WORDS = {1: "sequences (C, L)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
SIZE_WORDS = {1: "[L]", 2: "[H, W]", 3: "[D, H, W]"}
IMAGE_LAYOUTS = ("NCHW", "NHWC", "tokens")
ND_LAYOUTS = {1: "NCL", 3: "NCDHW"}
ND_JOBS = ("measure",)  # the job kinds that probe sequences and volumes
RANDOM_INPUTS = ("gaussian", "uniform")


def _get(cfg: DictConfig, key: str) -> Any:
    node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def model_dims(cfg: DictConfig) -> int | None:
    """``model.dims`` when the model config has it (our ConvStack), else None."""
    dims = _get(cfg, "model.dims")
    return int(dims) if isinstance(dims, int) and not isinstance(dims, bool) else None


def input_axes(cfg: DictConfig) -> int:
    """The number of spatial axes of the probe's inputs: ``len(inputs.size)``, else
    ``model.dims``, else 2 (images)."""
    size = _get(cfg, "inputs.size")
    if isinstance(size, list) and size:
        return len(size)
    return model_dims(cfg) or 2


def _image_only_settings(cfg: DictConfig) -> list[str]:
    """The set settings (``key=value``) that exist for images only."""
    probe = _get(cfg, "probe") or {}
    found = []
    if probe.get("layout") in IMAGE_LAYOUTS:
        found.append(f"probe.layout={probe['layout']}")
    for key in ("grid", "prefix_tokens", "channels_last"):
        if probe.get(key) not in (None, False):
            found.append(f"probe.{key}={probe[key]}")
    if probe.get("fast") and probe.get("channels_last") is not False:
        found.append("probe.fast=true (it turns channels_last on; add probe.channels_last=false)")
    if str(probe.get("crop", "off")) not in ("off", "False"):
        found.append(f"probe.crop={probe['crop']}")
    if isinstance(probe.get("position"), str) and probe["position"] not in (
        "center",
        "center_upper_left",
        "openerf_center",
    ):
        found.append(f"probe.position={probe['position']}")
    if int(probe.get("draws", 1) or 1) > 1:
        found.append(f"probe.draws={probe['draws']}")
    if probe.get("protocol", "ours") != "ours":
        found.append(f"probe.protocol={probe['protocol']}")
    if _get(cfg, "inputs.source") not in RANDOM_INPUTS:
        found.append(f"inputs.source={_get(cfg, 'inputs.source')}")
    if _get(cfg, "job") not in ND_JOBS:
        found.append(f"job={_get(cfg, 'job')}")
    return found


def check_input_axes(cfg: DictConfig) -> None:
    """ConfigError (one line) when ``inputs.size`` has another number of axes than the model
    takes, ``probe.position`` another number of indices than the inputs have axes, a
    sequence/volume layout is set for images (or the other way round), or a setting that
    exists for images only is set on sequences or volumes."""
    dims, size = model_dims(cfg), _get(cfg, "inputs.size")
    axes = input_axes(cfg)
    shown = "[" + ",".join(map(str, size)) + "]" if isinstance(size, list) else ""
    if dims is not None and isinstance(size, list) and len(size) != dims:
        raise ConfigError(
            f"inputs.size={shown} is not allowed: model.dims={dims} takes {AXES_WORDS[dims]}, "
            f"so give inputs.size={SIZE_WORDS[dims]}"
        )
    if dims is None and _get(cfg, "model._target_") == "erf.nets.luo.ConvStack" and axes != 2:
        raise ConfigError(
            f"inputs.size={shown} is not allowed: this conv stack takes images, so give "
            f"[H, W] (sequences: model={ND_MODELS[1]}, volumes: model={ND_MODELS[3]})"
        )
    position = _get(cfg, "probe.position")
    if isinstance(position, list) and len(position) != axes:
        raise ConfigError(
            f"probe.position={position} is not allowed: the inputs are {AXES_WORDS[axes]}, so "
            f"the position has {axes} index(es), e.g. {SIZE_WORDS[axes].lower()}"
        )
    layout = _get(cfg, "probe.layout")
    if axes == 2 and layout in ND_LAYOUTS.values():
        raise ConfigError(
            f"probe.layout={layout} is for {'sequences' if layout == 'NCL' else 'volumes'}; "
            "the inputs are images (C, H, W): use probe.layout=auto, NCHW, NHWC or tokens"
        )
    if axes != 2:
        found = _image_only_settings(cfg)
        if layout in ND_LAYOUTS.values() and layout != ND_LAYOUTS[axes]:
            found.insert(0, f"probe.layout={layout}")
        if found:
            raise ConfigError(
                f"{', '.join(found)} is for images only; the inputs are {AXES_WORDS[axes]} "
                f"(they take job=measure, random inputs, probe.layout=auto or "
                f"{ND_LAYOUTS[axes]})"
            )


__all__ = ["check_input_axes", "input_axes", "model_dims"]
