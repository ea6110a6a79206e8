"""Hydra launchers for sweeps: which ones exist, and a one-line error when a plugin is missing.

The launchers are Hydra's own plugins (no scheduler here): ``hydra/launcher=parallel``
(configs/hydra/launcher/parallel.yaml, joblib: local processes) and ``hydra/launcher=slurm``
(slurm.yaml, submitit: a SLURM job array), or the plugins' own ``joblib``,
``submitit_local`` and ``submitit_slurm``; ``basic`` (one job after the other) is built in.
"""

from __future__ import annotations

import importlib.util
import shutil

from erf.app.config import CONFIG_DIR

# launcher name -> (plugin module, pip package, erf extra)
PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "parallel"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
}
OURS = {"parallel": "joblib", "slurm": "submitit_slurm"}  # our configs -> the plugin they extend


def available_launchers() -> list[str]:
    """Launcher names ``hydra/launcher=`` accepts: basic, ours (configs/hydra/launcher) and
    the plugin launchers, installed or not."""
    ours = sorted(p.stem for p in (CONFIG_DIR / "hydra" / "launcher").glob("*.yaml"))
    return ["basic", *ours, *PLUGINS]


def launcher_problem(name: str) -> str | None:
    """None when ``hydra/launcher=name`` can run here, else one line saying why not (an
    unknown name, or the plugin to install)."""
    if name not in available_launchers():
        return (
            f"hydra/launcher={name} is not a known launcher; "
            f"available: {', '.join(available_launchers())}"
        )
    plugin = PLUGINS.get(OURS.get(name, name))
    if plugin is None:
        return None
    module, package, extra = plugin
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        return f"hydra/launcher={name} needs the {package} plugin: pip install 'erf[{extra}]'"
    if OURS.get(name, name) == "submitit_slurm" and not shutil.which("srun"):
        return (
            f"hydra/launcher={name} submits to SLURM, but this machine has no srun (not a "
            "SLURM cluster); use hydra/launcher=parallel or basic here"
        )
    return None
